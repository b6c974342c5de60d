//! The stored form of a record ([`Row`]): only the fields that hold a value (a missing field
//! is null), field names interned as slots (a field's position in its object's describe
//! order), every value in one allocation.
//!
//! # Layout
//!
//! One byte buffer: the cell count (`u16`; its top bit set when the data area is over 64 KiB),
//! the cells' slots in ascending order (`u16` each), the end offset of each cell's bytes in
//! the data area (`u16` each, `u32` with that bit), each cell's kind (one byte), then the data
//! area. Strings and numbers are stored as their text, booleans as
//! the kind alone, a string equal to an earlier cell's (8 bytes or more) as that cell's
//! index, objects and arrays (compound address fields) as JSON text; an object
//! is stored without its null members, which readers of a compound address put back. A
//! 10-field record with its system fields takes about 300 bytes.
//!
//! # Guarantees
//!
//! A row is immutable: writes build a new row ([`Row::from_map`]) and swap the `Arc`, so a
//! reader holding a row never sees it change. Reading never panics: a buffer that does not
//! decode (which would be a bug) reads as null fields.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::schema::{FieldType, ObjectDef};
use crate::soql::Fields;

/// What a cell holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// A JSON string.
    Text = 0,
    /// `true`.
    True = 1,
    /// `false`.
    False = 2,
    /// A JSON number, as its text.
    Number = 3,
    /// Any other JSON value (objects, arrays), as JSON text.
    Json = 4,
    /// The same string as an earlier cell, whose index is the one data byte (a record's
    /// three timestamps and three user ids are mostly equal).
    Same = 5,
}

impl Kind {
    fn from_byte(b: u8) -> Kind {
        match b {
            1 => Kind::True,
            2 => Kind::False,
            3 => Kind::Number,
            4 => Kind::Json,
            5 => Kind::Same,
            _ => Kind::Text,
        }
    }
}

/// The header bit saying end offsets are `u32` (data over 64 KiB) rather than `u16`.
const WIDE: u16 = 0x8000;

/// Shortest string a cell shares with an earlier equal one ([`Kind::Same`]).
const MIN_SHARED: usize = 8;

/// A borrowed view of one stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    /// A string (text, ids, dates, datetimes, picklist values).
    Text(&'a str),
    /// A boolean.
    Bool(bool),
    /// A number, as its JSON text.
    Number(&'a str),
    /// An object or array (compound fields), as JSON text.
    Json(&'a str),
}

impl Cell<'_> {
    /// The value in REST JSON form.
    pub fn to_value(self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.to_string()),
            Cell::Bool(b) => Value::Bool(b),
            Cell::Number(s) => s
                .parse::<serde_json::Number>()
                .map_or(Value::Null, Value::Number),
            Cell::Json(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        }
    }
}

/// One stored record; see the module docs.
#[derive(Clone)]
pub struct Row {
    /// The record's object: slot `i` is `object.fields[i]`.
    object: Arc<ObjectDef>,
    /// The encoded cells.
    buf: Box<[u8]>,
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.object.name == other.object.name && self.buf == other.buf
    }
}

impl Eq for Row {}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.cells()).finish()
    }
}

impl Row {
    /// A row of `object` holding the non-null values of `map` whose keys are fields of
    /// `object` (other keys are dropped).
    pub fn from_map(object: Arc<ObjectDef>, map: &Map<String, Value>) -> Row {
        let mut cells: Vec<(u16, &Value)> = map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .filter_map(|(k, v)| Some((u16::try_from(object.slot(k)?).ok()?, v)))
            .collect();
        cells.sort_by_key(|(slot, _)| *slot);
        cells.dedup_by_key(|(slot, _)| *slot);
        Row::encode(object, &cells)
    }

    /// A row of `object` from sorted, distinct `(slot, value)` pairs of non-null values.
    pub fn from_cells(object: Arc<ObjectDef>, cells: &[(u16, &Value)]) -> Row {
        Row::encode(object, cells)
    }

