//! Salesforce-like validation and normalization of written field values.
//!
//! [`normalize`] turns a request body (REST JSON; Bulk CSV cells can be passed as JSON
//! strings) into canonical field names and wire-format values, or the error Salesforce would
//! give: unknown or read-only fields, JSON type mismatches, lengths, picklists, emails,
//! numbers (rounded to scale), dates, ids, and required fields. Checks that need other
//! records (lookups, uniqueness, parent external ids) are done by the store with
//! [`check_reference`].
//!
//! Values on the wire and in the store: datetime `2024-01-01T00:00:00.000+0000` (UTC), date
//! `2024-01-01`, time `13:15:00.000Z`, numbers as JSON numbers, multipicklist `A;B`,
//! booleans never null, empty strings stored as null.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Number, Value};

use super::error::{ErrorCode, FieldError};
use super::ids::Id;
use super::schema::{FieldDef, FieldType, ObjectDef};

/// Which write a body is for; decides createable vs updateable and required checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A new record.
    Insert,
    /// Changes to an existing record.
    Update,
}

/// A parent given by external id in a body (`"Account": {"External_Id__c": "A-1"}`), to be
/// resolved by the store into the reference field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    /// The reference field to set (`AccountId`).
    pub field: String,
    /// The parent object (`Account`).
    pub object: String,
    /// The parent's external-id (or unique / Id) field (`External_Id__c`).
    pub ext_field: String,
    /// The value to look up.
    pub value: String,
}

/// A validated body: canonical names, wire-format values, and unresolved parent references.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized {
    /// Field API name → normalized value (only the fields given).
    pub values: Map<String, Value>,
    /// Parents referenced by external id.
    pub parent_refs: Vec<ParentRef>,
}

/// State of a record a lookup points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefState {
    /// Exists and is not deleted.
    Live,
    /// In the recycle bin.
    Deleted,
    /// Does not exist.
    Missing,
}

/// Validates and normalizes a body for `object`.
pub fn normalize(
    object: &ObjectDef,
    input: &Map<String, Value>,
    kind: WriteKind,
) -> Result<Normalized, Vec<FieldError>> {
    let mut out = Normalized::default();
    let mut not_writable = Vec::new();
    for (key, value) in input {
        if key == "attributes" {
            continue;
        }
        if key.eq_ignore_ascii_case("Id") {
            if kind == WriteKind::Insert {
                return Err(vec![FieldError::new(
                    ErrorCode::InvalidField,
                    "The Id field should not be specified in the sobject data.",
                )]);
            }
            continue;
        }
        let Some(field) = object.field(key) else {
            if let Some(reference) = object.relationship(key) {
                if value.is_object() {
                    out.parent_refs
                        .push(parent_ref(object, reference, value).map_err(|e| vec![e])?);
                    continue;
                }
            }
            return Err(vec![unknown_field(object, key)]);
        };
        let writable = match kind {
            WriteKind::Insert => field.createable,
            WriteKind::Update => field.updateable,
        };
        if !writable {
            not_writable.push(field.name.clone());
            continue;
        }
        let v = normalize_value(field, value).map_err(|e| vec![e])?;
        out.values.insert(field.name.clone(), v);
    }
    if !not_writable.is_empty() {
        return Err(vec![FieldError::with_fields(
            ErrorCode::InvalidFieldForInsertUpdate,
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                not_writable.join(", ")
            ),
            not_writable,
        )]);
    }
    check_required(object, &out, kind)?;
    Ok(out)
}

/// `INVALID_FIELD` for a name that is not a field of `object`.
pub fn unknown_field(object: &ObjectDef, key: &str) -> FieldError {
    FieldError::new(
        ErrorCode::InvalidField,
        format!("No such column '{key}' on sobject of type {}", object.name),
    )
}

