//! One change → one change event: the header as Salesforce fills it, the body values the
//! change type carries, and the Avro binary payload.
//!
//! - CREATE / UNDELETE: every field populated from the record; the bitmaps are empty.
//! - UPDATE: only changed fields carry values (unchanged ones are null); `changedFields`
//!   marks every changed field, `nulledFields` those set to null (a compound field whose
//!   components all became null is marked as a whole at its top-level position); a
//!   compound field carries a nested record with only its changed components.
//!   Long text over 1,000 characters that changed is sent as a unified diff of the old and
//!   new value and marked in `diffFields` too.
//! - DELETE and every GAP_* / GAP_OVERFLOW event: header only, all fields null.
//!
//! Values arrive as the store's REST JSON and are converted per [`Kind`]; a value that does
//! not convert is sent as null (never a panic).

use apache_avro::types::Value as Avro;
use chrono::{NaiveDate, NaiveTime, Timelike};
use serde_json::Value as Json;

use super::bitmap::FieldBits;
use super::schema::{EventSchema, Kind, Scalar, Slot, CHANGE_TYPES};
use crate::row::Row as Record;
use crate::validation::parse_datetime;

/// Longest text sent in full in an UPDATE; longer changed text goes as a diff.
pub const DIFF_THRESHOLD: usize = 1000;

/// The header fields of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Object name.
    pub entity_name: String,
    /// Record ids.
    pub record_ids: Vec<String>,
    /// One of [`CHANGE_TYPES`].
    pub change_type: &'static str,
    /// `com/salesforce/api/rest/60.0;client=...`.
    pub change_origin: String,
    /// Shared by the transaction's events.
    pub transaction_key: String,
    /// Order within the transaction, from 1.
    pub sequence_number: i32,
    /// Commit time, epoch ms.
    pub commit_timestamp: i64,
    /// System change number.
    pub commit_number: i64,
    /// User id.
    pub commit_user: String,
}

/// What the body of an event carries.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// Every field from this record.
    Full(&'a Record),
    /// Only what changed from `before` to `after`.
    Diff {
        /// The record before.
        before: &'a Record,
        /// The record after.
        after: &'a Record,
    },
    /// All nulls.
    Empty,
}

/// Why an event could not be encoded (a bug: the values are validated against the schema).
#[derive(Debug, thiserror::Error)]
#[error("change event of {entity} does not match its schema: {source}")]
pub struct EncodeError {
    /// Object name.
    pub entity: String,
    /// The Avro writer's complaint.
    pub source: apache_avro::Error,
}

/// Encodes one event as Avro binary.
pub fn encode(
    schema: &EventSchema,
    header: &Header,
    body: Body<'_>,
) -> Result<Vec<u8>, EncodeError> {
    let mut changed = FieldBits::default();
    let mut nulled = FieldBits::default();
    let mut diffed = FieldBits::default();
    let mut fields = Vec::with_capacity(schema.slots.len() + 1);
    let mut values = Vec::with_capacity(schema.slots.len());
    for (i, slot) in schema.slots.iter().enumerate() {
        let pos = i + 1;
        let v = match body {
            Body::Full(r) => full_slot(slot, r),
            Body::Empty => None,
            Body::Diff { before, after } => diff_slot(
                slot,
                pos,
                before,
                after,
                Bits {
                    changed: &mut changed,
                    nulled: &mut nulled,
                    diffed: &mut diffed,
                },
            ),
        };
        values.push((slot.name().to_string(), optional(v)));
    }
    fields.push((
        "ChangeEventHeader".to_string(),
        header_value(header, &changed, &nulled, &diffed),
    ));
    fields.extend(values);
    apache_avro::to_avro_datum(&schema.avro, Avro::Record(fields)).map_err(|source| EncodeError {
        entity: header.entity_name.clone(),
        source,
    })
}

struct Bits<'a> {
    changed: &'a mut FieldBits,
    nulled: &'a mut FieldBits,
    diffed: &'a mut FieldBits,
}

fn optional(v: Option<Avro>) -> Avro {
    match v {
        Some(v) => Avro::Union(1, Box::new(v)),
        None => Avro::Union(0, Box::new(Avro::Null)),
    }
}

fn strings(v: Vec<String>) -> Avro {
    Avro::Array(v.into_iter().map(Avro::String).collect())
}

fn header_value(h: &Header, changed: &FieldBits, nulled: &FieldBits, diffed: &FieldBits) -> Avro {
    let idx = CHANGE_TYPES
        .iter()
        .position(|t| *t == h.change_type)
        .unwrap_or(0);
    Avro::Record(vec![
        ("entityName".into(), Avro::String(h.entity_name.clone())),
        ("recordIds".into(), strings(h.record_ids.clone())),
        (
            "changeType".into(),
            Avro::Enum(idx as u32, h.change_type.to_string()),
        ),
        ("changeOrigin".into(), Avro::String(h.change_origin.clone())),
        (
            "transactionKey".into(),
            Avro::String(h.transaction_key.clone()),
        ),
        ("sequenceNumber".into(), Avro::Int(h.sequence_number)),
        ("commitTimestamp".into(), Avro::Long(h.commit_timestamp)),
        ("commitNumber".into(), Avro::Long(h.commit_number)),
        ("commitUser".into(), Avro::String(h.commit_user.clone())),
        ("nulledFields".into(), strings(nulled.encode())),
        ("diffFields".into(), strings(diffed.encode())),
        ("changedFields".into(), strings(changed.encode())),
    ])
}

