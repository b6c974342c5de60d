//! One Pub/Sub event → an [`InboundEvent`]: the Avro payload decoded with its writer
//! schema, the `ChangeEventHeader` read, the field bitmaps turned into names and the
//! values chosen by change type:
//! - CREATE / UNDELETE: every non-null field;
//! - UPDATE: the changed fields (nulled ones as JSON `null`); fields sent as a diff
//!   (`diffFields`) get no value — the applier re-reads them;
//! - DELETE, GAP_* and GAP_OVERFLOW: none (gap events carry the header only).
//!
//! Compound fields are flattened to their REST components. Anything that does not fit the
//! schema or the header contract is a [`DecodeError`], never a panic.

use std::collections::BTreeMap;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::bitmap::{self, BitmapError};
use super::schema::{EventSchema, FieldKind, TopField};
use super::values::{self, unwrap_union, ValueError};
use crate::inbound::event::{ChangeKind, InboundEvent, Position};

/// Why an event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is not Avro of schema {schema_id}: {reason}")]
    Avro { schema_id: String, reason: String },
    #[error("payload does not match schema {schema_id}: {reason}")]
    Shape { schema_id: String, reason: String },
    #[error("unknown changeType {0:?}")]
    UnknownChangeType(String),
    #[error("ChangeEventHeader.{field}: {reason}")]
    Header { field: &'static str, reason: String },
    #[error(transparent)]
    Bitmap(#[from] BitmapError),
    #[error(transparent)]
    Value(#[from] ValueError),
}

impl crate::error_class::Classify for DecodeError {
    fn class(&self) -> crate::error_class::ErrorClass {
        crate::error_class::ErrorClass::Permanent
    }
}

/// The largest single allocation a payload may make Avro do (an event is at most 1 MB;
/// a corrupted length must not allocate gigabytes). Process-wide, set on first decode.
const MAX_AVRO_ALLOCATION: usize = 16 * 1024 * 1024;

/// Decodes the event at `replay_id` whose payload was written with `schema`.
pub fn decode(
    schema: &EventSchema,
    payload: &[u8],
    replay_id: &[u8],
) -> Result<InboundEvent, DecodeError> {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
    let mut reader = payload;
    let value = GenericDatumReader::builder(&schema.avro)
        .build()
        .and_then(|r| r.read_value(&mut reader))
        .map_err(|e| DecodeError::Avro {
            schema_id: schema.id.clone(),
            reason: e.to_string(),
        })?;
    let shape = |reason: String| DecodeError::Shape {
        schema_id: schema.id.clone(),
        reason,
    };
    let Value::Record(fields) = value else {
        return Err(shape("not a record".into()));
    };
    if fields.len() != schema.fields.len() {
        return Err(shape(format!(
            "{} fields, the schema has {}",
            fields.len(),
            schema.fields.len()
        )));
    }
    let header = Header::read(&fields.first().ok_or_else(|| shape("empty".into()))?.1)?;
    let kind = ChangeKind::parse(&header.change_type)
        .ok_or_else(|| DecodeError::UnknownChangeType(header.change_type.clone()))?;
    let changed_fields = bitmap::field_names(&header.changed, &schema.fields)?;
    let nulled_fields = bitmap::field_names(&header.nulled, &schema.fields)?;
    let diff_fields = bitmap::field_names(&header.diff, &schema.fields)?;
    let all = flatten(&schema.fields, &fields)?;
    let values = choose_values(kind, all, &changed_fields, &nulled_fields, &diff_fields);
    Ok(InboundEvent {
        object: header.entity_name,
        record_ids: header.record_ids,
        kind,
        commit_timestamp: header.commit_timestamp,
        commit_user: header.commit_user,
        change_origin: header.change_origin,
        transaction_key: header.transaction_key,
        sequence_number: header.sequence_number,
        values,
        changed_fields,
        nulled_fields,
        diff_fields,
        position: Position::Replay(replay_id.to_vec()),
    })
}

/// Every field's REST name and value, compound fields flattened, in schema order.
fn flatten(
    layout: &[TopField],
    fields: &[(String, Value)],
) -> Result<Vec<(String, Json)>, DecodeError> {
    let mut out = Vec::new();
    for (f, (_, v)) in layout.iter().zip(fields).skip(1) {
        let v = unwrap_union(v);
        match (f.kind, v) {
            (FieldKind::Compound, Value::Record(parts)) => {
                for (c, (_, pv)) in f.components.iter().zip(parts) {
                    out.push((
                        c.rest_name.clone(),
                        values::to_json(&c.rest_name, c.kind, pv)?,
                    ));
                }
            }
            (FieldKind::Compound, Value::Null) => {
                out.extend(
                    f.components
                        .iter()
                        .map(|c| (c.rest_name.clone(), Json::Null)),
                );
            }
            (FieldKind::Compound, other) => {
                // A switchable person name sent as plain text.
                out.push((
                    f.name.clone(),
                    values::to_json(&f.name, FieldKind::Plain, other)?,
                ));
            }
            (kind, v) => out.push((f.name.clone(), values::to_json(&f.name, kind, v)?)),
        }
    }
    Ok(out)
}

/// The values an event of `kind` carries (see the module doc).
fn choose_values(
    kind: ChangeKind,
    all: Vec<(String, Json)>,
    changed: &[String],
    nulled: &[String],
    diff: &[String],
) -> BTreeMap<String, Json> {
    match kind {
        ChangeKind::Create | ChangeKind::Undelete => {
            all.into_iter().filter(|(_, v)| !v.is_null()).collect()
        }
        ChangeKind::Update => {
            let mut values: BTreeMap<String, Json> = all
                .into_iter()
                .filter(|(n, _)| changed.contains(n) && !diff.contains(n))
                .collect();
            for n in nulled {
                values.insert(n.clone(), Json::Null);
            }
            values
        }
        ChangeKind::Delete | ChangeKind::Gap(_) | ChangeKind::GapOverflow => BTreeMap::new(),
    }
}

/// The `ChangeEventHeader` fields pgforce uses.
#[derive(Debug)]
struct Header {
    entity_name: String,
    record_ids: Vec<String>,
    change_type: String,
    change_origin: String,
    transaction_key: String,
    sequence_number: i64,
    commit_timestamp: DateTime<Utc>,
    commit_user: String,
    nulled: Vec<String>,
    diff: Vec<String>,
    changed: Vec<String>,
}

impl Header {
    fn read(value: &Value) -> Result<Header, DecodeError> {
        let Value::Record(fields) = unwrap_union(value) else {
            return Err(DecodeError::Header {
                field: "",
                reason: "not a record".into(),
            });
        };
        let get = |name: &'static str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| unwrap_union(v))
                .unwrap_or(&Value::Null)
        };
        let ms = long(get("commitTimestamp"), "commitTimestamp")?;
        Ok(Header {
            entity_name: required(text(get("entityName"), "entityName")?, "entityName")?,
            record_ids: strings(get("recordIds"), "recordIds")?,
            change_type: required(text(get("changeType"), "changeType")?, "changeType")?,
            change_origin: text(get("changeOrigin"), "changeOrigin")?,
            transaction_key: text(get("transactionKey"), "transactionKey")?,
            sequence_number: long(get("sequenceNumber"), "sequenceNumber").unwrap_or(0),
            commit_timestamp: DateTime::from_timestamp_millis(ms).ok_or(DecodeError::Header {
                field: "commitTimestamp",
                reason: format!("{ms} is out of range"),
            })?,
            commit_user: text(get("commitUser"), "commitUser")?,
            nulled: strings(get("nulledFields"), "nulledFields")?,
            diff: strings(get("diffFields"), "diffFields")?,
            changed: strings(get("changedFields"), "changedFields")?,
        })
    }
}

fn header_error(field: &'static str, v: &Value) -> DecodeError {
    DecodeError::Header {
        field,
        reason: format!("unexpected {v:?}"),
    }
}

fn required(s: String, field: &'static str) -> Result<String, DecodeError> {
    if s.is_empty() {
        return Err(DecodeError::Header {
            field,
            reason: "missing".into(),
        });
    }
    Ok(s)
}

/// A string or enum symbol; null → empty.
fn text(v: &Value, field: &'static str) -> Result<String, DecodeError> {
    match v {
        Value::String(s) | Value::Enum(_, s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(header_error(field, other)),
    }
}

fn long(v: &Value, field: &'static str) -> Result<i64, DecodeError> {
    match v {
        Value::Long(n) | Value::TimestampMillis(n) => Ok(*n),
        Value::Int(n) => Ok(i64::from(*n)),
        other => Err(header_error(field, other)),
    }
}

/// An array of strings; null → empty.
fn strings(v: &Value, field: &'static str) -> Result<Vec<String>, DecodeError> {
    match v {
        Value::Array(items) => items.iter().map(|i| text(unwrap_union(i), field)).collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(header_error(field, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::tests::ACCOUNT_SCHEMA;
    use super::*;
    use crate::inbound::event::GapKind;
    use serde_json::json;

    const CHANGE_TYPES: [&str; 10] = [
        "CREATE",
        "UPDATE",
        "DELETE",
        "UNDELETE",
        "GAP_CREATE",
        "GAP_UPDATE",
        "GAP_DELETE",
        "GAP_UNDELETE",
        "GAP_OVERFLOW",
        "SNAPSHOT",
    ];

    fn schema() -> EventSchema {
        EventSchema::parse("sch1", ACCOUNT_SCHEMA).unwrap()
    }

    fn strs(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
    }

    fn header(change_type: &str, changed: &[&str], nulled: &[&str], diff: &[&str]) -> Value {
        let idx = CHANGE_TYPES.iter().position(|c| *c == change_type).unwrap() as u32;
        Value::Record(vec![
            ("entityName".into(), Value::String("Account".into())),
            ("recordIds".into(), strs(&["001000000000001AAA"])),
            ("changeType".into(), Value::Enum(idx, change_type.into())),
            (
                "changeOrigin".into(),
                Value::String("com/salesforce/api/rest/62.0;client=pgforce".into()),
            ),
            ("transactionKey".into(), Value::String("0001-abcd".into())),
            ("sequenceNumber".into(), Value::Int(1)),
            ("commitTimestamp".into(), Value::Long(1_704_067_200_000)),
            ("commitNumber".into(), Value::Long(42)),
            (
                "commitUser".into(),
                Value::String("005000000000001AAA".into()),
            ),
            ("nulledFields".into(), strs(nulled)),
            ("diffFields".into(), strs(diff)),
            ("changedFields".into(), strs(changed)),
        ])
    }

    fn some(v: Value) -> Value {
        Value::Union(1, Box::new(v))
    }

    fn none() -> Value {
        Value::Union(0, Box::new(Value::Null))
    }

    fn address(street: Option<&str>, city: Option<&str>) -> Value {
        let opt = |s: Option<&str>| s.map_or(none(), |s| some(Value::String(s.into())));
        some(Value::Record(vec![
            ("Street".into(), opt(street)),
            ("City".into(), opt(city)),
            ("State".into(), none()),
            ("PostalCode".into(), none()),
            ("Country".into(), none()),
            ("Latitude".into(), none()),
            ("Longitude".into(), none()),
        ]))
    }

    /// Encodes an event with apache-avro's writer; `body` gives positions 1.. in order.
    fn encode(header: Value, body: Vec<Value>) -> Vec<u8> {
        let s = schema();
        let Schema::Record(r) = &s.avro else { panic!() };
        let mut fields = vec![("ChangeEventHeader".to_string(), header)];
        for (f, v) in r.fields.iter().skip(1).zip(body) {
            fields.push((f.name.clone(), v));
        }
        apache_avro::writer::datum::GenericDatumWriter::builder(&s.avro)
            .build()
            .unwrap()
            .write_value_to_vec(Value::Record(fields))
            .unwrap()
    }

    use apache_avro::Schema;

    /// Name, BillingAddress, ShippingAddress, Description, CreatedDate, LastModifiedDate,
    /// SLAExpirationDate__c, IsActive__c, NumberOfEmployees, AnnualRevenue.
    fn full_body() -> Vec<Value> {
        vec![
            some(Value::String("Acme".into())),
            address(Some("1 Main St"), Some("Springfield")),
            none(),
            some(Value::String("hello".into())),
            some(Value::TimestampMillis(1_704_067_200_000)),
            some(Value::Long(1_704_067_200_500)),
            some(Value::Date(19_787)),
            some(Value::Boolean(false)),
            some(Value::Int(12)),
            some(Value::Double(1.5e6)),
        ]
    }

    #[test]
    fn a_create_carries_every_non_null_field_in_rest_formats() {
        let payload = encode(header("CREATE", &[], &[], &[]), full_body());
        let e = decode(&schema(), &payload, &[0, 0, 0, 0, 0, 0, 0, 7]).unwrap();
        assert_eq!(e.object, "Account");
        assert_eq!(e.kind, ChangeKind::Create);
        assert_eq!(e.record_ids, vec!["001000000000001AAA"]);
        assert_eq!(e.commit_user, "005000000000001AAA");
        assert_eq!(
            e.change_origin,
            "com/salesforce/api/rest/62.0;client=pgforce"
        );
        assert_eq!(e.transaction_key, "0001-abcd");
        assert_eq!(e.sequence_number, 1);
        assert_eq!(e.commit_timestamp.timestamp_millis(), 1_704_067_200_000);
        assert_eq!(e.position, Position::Replay(vec![0, 0, 0, 0, 0, 0, 0, 7]));
        let want: BTreeMap<String, Json> = [
            ("Name", json!("Acme")),
            ("BillingStreet", json!("1 Main St")),
            ("BillingCity", json!("Springfield")),
            ("Description", json!("hello")),
            ("CreatedDate", json!("2024-01-01T00:00:00.000+0000")),
            ("LastModifiedDate", json!("2024-01-01T00:00:00.500+0000")),
            ("SLAExpirationDate__c", json!("2024-03-05")),
            ("IsActive__c", json!(false)),
            ("NumberOfEmployees", json!(12)),
            ("AnnualRevenue", json!(1.5e6)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(e.values, want);
    }

    #[test]
    fn an_update_carries_changed_fields_and_nulled_ones_as_null() {
        // Positions: 1 Name, 2 BillingAddress, 4 Description, 6 LastModifiedDate,
        // 9 NumberOfEmployees. Changed: Description (4), LastModifiedDate (6),
        // NumberOfEmployees (9, nulled), BillingAddress.City ("2-0x2").
        let mut body: Vec<Value> = (0..10).map(|_| none()).collect();
        body[1] = address(None, Some("Shelbyville"));
        body[3] = some(Value::String("new text".into()));
        body[5] = some(Value::Long(1_704_067_260_000));
        let payload = encode(header("UPDATE", &["0x250", "2-0x2"], &["0x200"], &[]), body);
        let e = decode(&schema(), &payload, &[1]).unwrap();
        assert_eq!(e.kind, ChangeKind::Update);
        assert_eq!(
            e.changed_fields,
            vec![
                "Description",
                "LastModifiedDate",
                "NumberOfEmployees",
                "BillingCity"
            ]
        );
        assert_eq!(e.nulled_fields, vec!["NumberOfEmployees"]);
        let want: BTreeMap<String, Json> = [
            ("Description", json!("new text")),
            ("LastModifiedDate", json!("2024-01-01T00:01:00.000+0000")),
            ("NumberOfEmployees", Json::Null),
            ("BillingCity", json!("Shelbyville")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(e.values, want);
    }

    #[test]
    fn diff_fields_get_no_value() {
        let mut body: Vec<Value> = (0..10).map(|_| none()).collect();
        body[3] = some(Value::String("--- \n+++ abc\n@@ -1 +1 @@".into()));
        let payload = encode(header("UPDATE", &["0x10"], &[], &["0x10"]), body);
        let e = decode(&schema(), &payload, &[1]).unwrap();
        assert_eq!(e.diff_fields, vec!["Description"]);
        assert!(e.values.is_empty(), "{:?}", e.values);
    }

    #[test]
    fn deletes_and_gaps_carry_no_values() {
        for (ct, kind) in [
            ("DELETE", ChangeKind::Delete),
            ("GAP_UPDATE", ChangeKind::Gap(GapKind::Update)),
            ("GAP_OVERFLOW", ChangeKind::GapOverflow),
            ("UNDELETE", ChangeKind::Undelete),
        ] {
            let body = if ct == "UNDELETE" {
                full_body()
            } else {
                (0..10).map(|_| none()).collect()
            };
            let payload = encode(header(ct, &[], &[], &[]), body);
            let e = decode(&schema(), &payload, &[2]).unwrap();
            assert_eq!(e.kind, kind);
            assert_eq!(e.values.is_empty(), ct != "UNDELETE", "{ct}");
        }
    }

    #[test]
    fn unknown_change_types_and_garbage_are_errors() {
        let payload = encode(header("SNAPSHOT", &[], &[], &[]), full_body());
        let err = decode(&schema(), &payload, &[3]).unwrap_err();
        assert_eq!(err, DecodeError::UnknownChangeType("SNAPSHOT".into()));
        for garbage in [&[][..], &[0xff; 3], &[0x02, 0x41]] {
            assert!(decode(&schema(), garbage, &[3]).is_err());
        }
        // A truncated payload.
        let payload = encode(header("CREATE", &[], &[], &[]), full_body());
        assert!(decode(&schema(), &payload[..payload.len() / 2], &[3]).is_err());
        // A bitmap beyond the schema.
        let payload = encode(header("UPDATE", &["0x100000"], &[], &[]), full_body());
        assert!(matches!(
            decode(&schema(), &payload, &[3]),
            Err(DecodeError::Bitmap(_))
        ));
    }

    #[test]
    fn a_decoder_never_panics_on_arbitrary_bytes() {
        let s = schema();
        let good = encode(header("CREATE", &[], &[], &[]), full_body());
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % bytes.len();
                bytes[i] = (seed >> 32) as u8;
            }
            let _ = decode(&s, &bytes, &[9]);
        }
    }
}
