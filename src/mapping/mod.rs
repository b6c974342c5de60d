//! Row change → Salesforce record: column→field mapping, transforms and type conversions.
//!
//! A [`Mapper`] holds a pipeline's mappings and compiles each one against the table's
//! current [`Relation`] (column indices resolved once; a new Relation after `ALTER TABLE`
//! recompiles). [`Mapper::map`] turns a [`RowChange`] into [`MappedChange`]s: upserts by
//! external id, or deletes, with fields as [`FieldValue`]s that render to Bulk CSV cells
//! and REST JSON.
//!
//! - **Unchanged TOAST** values stay [`FieldValue::Unchanged`]: an empty CSV cell, an
//!   omitted JSON key. NULL is [`FieldValue::Null`]: `#N/A` in CSV, `null` in JSON.
//! - **Lookups** add a relationship column (`Account.External_Id__c` = parent's external
//!   id; nested `{"Account": {"External_Id__c": "42"}}` in JSON) and a [`ParentRef`] so
//!   the batcher sends parents first ([`order::object_order`]). A NULL lookup column
//!   clears the lookup field (`AccountId` = `#N/A`).
//! - **Key changes**: an UPDATE whose external id changed removes the old record (per the
//!   `delete` policy) and upserts the new one. Detected only when the old key is sent: the
//!   external id column is in the replica identity, or identity is FULL.
//! - **Filters**: a row leaving the filter on UPDATE is removed (`on_filter_exit =
//!   "delete"`, the default) or left alone (`"ignore"`); see [`compile`] for the details.
//! - **No silent loss**: anything without a faithful Salesforce form is a
//!   [`MappingError`] naming mapping, column, field, type and reason; dead-letter it.
//!
//! Default conversions: bool → `true`/`false`; integers; numeric exact (NaN/Infinity are
//! errors); float shortest exact text (NaN/Infinity are errors); text; uuid → text; date →
//! `yyyy-MM-dd`; timestamptz → `yyyy-MM-ddTHH:mm:ss.SSSZ` (UTC, ms); timestamp → same,
//! read in the mapping's `timezone` (UTC by default); time → `HH:mm:ss.SSSZ`; timetz →
//! UTC time; json → compact JSON text; 1-D arrays → `a;b;c` (`;` in an element is an
//! error, empty array → NULL); enum → label; bytea → base64; unknown types → their text;
//! interval → error unless `transform = "string"`; ±infinity and dates outside
//! 1700–4000 → error; the text `#N/A` is kept (Bulk CSV would read it as NULL, so such a
//! change is sent through Collections); empty text → `#N/A` in CSV (an empty cell would mean
//! "unchanged").

pub mod compile;
mod convert;
mod decimal;
pub mod error;
mod filter;
/// Object order lives with the config it is computed from; re-exported at its old path.
pub use crate::config::order;
pub use filter::text_row_passes;
pub mod record;

use std::collections::HashMap;
use std::sync::Arc;

pub use compile::CompiledMapping;
pub use error::{ErrorKind, MappingError, RecordKey};
pub use record::{
    csv_columns, FieldName, FieldValue, MappedChange, MappedOp, ParentRef, WriteBack,
};

use crate::change::{Relation, RowChange};
use crate::config::{MappingConfig, PipelineConfig};

/// A pipeline's mappings, compiled per table on first use and after schema changes.
#[derive(Debug)]
pub struct Mapper {
    /// `schema.table` → the mappings of that table.
    by_table: HashMap<String, Vec<MappingConfig>>,
    /// Relation oid → the table's mappings compiled against the last Relation seen with
    /// that oid (none for a table no mapping reads): found per change without building
    /// the table's name.
    compiled: HashMap<u32, Compiled>,
}

/// The compiled mappings of one table for one relation version.
#[derive(Debug)]
struct Compiled {
    relation: Arc<Relation>,
    mappings: Vec<Result<CompiledMapping, MappingError>>,
}

impl Mapper {
    /// A mapper for every mapping of `pipeline`.
    pub fn new(pipeline: &PipelineConfig) -> Mapper {
        let mut by_table: HashMap<String, Vec<MappingConfig>> = HashMap::new();
        for m in &pipeline.mappings {
            by_table
                .entry(m.qualified_table())
                .or_default()
                .push(m.clone());
        }
        Mapper {
            by_table,
            compiled: HashMap::new(),
        }
    }

    /// Whether any mapping reads `schema.table`.
    pub fn is_mapped(&self, table: &str) -> bool {
        self.by_table.contains_key(table)
    }

    /// The records for one change, one result per produced record or failed mapping (a
    /// table may have several mappings). Unmapped tables give nothing.
    /// The relation version mappings of `table` (`schema.name`) were last compiled against.
    pub fn relation(&self, table: &str) -> Option<Arc<Relation>> {
        self.compiled
            .values()
            .find(|c| !c.mappings.is_empty() && c.relation.qualified_name() == table)
            .map(|c| c.relation.clone())
    }

    pub fn map(&mut self, change: &RowChange) -> Vec<Result<MappedChange, MappingError>> {
        let rel = &change.relation;
        let current = self
            .compiled
            .get(&rel.oid)
            .is_some_and(|c| Arc::ptr_eq(&c.relation, rel) || *c.relation == **rel);
        if !current {
            let name = rel.qualified_name();
            // A table recreated under a new oid: its old entry goes (one per name).
            self.compiled
                .retain(|_, c| c.relation.qualified_name() != name);
            let compiled = match self.by_table.get(&name) {
                Some(configs) => compile_all(configs, rel),
                None => Compiled {
                    relation: rel.clone(),
                    mappings: Vec::new(),
                },
            };
            self.compiled.insert(rel.oid, compiled);
        }
        let Some(compiled) = self.compiled.get(&rel.oid) else {
            return vec![];
        };
        let mut out = Vec::new();
        for m in &compiled.mappings {
            match m {
                Ok(m) => match m.map(change) {
                    Ok(records) => out.extend(records.into_iter().map(Ok)),
                    Err(e) => out.push(Err(e)),
                },
                Err(e) => out.push(Err(e.clone())),
            }
        }
        out
    }
}

fn compile_all(configs: &[MappingConfig], relation: &Arc<Relation>) -> Compiled {
    Compiled {
        relation: relation.clone(),
        mappings: configs
            .iter()
            .map(|m| CompiledMapping::compile(m, relation.clone()))
            .collect(),
    }
}