    /// Encodes sorted, distinct `(slot, value)` pairs.
    fn encode(object: Arc<ObjectDef>, cells: &[(u16, &Value)]) -> Row {
        let n = cells.len().min(usize::from(!WIDE));
        let cells = &cells[..n];
        let mut data: Vec<u8> = Vec::with_capacity(
            cells
                .iter()
                .map(|(_, v)| v.as_str().map_or(16, str::len))
                .sum(),
        );
        let mut kinds = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        // Earlier text cells long enough to be worth sharing: (cell index, data range).
        let mut texts: Vec<(u8, std::ops::Range<usize>)> = Vec::with_capacity(n);
        for (i, (_, v)) in cells.iter().enumerate() {
            let kind = match v {
                Value::String(s) => {
                    let same = (s.len() >= MIN_SHARED)
                        .then(|| {
                            texts
                                .iter()
                                .find(|(_, r)| data.get(r.clone()) == Some(s.as_bytes()))
                        })
                        .flatten();
                    if let Some((earlier, _)) = same {
                        data.push(*earlier);
                        Kind::Same
                    } else {
                        let start = data.len();
                        data.extend_from_slice(s.as_bytes());
                        if let (true, Ok(i)) = (s.len() >= MIN_SHARED, u8::try_from(i)) {
                            texts.push((i, start..data.len()));
                        }
                        Kind::Text
                    }
                }
                Value::Bool(true) => Kind::True,
                Value::Bool(false) => Kind::False,
                Value::Number(num) => {
                    data.extend_from_slice(num.to_string().as_bytes());
                    Kind::Number
                }
                Value::Object(m) => {
                    // Null members are left out; readers put them back (see `value_at`).
                    let _ = serde_json::to_writer(&mut data, &NonNullMembers(m));
                    Kind::Json
                }
                other => {
                    data.extend_from_slice(other.to_string().as_bytes());
                    Kind::Json
                }
            };
            kinds.push(kind as u8);
            ends.push(u32::try_from(data.len()).unwrap_or(u32::MAX));
        }
        let wide = data.len() > usize::from(u16::MAX);
        let end_width = if wide { 4 } else { 2 };
        // Exactly the encoded size, so the boxed slice is not reallocated.
        let mut buf = Vec::with_capacity(2 + n * (2 + end_width + 1) + data.len());
        let header = n as u16 | if wide { WIDE } else { 0 };
        buf.extend_from_slice(&header.to_le_bytes());
        for (slot, _) in cells {
            buf.extend_from_slice(&slot.to_le_bytes());
        }
        for end in ends {
            match u16::try_from(end) {
                Ok(narrow) if !wide => buf.extend_from_slice(&narrow.to_le_bytes()),
                _ => buf.extend_from_slice(&end.to_le_bytes()),
            }
        }
        buf.extend_from_slice(&kinds);
        buf.extend_from_slice(&data);
        Row {
            object,
            buf: buf.into_boxed_slice(),
        }
    }

    /// The record's object.
    pub fn object(&self) -> &Arc<ObjectDef> {
        &self.object
    }

    /// Number of stored (non-null) fields.
    pub fn len(&self) -> usize {
        usize::from(self.u16_at(0) & !WIDE)
    }

    /// Bytes per end offset: 2, or 4 when the header's [`WIDE`] bit is set.
    fn end_width(&self) -> usize {
        if self.u16_at(0) & WIDE != 0 {
            4
        } else {
            2
        }
    }

    /// End offset `i` in the data area.
    fn end_at(&self, ends: usize, i: usize) -> usize {
        match self.end_width() {
            4 => self.u32_at(ends + 4 * i) as usize,
            _ => usize::from(self.u16_at(ends + 2 * i)),
        }
    }

