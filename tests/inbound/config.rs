//! The inbound config: the templates in `deploy/examples/` parse and pass the static
//! checks; every bad key is reported at once, by key; a pipeline with only inbound
//! entries needs no slot or publication, one with mappings still does.

use pgforce::config::inbound::{InboundDelete, InboundMode, InboundSource};
use pgforce::config::Config;

fn example(name: &str) -> Config {
    let path = format!("{}/deploy/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Config::parse_unresolved(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn errors(text: &str) -> Vec<String> {
    match Config::parse_unresolved(text) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .iter()
            .map(|k| format!("{}: {}", k.key, k.message))
            .collect(),
    }
}

const HEAD: &str = r#"
[[pipelines]]
name = "p"
source = { database_url = "postgres://u@localhost/db" }
[pipelines.salesforce]
auth = { type = "refresh_token", client_id = "x", refresh_token = "env:T" }
"#;

#[test]
fn opportunities_template_is_a_cdc_mirror_with_the_account_for_joins() {
    let c = example("opportunities.toml");
    let e = &c.pipelines[0].inbound[0];
    assert_eq!(
        (e.object.as_str(), e.mode, e.source),
        ("Opportunity", InboundMode::Mirror, InboundSource::Cdc)
    );
    assert_eq!(e.delete, InboundDelete::DeletedAt("deleted_at".into()));
    assert_eq!(e.fields["Account.Name"].column, "account_name");
    assert_eq!(
        e.fields["Account.External_Id__c"].column,
        "account_external_id"
    );
    assert!(c.pipelines[0].slot.is_empty() && c.pipelines[0].mappings.is_empty());
    assert_eq!(
        c.pipelines[0].salesforce.pubsub_endpoint,
        "https://api.pubsub.salesforce.com:7443"
    );
}

#[test]
fn activities_template_is_one_audit_table_for_tasks_and_events() {
    let c = example("activities-audit.toml");
    let objects: Vec<(&str, &str, InboundMode)> = c.pipelines[0]
        .inbound
        .iter()
        .map(|e| (e.object.as_str(), e.table.as_str(), e.mode))
        .collect();
    assert_eq!(
        objects,
        [
            ("Task", "audit.activity_log", InboundMode::Audit),
            ("Event", "audit.activity_log", InboundMode::Audit)
        ]
    );
}

#[test]
fn leads_and_contacts_template_polls_two_mirrors() {
    let c = example("leads-contacts.toml");
    let e = &c.pipelines[0].inbound;
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].filter.as_deref(), Some("IsConverted = false"));
    assert!(e
        .iter()
        .all(|e| e.source == InboundSource::Poll && e.mode == InboundMode::Mirror));
    assert_eq!(e[1].fields["MailingCity"].column, "mailing_city");
}

#[test]
fn every_bad_inbound_key_is_reported_at_once() {
    let text = format!(
        r#"{HEAD}
[[pipelines.inbound]]
object = "Opp ortunity"
table = "sf.opps"
mode = "mirror"
poll_interval_secs = 0
cdc_batch_size = 500
filter = "Name = 'x"
key_column = "id"
[pipelines.inbound.fields]
Name = "id"
Amount = "amount"
Probability = "amount"

[[pipelines.inbound]]
object = "Task"
table = "sf.opps"
mode = "audit"
delete = {{ deleted_at = "gone" }}
"#
    );
    let errs = errors(&text);
    let keys: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
    for want in [
        "pipelines[0].inbound[0].object",
        "pipelines[0].inbound[0].poll_interval_secs",
        "pipelines[0].inbound[0].cdc_batch_size",
        "pipelines[0].inbound[0].filter",
        "pipelines[0].inbound[0].fields.Name",
        "pipelines[0].inbound[0].fields.Probability",
        "pipelines[0].inbound[1].delete",
        "pipelines[0].inbound[1].table",
    ] {
        assert!(keys.contains(&want), "{want} missing from {errs:#?}");
    }
}

#[test]
fn unknown_values_name_the_key() {
    let text = format!(
        "{HEAD}\n[[pipelines.inbound]]\nobject = \"Lead\"\ntable = \"t\"\nmode = \"copy\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("mode") || errs[0].contains("copy"),
        "{errs:?}"
    );
    let text = format!("{HEAD}\n[[pipelines.inbound]]\nobject = \"Lead\"\ntable = \"t\"\ndelete = \"soft\"\nfields = {{ Name = \"name\" }}\n");
    assert!(errors(&text)[0].contains("unknown delete behaviour"));
}

#[test]
fn slot_and_publication_are_needed_only_with_mappings() {
    let only_inbound = format!("{HEAD}\n[[pipelines.inbound]]\nobject = \"Lead\"\ntable = \"t\"\nfields = {{ LastName = \"last_name\" }}\n");
    assert_eq!(errors(&only_inbound), Vec::<String>::new());
    let with_mapping = format!(
        "{HEAD}\n[[pipelines.mappings]]\nname = \"m\"\ntable = \"t\"\nobject = \"Contact\"\nexternal_id = {{ column = \"id\", field = \"External_Id__c\" }}\n"
    );
    let errs = errors(&with_mapping);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("pipelines[0].slot: required")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("pipelines[0].publication: required")),
        "{errs:?}"
    );
    let neither = HEAD.to_string();
    assert!(errors(&neither)
        .iter()
        .any(|e| e.contains("no mappings, inbound entries or jobs")));
}
