//! The schema and data seams the engine reads through: [`Catalog`] for describe facts,
//! [`RecordSource`] for records.

use std::borrow::Cow;
use std::sync::Arc;

/// One stored record: canonical field API name → value in Salesforce REST JSON wire form.
///
/// A missing key means null.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// The describe type of a field, as far as querying cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// The record id (`type: "id"`).
    Id,
    /// Plain text.
    String,
    /// Text area (plain, long or rich).
    TextArea,
    /// Email address.
    Email,
    /// Phone number (free text).
    Phone,
    /// URL (free text).
    Url,
    /// Single-select picklist.
    Picklist,
    /// Multi-select picklist, values joined by `;`.
    MultiPicklist,
    /// Boolean.
    Boolean,
    /// Integer.
    Int,
    /// Double.
    Double,
    /// Currency.
    Currency,
    /// Percent.
    Percent,
    /// Date, `"YYYY-MM-DD"`.
    Date,
    /// Datetime, `"2024-01-01T00:00:00.000+0000"`.
    DateTime,
    /// Time, `"13:15:00.000Z"`.
    Time,
    /// Lookup or master-detail: an 18-char id.
    Reference,
    /// Anything else; compared as text.
    Other,
}

impl FieldKind {
    /// Whether values of this kind are compared as text (and so need a quoted literal).
    pub(crate) fn is_textual(self) -> bool {
        matches!(
            self,
            Self::Id
                | Self::String
                | Self::TextArea
                | Self::Email
                | Self::Phone
                | Self::Url
                | Self::Picklist
                | Self::MultiPicklist
                | Self::Reference
                | Self::Time
                | Self::Other
        )
    }

    /// Whether values of this kind are numbers.
    pub(crate) fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Int | Self::Double | Self::Currency | Self::Percent
        )
    }

    /// Whether values of this kind are record ids (15 or 18 chars).
    pub(crate) fn is_id(self) -> bool {
        matches!(self, Self::Id | Self::Reference)
    }
}

/// What the engine needs to know about one field of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// Canonical API name, e.g. `AccountId`.
    pub name: String,
    /// Describe type.
    pub kind: FieldKind,
    /// For references: the parent object names; the engine follows `reference_to[0]`.
    pub reference_to: Vec<String>,
    /// For references: the relationship name used in paths, e.g. `Account` or `Account__r`.
    pub relationship_name: Option<String>,
    /// Whether the field may appear in WHERE.
    pub filterable: bool,
    /// Whether the field may appear in ORDER BY.
    pub sortable: bool,
}

impl FieldInfo {
    /// A filterable, sortable field of `kind` (a convenience for catalogs and tests).
    pub fn new(name: impl Into<String>, kind: FieldKind) -> Self {
        Self {
            name: name.into(),
            kind,
            reference_to: Vec::new(),
            relationship_name: None,
            filterable: true,
            sortable: true,
        }
    }

    /// A reference field to `target` reachable in paths as `relationship`.
    pub fn reference(
        name: impl Into<String>,
        target: impl Into<String>,
        relationship: impl Into<String>,
    ) -> Self {
        Self {
            reference_to: vec![target.into()],
            relationship_name: Some(relationship.into()),
            ..Self::new(name, FieldKind::Reference)
        }
    }
}

/// What the engine needs to know about one sObject type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Canonical API name, e.g. `Account`.
    pub name: String,
    /// Every queryable field.
    pub fields: Vec<FieldInfo>,
}

impl ObjectInfo {
    /// The field named `name`, matched case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The reference field whose relationship name is `relationship`, matched case-insensitively.
    pub fn relationship(&self, relationship: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(relationship))
        })
    }
}

/// Schema lookups.
///
/// Implementations must match `name` **case-insensitively** and return the object under its
/// canonical name; the engine matches field and relationship names itself.
pub trait Catalog {
    /// The object called `name` (any case), or `None` if there is no such object.
    fn object(&self, name: &str) -> Option<Arc<ObjectInfo>>;

    /// The child relationship `relationship` (any case) of `parent` (canonical name), for
    /// parent-to-child subqueries: (child object, its reference field to the parent,
    /// canonical relationship name). None by default: no subqueries.
    fn child_relationship(
        &self,
        _parent: &str,
        _relationship: &str,
    ) -> Option<(String, String, String)> {
        None
    }
}

/// Field access by canonical name on a record the engine reads: a [`Record`] (where a
/// missing key is null) or any stored form of one.
pub trait Fields {
    /// The value of field `name`; `None` means null.
    fn field(&self, name: &str) -> Option<Cow<'_, serde_json::Value>>;
}

impl Fields for Record {
    fn field(&self, name: &str) -> Option<Cow<'_, serde_json::Value>> {
        self.get(name).map(Cow::Borrowed)
    }
}

/// Data access.
pub trait RecordSource {
    /// Visit every record of `object` (canonical name); include soft-deleted
    /// (`IsDeleted = true`) ones only if `include_deleted`. Return false from the callback to
    /// stop.
    fn scan(&self, object: &str, include_deleted: bool, visit: &mut dyn FnMut(&dyn Fields) -> bool);

    /// Fetch any record by 18-char id (for parent relationship paths).
    fn get(&self, id: &str) -> Option<Record>;

    /// Visit, in scan order, every record of `object` whose `field` may equal one of
    /// `values` (text compared ignoring case, ids as SOQL compares them), found through an
    /// index, and return true; or return false without visiting anything when there is no
    /// such index (the engine then scans). Visiting a superset is allowed: the engine
    /// re-checks its filter on every record. No index by default.
    fn lookup(
        &self,
        _object: &str,
        _field: &str,
        _values: &[&str],
        _include_deleted: bool,
        _visit: &mut dyn FnMut(&dyn Fields) -> bool,
    ) -> bool {
        false
    }
}