    /// Whether no field holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `u16` at byte `pos` (0 past the end).
    fn u16_at(&self, pos: usize) -> u16 {
        self.buf
            .get(pos..pos + 2)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_le_bytes)
    }

    /// The `u32` at byte `pos` (0 past the end).
    fn u32_at(&self, pos: usize) -> u32 {
        self.buf
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }

    /// The slot of cell `i`.
    fn slot_of(&self, i: usize) -> u16 {
        self.u16_at(2 + 2 * i)
    }

    /// Cell `i`.
    fn cell_at(&self, i: usize) -> Option<Cell<'_>> {
        let n = self.len();
        let ends = 2 + 2 * n;
        let kinds = ends + self.end_width() * n;
        let data = kinds + n;
        let end = self.end_at(ends, i);
        let start = match i {
            0 => 0,
            _ => self.end_at(ends, i - 1),
        };
        let kind = Kind::from_byte(*self.buf.get(kinds + i)?);
        let bytes = self.buf.get(data + start..data + end)?;
        let text = || std::str::from_utf8(bytes).ok();
        Some(match kind {
            Kind::Text => Cell::Text(text()?),
            Kind::Same => {
                let earlier = usize::from(*bytes.first()?);
                match (earlier < i).then(|| self.cell_at(earlier)).flatten()? {
                    Cell::Text(s) => Cell::Text(s),
                    _ => return None,
                }
            }
            Kind::True => Cell::Bool(true),
            Kind::False => Cell::Bool(false),
            Kind::Number => Cell::Number(text()?),
            Kind::Json => Cell::Json(text()?),
        })
    }

    /// The cell of slot `slot`, if it holds a value.
    pub fn cell_by_slot(&self, slot: usize) -> Option<Cell<'_>> {
        let slot = u16::try_from(slot).ok()?;
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.slot_of(mid).cmp(&slot) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.cell_at(mid),
            }
        }
        None
    }

    /// The cell of field `name` (canonical name, or any case), if it holds a value.
    pub fn cell(&self, name: &str) -> Option<Cell<'_>> {
        self.cell_by_slot(self.object.slot(name)?)
    }

    /// The value of field `name`; `None` when it is null or not a field.
    pub fn get(&self, name: &str) -> Option<Value> {
        let slot = self.object.slot(name)?;
        self.cell_by_slot(slot).map(|c| self.value_at(slot, c))
    }

    /// The REST JSON value of the cell of `slot`: a compound address gets back the null
    /// members it was stored without, in Salesforce's key order.
    fn value_at(&self, slot: usize, cell: Cell<'_>) -> Value {
        let is_address = self
            .object
            .fields
            .get(slot)
            .is_some_and(|f| f.field_type == FieldType::Address);
        match (cell.to_value(), is_address) {
            (Value::Object(m), true) => Value::Object(with_address_members(m)),
            (v, _) => v,
        }
    }

    /// The text of field `name` when it holds a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.cell(name)? {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the record is soft-deleted.
    pub fn is_deleted(&self) -> bool {
        self.object
            .is_deleted_slot()
            .and_then(|slot| self.cell_by_slot(slot))
            == Some(Cell::Bool(true))
    }

    /// The stored fields in describe order: (canonical name, value).
    pub fn cells(&self) -> impl Iterator<Item = (&str, Cell<'_>)> + '_ {
        (0..self.len()).filter_map(|i| {
            let field = self.object.fields.get(usize::from(self.slot_of(i)))?;
            Some((field.name.as_str(), self.cell_at(i)?))
        })
    }

    /// The stored fields only, as a JSON map (the draft a write starts from).
    pub fn to_sparse_map(&self) -> Map<String, Value> {
        self.slot_cells()
            .filter_map(|(slot, c)| {
                let name = self.object.fields.get(slot)?.name.clone();
                Some((name, self.value_at(slot, c)))
            })
            .collect()
    }

    /// The stored cells in describe order with their slots.
    fn slot_cells(&self) -> impl Iterator<Item = (usize, Cell<'_>)> + '_ {
        (0..self.len()).filter_map(|i| Some((usize::from(self.slot_of(i)), self.cell_at(i)?)))
    }

    /// Every field of the object in describe order, null where unset: the record as the
    /// REST API and [`crate::store::Record`] readers see it.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut out = Map::with_capacity(self.object.fields.len());
        let mut stored = self.slot_cells().peekable();
        for (slot, f) in self.object.fields.iter().enumerate() {
            let v = match stored.peek() {
                Some((s, _)) if *s == slot => stored
                    .next()
                    .map_or(Value::Null, |(_, c)| self.value_at(slot, c)),
                _ => Value::Null,
            };
            out.insert(f.name.clone(), v);
        }
        out
    }

    /// Heap bytes this row owns (its buffer), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.buf.len()
    }
}

/// Serializes an object without its null members.
struct NonNullMembers<'a>(&'a Map<String, Value>);

impl serde::Serialize for NonNullMembers<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().filter(|(_, v)| !v.is_null()))
    }
}