/// REQUIRED_FIELD_MISSING for required fields absent on insert or nulled on either write.
fn check_required(
    object: &ObjectDef,
    body: &Normalized,
    kind: WriteKind,
) -> Result<(), Vec<FieldError>> {
    let mut missing = Vec::new();
    for f in object.fields.iter().filter(|f| f.is_required()) {
        let by_parent = body.parent_refs.iter().any(|p| p.field == f.name);
        let missing_here = match body.values.get(&f.name) {
            Some(Value::Null) => !by_parent,
            Some(_) => false,
            None => kind == WriteKind::Insert && !by_parent,
        };
        if missing_here {
            missing.push(f.name.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(vec![FieldError::with_fields(
        ErrorCode::RequiredFieldMissing,
        format!("Required fields are missing: [{}]", missing.join(", ")),
        missing,
    )])
}

/// Parses `"Account": {"External_Id__c": "A-1"}` (polymorphic lookups need `attributes.type`).
fn parent_ref(
    object: &ObjectDef,
    reference: &FieldDef,
    value: &Value,
) -> Result<ParentRef, FieldError> {
    let Some(map) = value.as_object() else {
        return Err(unknown_field(object, &reference.name));
    };
    let typed = map
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str);
    let target = match (typed, reference.reference_to.as_slice()) {
        (Some(t), to) if to.iter().any(|o| o.eq_ignore_ascii_case(t)) => t.to_string(),
        (None, [only]) => only.clone(),
        _ => {
            return Err(FieldError::with_fields(
                ErrorCode::InvalidField,
                format!(
                    "The relationship {} requires attributes.type naming one of: {}",
                    reference.relationship_name.as_deref().unwrap_or_default(),
                    reference.reference_to.join(", ")
                ),
                vec![reference.name.clone()],
            ))
        }
    };
    let mut keys = map.iter().filter(|(k, _)| k.as_str() != "attributes");
    let (Some((ext_field, v)), None) = (keys.next(), keys.next()) else {
        return Err(FieldError::new(
            ErrorCode::InvalidField,
            format!(
                "A foreign key reference on {} must name exactly one external ID field",
                reference.relationship_name.as_deref().unwrap_or_default()
            ),
        ));
    };
    let value = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(json_type_error("string", v)),
    };
    Ok(ParentRef {
        field: reference.name.clone(),
        object: target,
        ext_field: ext_field.clone(),
        value,
    })
}

/// The JSON_PARSER_ERROR Salesforce gives when a value has the wrong JSON type.
fn json_type_error(expected: &str, v: &Value) -> FieldError {
    let (token, text) = match v {
        Value::Null => ("VALUE_NULL", "null".to_string()),
        Value::Bool(b) => (if *b { "VALUE_TRUE" } else { "VALUE_FALSE" }, b.to_string()),
        Value::Number(n) => ("VALUE_NUMBER", n.to_string()),
        Value::String(s) => ("VALUE_STRING", s.clone()),
        Value::Array(_) => ("START_ARRAY", "[".to_string()),
        Value::Object(_) => ("START_OBJECT", "{".to_string()),
    };
    FieldError::new(
        ErrorCode::JsonParserError,
        format!("Cannot deserialize instance of {expected} from {token} value {text} or request may be missing a required field"),
    )
}

/// Validates and normalizes one value for `field` (null handling included).
pub fn normalize_value(field: &FieldDef, value: &Value) -> Result<Value, FieldError> {
    if value.is_null() || value.as_str() == Some("") {
        return Ok(if field.field_type == FieldType::Boolean {
            Value::Bool(false)
        } else {
            Value::Null
        });
    }
    match field.field_type {
        FieldType::Boolean => normalize_bool(value),
        FieldType::Int | FieldType::Long => normalize_integer(field, value),
        FieldType::Double | FieldType::Currency | FieldType::Percent => {
            normalize_decimal(field, value)
        }
        FieldType::Date => normalize_with(value, "date", |s| parse_date(s).map(format_date)),
        FieldType::Datetime => normalize_with(value, "datetime", |s| {
            parse_datetime(s).map(format_datetime)
        }),
        FieldType::Time => normalize_with(value, "time", |s| parse_time(s).map(format_time)),
        FieldType::Reference | FieldType::Id => normalize_reference(field, value),
        FieldType::Address => Err(json_type_error("address", value)),
        _ => normalize_text(field, value),
    }
}

fn normalize_bool(value: &Value) -> Result<Value, FieldError> {
    match value {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        _ => Err(json_type_error("boolean", value)),
    }
}

/// The text of a scalar number given as a JSON number or a numeric string.
fn number_text(value: &Value, expected: &str) -> Result<String, FieldError> {
    match value {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.trim().to_string()),
        _ => Err(json_type_error(expected, value)),
    }
}

