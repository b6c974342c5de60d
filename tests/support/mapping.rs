//! Shared helpers for config and mapping tests: a pipeline around a mapping, relations, rows.

use std::sync::Arc;

use pgforce::change::{Column, Operation, Relation, ReplicaIdentity, Row, RowChange};
use pgforce::config::PipelineConfig;

use crate::support::config::{Auth, ConfigBuilder};

/// A pipeline config whose `[[pipelines.mappings]]` section(s) are `mappings` (TOML).
pub fn pipeline(mappings: &str) -> PipelineConfig {
    ConfigBuilder::new("t", "DATABASE_URL")
        .salesforce(
            None,
            Some("https://acme.my.salesforce.com"),
            Auth::ClientCredentials {
                client_id: "x".into(),
                client_secret: "env:SECRET".into(),
            },
        )
        .mappings_toml(mappings)
        .unresolved()
}

/// A relation `public.<name>` with `(column, type oid, is_key)` columns.
pub fn relation(
    name: &str,
    identity: ReplicaIdentity,
    cols: &[(&str, u32, bool)],
) -> Arc<Relation> {
    Arc::new(Relation {
        oid: 16384,
        schema: "public".into(),
        name: name.into(),
        replica_identity: identity,
        columns: cols
            .iter()
            .map(|(n, oid, key)| Column {
                name: n.to_string(),
                type_oid: *oid,
                type_modifier: -1,
                is_key: *key,
            })
            .collect(),
    })
}

pub fn insert(rel: &Arc<Relation>, new: Row) -> RowChange {
    RowChange {
        relation: rel.clone(),
        op: Operation::Insert,
        new: Some(new),
        old: None,
    }
}

pub fn update(rel: &Arc<Relation>, old: Option<Row>, new: Row) -> RowChange {
    RowChange {
        relation: rel.clone(),
        op: Operation::Update,
        new: Some(new),
        old,
    }
}

pub fn delete(rel: &Arc<Relation>, old: Row) -> RowChange {
    RowChange {
        relation: rel.clone(),
        op: Operation::Delete,
        new: None,
        old: Some(old),
    }
}