/// The members of a compound address, in Salesforce's order, null where not stored; members
/// of other names follow.
const ADDRESS_MEMBERS: [&str; 8] = [
    "city",
    "country",
    "geocodeAccuracy",
    "latitude",
    "longitude",
    "postalCode",
    "state",
    "street",
];

/// `stored` with every address member (see [`ADDRESS_MEMBERS`]).
fn with_address_members(mut stored: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(ADDRESS_MEMBERS.len());
    for name in ADDRESS_MEMBERS {
        out.insert(name.to_string(), stored.remove(name).unwrap_or(Value::Null));
    }
    out.extend(stored);
    out
}

impl Fields for Row {
    fn field(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.get(name).map(Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use serde_json::json;

    fn account() -> Arc<ObjectDef> {
        Schema::standard()
            .object("Account")
            .cloned()
            .unwrap_or_else(|| Arc::new(ObjectDef::new("X", "X", "X", "a00", Vec::new())))
    }

    #[test]
    fn rows_over_64_kib_use_wide_offsets() {
        let long = "x".repeat(70_000);
        let m = json!({"Name": "Acme", "Description": long, "Site": "after"});
        let row = Row::from_map(account(), m.as_object().unwrap_or(&Map::new()));
        assert_eq!(row.get("Description"), Some(json!(long)));
        assert_eq!(row.get("Site"), Some(json!("after")));
        assert_eq!(row.get("Name"), Some(json!("Acme")));
        assert_eq!(row.len(), 3);
    }

    #[test]
    fn equal_strings_are_stored_once() {
        let ts = "2024-01-01T00:00:00.000+0000";
        let user = "005000000000001AAA";
        let m = json!({"Name": "Acme", "OwnerId": user, "CreatedDate": ts, "CreatedById": user,
                       "LastModifiedDate": ts, "SystemModstamp": ts, "Site": "short", "Sic": "short"});
        let row = Row::from_map(account(), m.as_object().unwrap_or(&Map::new()));
        for (k, v) in m.as_object().into_iter().flatten() {
            assert_eq!(row.get(k).as_ref(), Some(v), "{k}");
        }
        let data: usize = 4 + 18 + 28 + 5 + 5 + 3;
        assert_eq!(
            row.heap_bytes(),
            2 + 8 * 5 + data,
            "timestamps and ids kept once"
        );
        assert_eq!(Row::from_map(account(), &row.to_sparse_map()), row);
    }

    #[test]
    fn round_trips_every_kind_and_drops_nulls_and_unknown_keys() {
        let m = json!({
            "Name": "Acme",
            "NumberOfEmployees": 12,
            "AnnualRevenue": 1.5,
            "IsDeleted": false,
            "Phone": null,
            "BillingAddress": {"city": "Paris", "street": null},
            "NoSuchField": "x",
        });
        let row = Row::from_map(account(), m.as_object().unwrap_or(&Map::new()));
        assert_eq!(row.len(), 5);
        assert_eq!(row.get("Name"), Some(json!("Acme")));
        assert_eq!(row.get("name"), Some(json!("Acme")));
        assert_eq!(row.get("NumberOfEmployees"), Some(json!(12)));
        assert_eq!(row.get("AnnualRevenue"), Some(json!(1.5)));
        assert_eq!(row.get("IsDeleted"), Some(json!(false)));
        assert_eq!(row.get("Phone"), None);
        assert_eq!(
            row.get("BillingAddress"),
            Some(
                json!({"city": "Paris", "country": null, "geocodeAccuracy": null,
                        "latitude": null, "longitude": null, "postalCode": null,
                        "state": null, "street": null})
            )
        );
        assert!(
            row.heap_bytes() < 70,
            "address stored without its null members"
        );
        assert_eq!(row.get("NoSuchField"), None);
        assert_eq!(row.get_str("Name"), Some("Acme"));
        assert!(!row.is_deleted());
        let full = row.to_map();
        assert_eq!(full.len(), account().fields.len());
        assert_eq!(full["Phone"], Value::Null);
        let names: Vec<&String> = full.keys().collect();
        let object = account();
        let order: Vec<&String> = object.fields.iter().map(|f| &f.name).collect();
        assert_eq!(names, order);
        assert_eq!(Row::from_map(account(), &row.to_sparse_map()), row);
    }
}
