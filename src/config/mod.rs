//! Pipeline configuration: the TOML model, secret references, and validation against the Postgres catalog and Salesforce describe.