/// Parses decimal text, including exponent forms (`1.5E3`).
fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

fn out_of_range(field: &FieldDef, text: &str) -> FieldError {
    FieldError::with_fields(
        ErrorCode::NumberOutsideValidRange,
        format!(
            "{}: value outside of valid range on numeric field: {text}",
            field.label
        ),
        vec![field.name.clone()],
    )
}

fn number_value(d: Decimal) -> Value {
    Number::from_str(&d.to_string())
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn normalize_integer(field: &FieldDef, value: &Value) -> Result<Value, FieldError> {
    let expected = if field.field_type == FieldType::Int {
        "int"
    } else {
        "long"
    };
    let text = number_text(value, expected)?;
    let Some(d) = parse_decimal(&text) else {
        return Err(json_type_error(expected, value));
    };
    if !d.fract().is_zero() {
        return Err(json_type_error(expected, value));
    }
    let (min, max) = if field.field_type == FieldType::Int {
        (Decimal::from(i32::MIN), Decimal::from(i32::MAX))
    } else {
        (Decimal::from(i64::MIN), Decimal::from(i64::MAX))
    };
    if d < min || d > max {
        return Err(out_of_range(field, &text));
    }
    Ok(number_value(d.trunc().normalize()))
}

fn normalize_decimal(field: &FieldDef, value: &Value) -> Result<Value, FieldError> {
    let text = number_text(value, "double")?;
    let Some(d) = parse_decimal(&text) else {
        // Too many digits for a 96-bit decimal is out of range, not a parse error.
        if text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && !text.is_empty()
        {
            return Err(out_of_range(field, &text));
        }
        return Err(json_type_error("double", value));
    };
    let rounded = d.round_dp_with_strategy(field.scale, RoundingStrategy::MidpointAwayFromZero);
    let int_digits = field.precision.saturating_sub(field.scale);
    let limit = Decimal::from_i128_with_scale(10i128.pow(int_digits.min(28)), 0);
    if int_digits < 28 && rounded.abs().trunc() >= limit {
        return Err(out_of_range(field, &text));
    }
    Ok(number_value(rounded.normalize()))
}

fn normalize_with(
    value: &Value,
    expected: &str,
    parse: impl Fn(&str) -> Option<String>,
) -> Result<Value, FieldError> {
    match value {
        Value::String(s) => parse(s.trim())
            .map(Value::String)
            .ok_or_else(|| json_type_error(expected, value)),
        _ => Err(json_type_error(expected, value)),
    }
}

fn normalize_reference(field: &FieldDef, value: &Value) -> Result<Value, FieldError> {
    let Value::String(s) = value else {
        return Err(json_type_error("id", value));
    };
    let id = Id::parse(s.trim()).map_err(|_| malformed_id(field, s))?;
    Ok(Value::String(id.to_string()))
}

/// MALFORMED_ID for `field` (`Account ID: id value of incorrect type: xyz`).
pub fn malformed_id(field: &FieldDef, value: &str) -> FieldError {
    FieldError::with_fields(
        ErrorCode::MalformedId,
        format!("{}: id value of incorrect type: {value}", field.label),
        vec![field.name.clone()],
    )
}

fn normalize_text(field: &FieldDef, value: &Value) -> Result<Value, FieldError> {
    let text = match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        Value::Number(n) => std::borrow::Cow::Owned(n.to_string()),
        Value::Bool(b) => std::borrow::Cow::Owned(b.to_string()),
        _ => return Err(json_type_error("string", value)),
    };
    check_text(field, text)
}

