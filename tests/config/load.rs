//! Loading configs: every example loads; every bad config names the key and the reason.

use std::io::Write;

use pgforce::config::{Config, ConfigError, SecretRef, SecretResolver};
use secrecy::{ExposeSecret, SecretString};

const BASE: &str = r#"
[[pipelines]]
name = "demo"
publication = "pgforce_demo"
slot = "pgforce_demo"
source = { database_url = "env:PGFORCE_TEST_DB_URL" }

[pipelines.salesforce]
login_url = "https://login.salesforce.com"
auth = { type = "jwt_bearer", client_id = "abc", username = "u@example.com", private_key = "file:/nonexistent/k.pem" }

[[pipelines.mappings]]
name = "accounts"
table = "public.accounts"
object = "Account"
external_id = { column = "id", field = "External_Id__c" }
fields = { name = "Name", plan = { field = "Plan__c", transform = { type = "value_map", values = { free = "Free" } } } }

[[pipelines.mappings]]
name = "contacts"
table = "public.users"
object = "Contact"
external_id = { column = "id", field = "External_Id__c" }
lookups = [{ column = "account_id", object = "Account", relationship = "Account", external_id_field = "External_Id__c" }]

[pipelines.mappings.fields]
email = "Email"
"#;

/// Resolves every reference to a fixed value.
struct Fake;
impl SecretResolver for Fake {
    fn resolve(&self, r: &SecretRef) -> Result<SecretString, String> {
        Ok(SecretString::from(format!("value-of-{r}")))
    }
}

/// The single error of a bad config: (key, message, display).
fn error_of(text: &str) -> (String, String, String) {
    let err = Config::parse_unresolved(text).expect_err("config should be rejected");
    let all = err.to_string();
    let e = err.errors().first().expect("an error").clone();
    (e.key, e.message, all)
}

fn variant(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_config_parses_with_defaults() {
    let c = Config::from_toml_with(BASE, &Fake).unwrap();
    let p = &c.pipelines[0];
    assert_eq!(p.replication_origin, "pgforce");
    assert_eq!(p.state_schema, "pgforce");
    assert_eq!(p.batching.max_batch_rows, 10_000);
    assert_eq!(p.batching.max_batch_bytes, 90_000_000);
    assert_eq!(p.salesforce.api_reserve_percent, 10);
    assert!(p.manage_publication);
    assert_eq!(
        p.source.database_url.value().unwrap().expose_secret(),
        "value-of-env:PGFORCE_TEST_DB_URL"
    );
    assert_eq!(p.mappings[1].lookups[0].lookup_field(), "AccountId");
    assert_eq!(
        p.mappings[1].lookups[0].csv_column(),
        "Account.External_Id__c"
    );
}

#[test]
fn every_example_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let c = Config::from_toml_with(&text, &Fake)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for p in &c.pipelines {
                pgforce::mapping::order::object_order(p).unwrap();
            }
            n += 1;
        }
    }
    assert!(n >= 3, "expected the three examples, found {n}");
}

#[test]
fn unknown_key_is_named_with_location() {
    let (key, msg, all) = error_of(&variant(
        "table = \"public.users\"",
        "table = \"public.users\"\nbogus = 1",
    ));
    assert_eq!(key, "pipelines[0].mappings[1].bogus");
    assert!(msg.contains("unknown field `bogus`"), "{msg}");
    assert!(all.contains("line 22, column 1"), "{all}");
    let (key, _, _) = error_of(&variant(
        "field = \"External_Id__c\" }\nlookups",
        "field = \"External_Id__c\", extra = 1 }\nlookups",
    ));
    assert_eq!(key, "pipelines[0].mappings[1].external_id.extra");
    let (key, _, _) = error_of(&variant(
        "username = \"u@example.com\",",
        "username = \"u@example.com\", scope = \"api\",",
    ));
    assert_eq!(key, "pipelines[0].salesforce.auth.scope");
}

#[test]
fn missing_key_is_named() {
    let (key, msg, _) = error_of(&variant("slot = \"pgforce_demo\"\n", ""));
    assert_eq!(key, "pipelines[0].slot");
    // Optional for a pipeline with only inbound entries; required with mappings.
    assert!(
        msg.contains("required when the pipeline has mappings"),
        "{msg}"
    );
    // `field` or `match_by`: the table names which one is missing.
    let (key, msg, _) = error_of(&variant(
        "external_id = { column = \"id\", field = \"External_Id__c\" }\nlookups",
        "external_id = { column = \"id\" }\nlookups",
    ));
    assert_eq!(key, "pipelines[0].mappings[1].external_id");
    assert!(msg.contains("needs `field`"), "{msg}");
}