/// The value of a slot taken whole from a record.
fn full_slot(slot: &Slot, r: &Record) -> Option<Avro> {
    match slot {
        Slot::Field(s) => scalar(s, &r.get(&s.source)?),
        Slot::Compound { parts, .. } => {
            let nested: Vec<(String, Avro)> = parts
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        optional(r.get(&p.source).and_then(|v| scalar(p, &v))),
                    )
                })
                .collect();
            let any = nested.iter().any(|(_, v)| !matches!(v, Avro::Union(0, _)));
            any.then_some(Avro::Record(nested))
        }
    }
}

/// The value of a slot in an UPDATE, marking the bitmaps.
fn diff_slot(
    slot: &Slot,
    pos: usize,
    before: &Record,
    after: &Record,
    bits: Bits<'_>,
) -> Option<Avro> {
    match slot {
        Slot::Field(s) => {
            let (old, new) = (field(before, &s.source), field(after, &s.source));
            if old == new {
                return None;
            }
            bits.changed.set(pos);
            if new.is_null() {
                bits.nulled.set(pos);
                return None;
            }
            if let Some(diff) = long_text_diff(s, &old, &new) {
                bits.diffed.set(pos);
                return Some(Avro::String(diff));
            }
            scalar(s, &new)
        }
        Slot::Compound { parts, .. } => {
            let mut nested = Vec::with_capacity(parts.len());
            let mut any = false;
            let mut nulled_parts = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let (old, new) = (field(before, &p.source), field(after, &p.source));
                let v = if old == new {
                    None
                } else {
                    any = true;
                    bits.changed.set_nested(pos, j);
                    if new.is_null() {
                        nulled_parts.push(j);
                    }
                    scalar(p, &new)
                };
                nested.push((p.name.clone(), optional(v)));
            }
            let all_null = parts.iter().all(|p| field(after, &p.source).is_null());
            if all_null && !nulled_parts.is_empty() {
                bits.nulled.set(pos);
            } else {
                for j in nulled_parts {
                    bits.nulled.set_nested(pos, j);
                }
            }
            (any && !all_null).then_some(Avro::Record(nested))
        }
    }
}

/// The value of `name` (null when unset).
fn field(r: &Record, name: &str) -> Json {
    r.get(name).unwrap_or(Json::Null)
}

/// A unified-diff-style value for changed long text (old value known, new one long).
fn long_text_diff(s: &Scalar, old: &Json, new: &Json) -> Option<String> {
    let (Some(old), Some(new)) = (old.as_str(), new.as_str()) else {
        return None;
    };
    if s.kind != Kind::String || new.chars().count() <= DIFF_THRESHOLD {
        return None;
    }
    Some(unified_diff(old, new))
}

/// One hunk replacing the differing middle lines of `old` with those of `new`:
/// `--- \n+++ <fingerprint of new>\n@@ -a,b +c,d @@\n-…\n+…\n`.
pub fn unified_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let removed = &a[prefix..a.len() - suffix];
    let added = &b[prefix..b.len() - suffix];
    let mut out = format!(
        "--- \n+++ {}\n@@ -{},{} +{},{} @@\n",
        super::schema::fingerprint(new),
        prefix + 1,
        removed.len(),
        prefix + 1,
        added.len()
    );
    for l in removed {
        out.push('-');
        out.push_str(l);
        out.push('\n');
    }
    for l in added {
        out.push('+');
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// One JSON value as the Avro value of its kind; `None` for null or unconvertible.
fn scalar(s: &Scalar, v: &Json) -> Option<Avro> {
    if v.is_null() {
        return None;
    }
    Some(match s.kind {
        Kind::String => Avro::String(match v {
            Json::String(x) => x.clone(),
            other => other.to_string(),
        }),
        Kind::Boolean => Avro::Boolean(v.as_bool()?),
        Kind::Int => Avro::Int(i32::try_from(v.as_i64()?).ok()?),
        Kind::Long => Avro::Long(v.as_i64()?),
        Kind::Double => Avro::Double(v.as_f64()?),
        Kind::DateTime => Avro::Long(parse_datetime(v.as_str()?)?.timestamp_millis()),
        Kind::Date => {
            let d = NaiveDate::parse_from_str(v.as_str()?, "%Y-%m-%d").ok()?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
            Avro::Date(i32::try_from((d - epoch).num_days()).ok()?)
        }
        Kind::Time => {
            let t = v.as_str()?.trim_end_matches('Z');
            let t = NaiveTime::parse_from_str(t, "%H:%M:%S%.f").ok()?;
            let ms = t.num_seconds_from_midnight() * 1000 + t.nanosecond() / 1_000_000;
            Avro::TimeMillis(i32::try_from(ms).ok()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_keeps_common_lines_out() {
        let d = unified_diff("a\nb\nc", "a\nB\nc");
        assert!(d.starts_with("--- \n+++ "));
        assert!(d.ends_with("@@ -2,1 +2,1 @@\n-b\n+B\n"));
        let d = unified_diff("", "x");
        assert!(d.contains("-\n+x\n"));
    }

    #[test]
    fn bad_values_become_null() {
        let s = Scalar {
            name: "D".into(),
            source: "D".into(),
            kind: Kind::Date,
        };
        assert_eq!(scalar(&s, &Json::String("nope".into())), None);
        assert_eq!(
            scalar(&s, &Json::String("1970-01-02".into())),
            Some(Avro::Date(1))
        );
        let i = Scalar {
            kind: Kind::Int,
            ..s
        };
        assert_eq!(scalar(&i, &serde_json::json!(1e20)), None);
    }
}
