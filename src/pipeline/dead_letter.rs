//! Rows the mapper rejects go to the dead-letter table with the row itself, rendered as
//! text (its key columns as the key, every column as JSON) so `pgforce errors list` shows
//! what failed without the source row.

use tracing::warn;

use crate::change::RowChange;
use crate::checkpoint::DeadLetter;
use crate::lsn::Lsn;
use crate::mapping::MappingError;
use crate::metrics as m;
use crate::pgoutput::value::Value;
use crate::sink::{Destination, Flusher};

/// Rows that could not be mapped go to the dead-letter table with the row itself.
pub(crate) async fn dead_letter_mapping_errors<D: Destination>(
    flusher: &Flusher<D>,
    failures: &[(RowChange, MappingError)],
    lsn: Lsn,
) -> Result<(), crate::sink::SinkError> {
    if failures.is_empty() {
        return Ok(());
    }
    let letters: Vec<DeadLetter> = failures
        .iter()
        .map(|(change, e)| DeadLetter {
            mapping: e.mapping.clone(),
            // Keyed by the record like every other outcome, so the record's next good
            // change resolves it; the row's key columns only when its key is unreadable.
            object: e
                .record
                .as_ref()
                .map(|r| r.object.clone())
                .unwrap_or_default(),
            external_id: e
                .record
                .as_ref()
                .map_or_else(|| row_key(change), |r| r.external_id.clone()),
            operation: format!("{:?}", change.op).to_lowercase(),
            lsn,
            error_code: "PGFORCE_MAPPING".into(),
            message: e.to_string(),
            fields: e.field.clone().into_iter().collect(),
            row: row_json(change),
        })
        .collect();
    warn!(count = letters.len(), first = %letters[0].message, "rows could not be mapped; dead-lettered");
    for l in &letters {
        metrics::counter!(m::DEAD_LETTERS, "pipeline" => flusher.state().pipeline().to_string(), "mapping" => l.mapping.clone(), "error_code" => "PGFORCE_MAPPING").increment(1);
    }
    flusher.state().record_dead_letters(&letters).await?;
    Ok(())
}

/// The row's key columns as text, `a|b`; all columns when the relation has no key flags.
fn row_key(change: &RowChange) -> String {
    let row = change.new.as_ref().or(change.old.as_ref());
    let Some(row) = row else { return String::new() };
    let cols = &change.relation.columns;
    let keyed: Vec<String> = cols
        .iter()
        .zip(row)
        .filter(|(c, _)| c.is_key)
        .map(|(_, v)| value_text(v))
        .collect();
    if keyed.is_empty() {
        row.iter().map(value_text).collect::<Vec<_>>().join("|")
    } else {
        keyed.join("|")
    }
}

fn row_json(change: &RowChange) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(row) = change.new.as_ref().or(change.old.as_ref()) {
        for (c, v) in change.relation.columns.iter().zip(row) {
            let j = match v {
                Value::Null => serde_json::Value::Null,
                other => serde_json::Value::String(value_text(other)),
            };
            out.insert(c.name.clone(), j);
        }
    }
    serde_json::Value::Object(out)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Unchanged => "(unchanged toast)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int2(i) => i.to_string(),
        Value::Int4(i) => i.to_string(),
        Value::Int8(i) => i.to_string(),
        Value::Float4(f) => f.to_string(),
        Value::Float8(f) => f.to_string(),
        Value::Numeric(s) | Value::Text(s) => s.clone(),
        Value::Uuid(u) => u.to_string(),
        Value::Json(j) => j.to_string(),
        Value::Enum { label, .. } => label.clone(),
        Value::Other { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}