#[test]
fn inline_secret_is_rejected_without_echo() {
    let (key, msg, all) = error_of(&variant(
        "\"file:/nonexistent/k.pem\"",
        "\"-----BEGIN PRIVATE KEY-----\"",
    ));
    assert_eq!(key, "pipelines[0].salesforce.auth.private_key");
    assert!(msg.contains("env:") && msg.contains("file:"), "{msg}");
    assert!(!all.contains("BEGIN PRIVATE"), "{all}");
    let (key, _, all) = error_of(&variant(
        "env:PGFORCE_TEST_DB_URL",
        "postgres://u:hunter2@db/x",
    ));
    assert_eq!(key, "pipelines[0].source.database_url");
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn missing_env_var_and_file_name_the_key_and_reference() {
    let err = Config::from_toml(&variant(
        "env:PGFORCE_TEST_DB_URL",
        "env:PGFORCE_SURELY_UNSET_VAR",
    ))
    .unwrap_err();
    let keys: Vec<_> = err.errors().iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "pipelines[0].source.database_url",
            "pipelines[0].salesforce.auth.private_key"
        ]
    );
    let all = err.to_string();
    assert!(
        all.contains("env:PGFORCE_SURELY_UNSET_VAR") && all.contains("is not set"),
        "{all}"
    );
    assert!(all.contains("file:/nonexistent/k.pem"), "{all}");
    assert!(err.errors()[0].location.is_some());
}

#[test]
fn file_secret_is_trimmed_and_never_printed() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "s3cr3t-value").unwrap();
    std::env::set_var("PGFORCE_TEST_DB_URL_2", "postgres://u:pw-in-env@db/x");
    let text = variant(
        "\"file:/nonexistent/k.pem\"",
        &format!("\"file:{}\"", f.path().display()),
    )
    .replace("env:PGFORCE_TEST_DB_URL", "env:PGFORCE_TEST_DB_URL_2");
    let c = Config::from_toml(&text).unwrap();
    let auth = match &c.pipelines[0].salesforce.auth {
        pgforce::config::AuthConfig::JwtBearer(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        auth.private_key.value().unwrap().expose_secret(),
        "s3cr3t-value"
    );
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("pw-in-env"),
        "{debug}"
    );
    assert!(debug.contains("env:PGFORCE_TEST_DB_URL_2"));
    let unresolved = Config::parse_unresolved(&text).unwrap();
    let e = unresolved.pipelines[0]
        .source
        .database_url
        .value()
        .unwrap_err();
    assert!(
        e.to_string().contains("env:PGFORCE_TEST_DB_URL_2") && !e.to_string().contains("pw-in-env")
    );
}

#[test]
fn bad_transform_params() {
    let plan = "type = \"value_map\", values = { free = \"Free\" }";
    let (key, msg, _) = error_of(&variant(plan, "type = \"numeric\", precision = 18"));
    assert_eq!(key, "pipelines[0].mappings[0].fields.plan.transform.scale");
    assert!(msg.contains("missing field `scale`"));
    let (key, msg, _) = error_of(&variant(
        plan,
        "type = \"numeric\", precision = 4, scale = 6",
    ));
    assert_eq!(key, "pipelines[0].mappings[0].fields.plan.transform.scale");
    assert!(msg.contains("exceeds precision"), "{msg}");
    let (key, msg, _) = error_of(&variant(plan, "type = \"nope\""));
    assert_eq!(key, "pipelines[0].mappings[0].fields.plan.transform.type");
    assert!(msg.contains("unknown variant `nope`"), "{msg}");
    let (key, _, _) = error_of(&variant(plan, "type = \"value_map\", values = {}"));
    assert_eq!(key, "pipelines[0].mappings[0].fields.plan.transform.values");
    let (key, msg, _) = error_of(&variant(plan, "type = \"string\", truncate = true"));
    assert_eq!(
        key,
        "pipelines[0].mappings[0].fields.plan.transform.truncate"
    );
    assert!(msg.contains("max_length"));
    let (key, msg, _) = error_of(&variant(
        "transform = { type = \"value_map\", values = { free = \"Free\" } }",
        "transform = \"numeric\"",
    ));
    assert_eq!(key, "pipelines[0].mappings[0].fields.plan.transform");
    assert!(msg.contains("needs parameters"), "{msg}");
    let (key, msg, _) = error_of(&variant(
        plan,
        "type = \"datetime\", timezone = \"Europe/Atlantis\"",
    ));
    assert_eq!(
        key,
        "pipelines[0].mappings[0].fields.plan.transform.timezone"
    );
    assert!(
        msg.contains("Europe/Atlantis") && msg.contains("IANA name"),
        "{msg}"
    );
}