/// [`normalize_value`] of a string (a Bulk CSV cell), copying a text value only once.
pub fn normalize_str(field: &FieldDef, s: &str) -> Result<Value, FieldError> {
    if field.field_type.is_text() && !s.is_empty() {
        return check_text(field, std::borrow::Cow::Borrowed(s));
    }
    normalize_value(field, &Value::String(s.to_string()))
}

/// The checks of a text value: picklists, emails, multipicklist order, length.
fn check_text(field: &FieldDef, text: std::borrow::Cow<'_, str>) -> Result<Value, FieldError> {
    let text = match field.field_type {
        FieldType::Multipicklist => normalize_multipicklist(field, &text)?,
        FieldType::Picklist if field.restricted_picklist && !field.has_picklist_value(&text) => {
            return Err(bad_picklist(field, &text));
        }
        FieldType::Email if !is_valid_email(&text) => {
            return Err(FieldError::with_fields(
                ErrorCode::InvalidEmailAddress,
                format!("{}: invalid email address: {text}", field.label),
                vec![field.name.clone()],
            ));
        }
        _ => text.into_owned(),
    };
    if field.length > 0 && text.chars().count() > field.length as usize {
        return Err(FieldError::with_fields(
            ErrorCode::StringTooLong,
            format!(
                "{}: data value too large: {text} (max length={})",
                field.label, field.length
            ),
            vec![field.name.clone()],
        ));
    }
    Ok(Value::String(text))
}

fn bad_picklist(field: &FieldDef, value: &str) -> FieldError {
    FieldError::with_fields(
        ErrorCode::InvalidOrNullForRestrictedPicklist,
        format!(
            "{}: bad value for restricted picklist field: {value}",
            field.label
        ),
        vec![field.name.clone()],
    )
}

/// Splits on `;`, trims, drops empties and duplicates, checks restricted values, rejoins.
fn normalize_multipicklist(field: &FieldDef, text: &str) -> Result<String, FieldError> {
    let mut values: Vec<&str> = Vec::new();
    for v in text.split(';').map(str::trim).filter(|v| !v.is_empty()) {
        if field.restricted_picklist && !field.has_picklist_value(v) {
            return Err(bad_picklist(field, v));
        }
        if !values.contains(&v) {
            values.push(v);
        }
    }
    Ok(values.join(";"))
}

/// A pragmatic email syntax check: one `@`, non-empty local part, a dotted domain, no spaces.
pub fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let ok_chars = |part: &str| {
        part.chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
    };
    !local.is_empty()
        && !domain.contains('@')
        && ok_chars(local)
        && ok_chars(domain)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !local.starts_with('.')
        && !local.ends_with('.')
}

/// Checks a lookup value against the store: wrong object type, missing or deleted target.
pub fn check_reference(
    field: &FieldDef,
    target_object: Option<&str>,
    id: &str,
    state: RefState,
) -> Result<(), FieldError> {
    let type_ok =
        target_object.is_some_and(|t| field.reference_to.iter().any(|r| r.eq_ignore_ascii_case(t)));
    if !type_ok {
        return Err(FieldError::with_fields(
            ErrorCode::FieldIntegrityException,
            format!("{}: id value of incorrect type: {id}", field.label),
            vec![field.name.clone()],
        ));
    }
    match state {
        RefState::Live => Ok(()),
        RefState::Deleted => Err(FieldError::with_fields(
            ErrorCode::EntityIsDeleted,
            "entity is deleted",
            vec![field.name.clone()],
        )),
        RefState::Missing => Err(FieldError::with_fields(
            ErrorCode::InvalidCrossReferenceKey,
            "invalid cross reference id",
            vec![field.name.clone()],
        )),
    }
}

