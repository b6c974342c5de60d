use pgforce::config::{Config, ConfigError};

const BASE: &str = r#"
[[pipelines]]
name = "demo"
publication = "pgforce_demo"
slot = "pgforce_demo"
source = { database_url = "env:DATABASE_URL" }

[pipelines.salesforce]
login_url = "https://login.salesforce.com"
auth = { type = "jwt_bearer", client_id = "abc", username = "u@example.com", private_key = "file:/k.pem" }

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

fn probe(text: &str) {
    match Config::parse_unresolved(text) {
        Ok(_) => println!("OK"),
        Err(e) => println!("{e}"),
    }
}

#[test]
fn probe_all() {
    probe(BASE);
    probe(&BASE.replace(
        "table = \"public.users\"",
        "table = \"public.users\"\nbogus = 1",
    ));
    probe(&BASE.replace("slot = \"pgforce_demo\"\n", ""));
    probe(&BASE.replace(
        "field = \"External_Id__c\" }\nlookups",
        "fieldx = \"External_Id__c\" }\nlookups",
    ));
    probe(&BASE.replace("\"file:/k.pem\"", "\"supersecret\""));
    probe(&BASE.replace(
        "type = \"value_map\", values = { free = \"Free\" }",
        "type = \"numeric\", precision = 18",
    ));
    probe(&BASE.replace(
        "type = \"value_map\", values = { free = \"Free\" }",
        "type = \"nope\"",
    ));
    probe(&BASE.replace("email = \"Email\"", "email = 3"));
    probe(&BASE.replace("type = \"jwt_bearer\"", "type = \"jwt\""));
    probe(&BASE.replace(
        "username = \"u@example.com\",",
        "username = \"u@example.com\", extra = 1,",
    ));
    probe(&BASE.replace(
        "object = \"Account\", relationship",
        "object = \"Acct\", relationship",
    ));
}