#[test]
fn lookup_to_unmapped_object_and_cycles() {
    let (key, msg, _) = error_of(&variant(
        "object = \"Account\", relationship",
        "object = \"Campaign\", relationship",
    ));
    assert_eq!(key, "pipelines[0].mappings[1].lookups[0].object");
    assert!(
        msg.contains("unmapped object `Campaign`") && msg.contains("parent_synced = false"),
        "{msg}"
    );
    // parent_synced = false allows it.
    Config::parse_unresolved(&variant(
        "object = \"Account\", relationship",
        "object = \"Campaign\", parent_synced = false, relationship",
    ))
    .unwrap();
    let cyclic = variant(
        "fields = { name = \"Name\",",
        "lookups = [{ column = \"owner\", object = \"Contact\", relationship = \"Owner__r\", external_id_field = \"External_Id__c\" }]\nfields = { name = \"Name\",",
    );
    let (key, msg, _) = error_of(&cyclic);
    assert_eq!(key, "pipelines[0].mappings[0].lookups[0]");
    assert!(msg.contains("Account → Contact → Account"), "{msg}");
}

#[test]
fn static_checks_name_their_keys() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("slot = \"pgforce_demo\"", "slot = \"Bad-Slot\"", "pipelines[0].slot", "lowercase"),
        ("login_url = \"https://login.salesforce.com\"", "login_url = \"nope\"", "pipelines[0].salesforce.login_url", "not a URL"),
        ("login_url = \"https://login.salesforce.com\"", "api_version = \"40.0\"", "pipelines[0].salesforce.api_version", "46.0"),
        ("object = \"Account\"\nexternal_id", "object = \"Account Name\"\nexternal_id", "pipelines[0].mappings[0].object", "API name"),
        ("table = \"public.accounts\"", "table = \"a.b.c\"", "pipelines[0].mappings[0].table", "schema.table"),
        ("email = \"Email\"", "email = \"External_Id__c\"", "pipelines[0].mappings[1].fields.email", "already written"),
        ("name = \"contacts\"", "name = \"accounts\"", "pipelines[0].mappings[1].name", "duplicate"),
        ("email = \"Email\"", "email = \"Email\"\n[[pipelines.mappings.filter]]\ncolumn = \"s\"\nop = \"in\"\nvalue = \"x\"", "pipelines[0].mappings[1].filter[0].value", "non-empty list"),
        ("email = \"Email\"", "email = \"Email\"\n[[pipelines.mappings.filter]]\ncolumn = \"s\"\nop = \"=\"\nvalue = 1.5", "pipelines[0].mappings[1].filter[0].value", "floats"),
        ("auth = { type = \"jwt_bearer\", client_id = \"abc\", username = \"u@example.com\", private_key = \"file:/nonexistent/k.pem\" }",
         "auth = { type = \"client_credentials\", client_id = \"abc\", client_secret = \"env:X\" }", "pipelines[0].salesforce.instance_url", "My Domain"),
    ];
    for (from, to, want_key, want_msg) in cases {
        let (key, msg, all) = error_of(&variant(from, to));
        assert_eq!(&key, want_key, "{all}");
        assert!(msg.contains(want_msg), "{want_key}: {msg}");
    }
}

#[test]
fn syntax_errors_have_a_location() {
    let err = Config::parse_unresolved("[[pipelines]\nname = ").unwrap_err();
    let e = &err.errors()[0];
    assert!(e.location.is_some(), "{err}");
    assert!(matches!(err, ConfigError::Invalid(_)));
    let err = Config::load("/nonexistent/pgforce.toml").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/pgforce.toml"));
}

#[test]
fn concurrency_keys_default_and_are_bounded_by_salesforce_limits() {
    let c = Config::from_toml_with(BASE, &Fake).unwrap();
    let b = &c.pipelines[0].batching;
    assert_eq!((b.max_concurrent_bulk_jobs, b.max_concurrent_calls), (4, 4));
    let bad = variant(
        "[pipelines.salesforce]",
        "[pipelines.batching]\nmax_concurrent_bulk_jobs = 0\nmax_concurrent_calls = 26\n\n[pipelines.salesforce]",
    );
    let err = Config::parse_unresolved(&bad).expect_err("rejected");
    let keys: Vec<_> = err.errors().iter().map(|e| e.key.clone()).collect();
    assert_eq!(
        keys,
        [
            "pipelines[0].batching.max_concurrent_bulk_jobs",
            "pipelines[0].batching.max_concurrent_calls"
        ],
        "both reported at once"
    );
    assert!(err.to_string().contains("1–25"), "{err}");
}