/// Earliest date Salesforce accepts.
fn min_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1700, 1, 1).unwrap_or_default()
}

/// Latest date Salesforce accepts.
fn max_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(4000, 12, 31).unwrap_or_default()
}

/// Parses `YYYY-MM-DD` (or the date part of a datetime), within 1700-01-01..4000-12-31.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_datetime(s).map(|dt| dt.date_naive()))?;
    (min_date()..=max_date()).contains(&d).then_some(d)
}

/// Parses the datetime input forms of §9: `yyyy-MM-ddTHH:mm:ss[.SSS]` followed by `Z`,
/// `±HH:mm`, `±HHmm` or nothing (UTC); a bare date means midnight UTC.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Some(d) = parse_canonical_datetime(s) {
        return Some(d);
    }
    let parsed = DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M%z").ok())
        .map(|d| d.with_timezone(&Utc))
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|n| n.and_utc())
        })?;
    (min_date()..=max_date())
        .contains(&parsed.date_naive())
        .then_some(parsed)
}

/// Parses `HH:mm[:ss[.SSS]][Z]`.
pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .ok()
        .or_else(|| NaiveTime::parse_from_str(s, "%H:%M").ok())
}

/// The stored form `2024-01-01T00:00:00.000+0000` (what [`format_datetime`] writes), read
/// without chrono's format parser: the store reads it back on every write.
fn parse_canonical_datetime(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 28 || &b[23..] != b"+0000" || b[10] != b'T' || b[19] != b'.' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let year = i32::try_from(num(0, 4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?)?;
    let time =
        NaiveTime::from_hms_milli_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?)?;
    let parsed = date.and_time(time).and_utc();
    (min_date()..=max_date())
        .contains(&parsed.date_naive())
        .then_some(parsed)
}

/// `2024-01-01T00:00:00.000+0000`, written directly (every stored record carries three).
pub fn format_datetime(d: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = d.year();
    if !(0..=9999).contains(&year) {
        return d.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    }
    let mut out = String::with_capacity(28);
    let parts = [
        (year.unsigned_abs(), 4, '-'),
        (d.month(), 2, '-'),
        (d.day(), 2, 'T'),
        (d.hour(), 2, ':'),
        (d.minute(), 2, ':'),
        (d.second().min(59), 2, '.'),
        (d.timestamp_subsec_millis().min(999), 3, '+'),
    ];
    for (n, width, sep) in parts {
        push_digits(&mut out, n, width);
        out.push(sep);
    }
    out.push_str("0000");
    out
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = (n / 10u32.pow(i)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// `2024-01-01T00:00:00.000Z` (Bulk CSV form).
pub fn format_datetime_z(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2024-01-01`.
pub fn format_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// `13:15:00.000Z`.
pub fn format_time(t: NaiveTime) -> String {
    t.format("%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::super::schema::Schema;
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn err(object: &str, v: Value, kind: WriteKind) -> FieldError {
        let s = Schema::standard();
        normalize(s.object(object).unwrap(), &body(v), kind)
            .unwrap_err()
            .remove(0)
    }

    fn ok(object: &str, v: Value) -> Map<String, Value> {
        let s = Schema::standard();
        normalize(s.object(object).unwrap(), &body(v), WriteKind::Insert)
            .unwrap()
            .values
    }

    #[test]
    fn required_fields_are_reported_together() {
        let e = err("Opportunity", json!({"Amount": 1}), WriteKind::Insert);
        assert_eq!(e.code, ErrorCode::RequiredFieldMissing);
        assert_eq!(
            e.message,
            "Required fields are missing: [Name, StageName, CloseDate]"
        );
        assert_eq!(e.fields, vec!["Name", "StageName", "CloseDate"]);
        let e = err("Contact", json!({"LastName": null}), WriteKind::Update);
        assert_eq!(e.fields, vec!["LastName"]);
        let e = err("Account", json!({"Name": ""}), WriteKind::Insert);
        assert_eq!(e.code, ErrorCode::RequiredFieldMissing);
    }

    #[test]
    fn string_too_long_names_label_and_length() {
        let long = "x".repeat(81);
        let e = err("Contact", json!({"LastName": long}), WriteKind::Insert);
        assert_eq!(e.code, ErrorCode::StringTooLong);
        assert_eq!(
            e.message,
            format!("Last Name: data value too large: {long} (max length=80)")
        );
        assert_eq!(e.fields, vec!["LastName"]);
    }

    #[test]
    fn unknown_and_read_only_fields_are_rejected() {
        let e = err("Account", json!({"Name": "A", "Foo": 1}), WriteKind::Insert);
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(e.message, "No such column 'Foo' on sobject of type Account");
        let e = err(
            "Account",
            json!({"Name": "A", "CreatedDate": "2024-01-01"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::InvalidFieldForInsertUpdate);
        assert_eq!(e.fields, vec!["CreatedDate"]);
        let e = err(
            "Account",
            json!({"Name": "A", "Id": "001D000000IqhSL"}),
            WriteKind::Insert,
        );
        assert_eq!(
            e.message,
            "The Id field should not be specified in the sobject data."
        );
        let e = err(
            "CampaignMember",
            json!({"ContactId": "003D000000IqhSL"}),
            WriteKind::Update,
        );
        assert_eq!(e.code, ErrorCode::InvalidFieldForInsertUpdate);
    }

    #[test]
    fn picklists_and_emails_are_checked() {
        let e = err(
            "Account",
            json!({"Name": "A", "Plan__c": "Gold"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::InvalidOrNullForRestrictedPicklist);
        assert_eq!(
            e.message,
            "Plan: bad value for restricted picklist field: Gold"
        );
        // Unrestricted picklists accept anything.
        assert_eq!(
            ok("Account", json!({"Name": "A", "Industry": "Spaceflight"}))["Industry"],
            "Spaceflight"
        );
        let e = err(
            "Contact",
            json!({"LastName": "S", "Email": "Not a real email address"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::InvalidEmailAddress);
        assert_eq!(
            e.message,
            "Email: invalid email address: Not a real email address"
        );
        assert_eq!(e.fields, vec!["Email"]);
        let v = ok("Account", json!({"Name": "A", "Tags__c": "vip; beta;vip;"}));
        assert_eq!(v["Tags__c"], "vip;beta");
    }

    #[test]
    fn numbers_round_to_scale_and_respect_precision() {
        let v = ok(
            "Opportunity",
            json!({"Name": "O", "StageName": "Prospecting", "CloseDate": "2024-01-31", "Amount": 12.345}),
        );
        assert_eq!(v["Amount"].to_string(), "12.35");
        let v = ok(
            "Account",
            json!({"Name": "A", "MRR__c": "99.5", "NumberOfEmployees": "12"}),
        );
        assert_eq!(v["MRR__c"].to_string(), "99.5");
        assert_eq!(v["NumberOfEmployees"].to_string(), "12");
        let e = err("Opportunity", json!({"Amount": 1e15}), WriteKind::Update);
        assert_eq!(e.code, ErrorCode::NumberOutsideValidRange);
        assert_eq!(e.fields, vec!["Amount"]);
        let e = err(
            "Account",
            json!({"Name": "A", "NumberOfEmployees": "many"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::JsonParserError);
        let e = err(
            "Account",
            json!({"Name": "A", "MRR__c": true}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::JsonParserError);
    }

    #[test]
    fn dates_and_datetimes_are_normalized() {
        let v = ok(
            "Account",
            json!({"Name": "A", "Renewal_Date__c": "2024-02-29", "Last_Seen__c": "2024-01-01T10:00:00+02:00"}),
        );
        assert_eq!(v["Renewal_Date__c"], "2024-02-29");
        assert_eq!(v["Last_Seen__c"], "2024-01-01T08:00:00.000+0000");
        for input in [
            "2024-01-01T08:00:00Z",
            "2024-01-01T08:00:00.000Z",
            "2024-01-01T10:00:00.000+0200",
            "2024-01-01T08:00:00",
        ] {
            let v = ok("Account", json!({"Name": "A", "Last_Seen__c": input}));
            assert_eq!(v["Last_Seen__c"], "2024-01-01T08:00:00.000+0000", "{input}");
        }
        let e = err(
            "Account",
            json!({"Name": "A", "Renewal_Date__c": "2024-13-01"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::JsonParserError);
        let e = err(
            "Account",
            json!({"Name": "A", "Renewal_Date__c": "1500-01-01"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::JsonParserError);
        assert_eq!(format_time(parse_time("13:15").unwrap()), "13:15:00.000Z");
    }

    #[test]
    fn datetime_fast_paths_match_chrono() {
        for ms in [
            0i64,
            1,
            999,
            86_399_999,
            951_782_400_123,
            1_709_251_199_999,
            4_102_444_800_000,
        ] {
            let d = DateTime::from_timestamp_millis(ms).unwrap();
            let text = format_datetime(d);
            assert_eq!(text, d.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
            assert_eq!(parse_datetime(&text), Some(d));
        }
        assert_eq!(
            parse_canonical_datetime("2024-02-30T00:00:00.000+0000"),
            None
        );
        assert_eq!(
            parse_canonical_datetime("2024-01-01T00:00:00.000+0100"),
            None
        );
        assert_eq!(
            parse_canonical_datetime("2024-01-01T0a:00:00.000+0000"),
            None
        );
    }

    #[test]
    fn booleans_ids_and_parents() {
        let v = ok(
            "Contact",
            json!({"LastName": "S", "HasOptedOutOfEmail": null, "AccountId": "001D000000IqhSL"}),
        );
        assert_eq!(v["HasOptedOutOfEmail"], false);
        assert_eq!(v["AccountId"], "001D000000IqhSLIAZ");
        let e = err(
            "Contact",
            json!({"LastName": "S", "AccountId": "xyz"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::MalformedId);
        assert_eq!(e.message, "Account ID: id value of incorrect type: xyz");
        let e = err(
            "Contact",
            json!({"LastName": "S", "HasOptedOutOfEmail": "maybe"}),
            WriteKind::Insert,
        );
        assert_eq!(e.code, ErrorCode::JsonParserError);
        let s = Schema::standard();
        let n = normalize(
            s.object("Contact").unwrap(),
            &body(json!({"LastName": "S", "account": {"External_Id__c": "A-1"}})),
            WriteKind::Insert,
        )
        .unwrap();
        assert_eq!(
            n.parent_refs[0],
            ParentRef {
                field: "AccountId".into(),
                object: "Account".into(),
                ext_field: "External_Id__c".into(),
                value: "A-1".into()
            }
        );
        let cm = normalize(
            s.object("CampaignMember").unwrap(),
            &body(json!({"Campaign": {"External_Id__c": "C-1"}})),
            WriteKind::Insert,
        );
        assert!(cm.is_ok(), "a parent reference satisfies a required lookup");
    }

    #[test]
    fn reference_checks_type_and_state() {
        let s = Schema::standard();
        let f = s.object("Contact").unwrap().field("AccountId").unwrap();
        assert!(check_reference(f, Some("Account"), "x", RefState::Live).is_ok());
        assert_eq!(
            check_reference(f, Some("Contact"), "x", RefState::Live)
                .unwrap_err()
                .code,
            ErrorCode::FieldIntegrityException
        );
        assert_eq!(
            check_reference(f, Some("Account"), "x", RefState::Missing)
                .unwrap_err()
                .code,
            ErrorCode::InvalidCrossReferenceKey
        );
        assert_eq!(
            check_reference(f, Some("Account"), "x", RefState::Deleted)
                .unwrap_err()
                .code,
            ErrorCode::EntityIsDeleted
        );
    }
}
