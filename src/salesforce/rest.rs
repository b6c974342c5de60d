//! REST resources: describe, limits, SOQL query (paged via `nextRecordsUrl`), and single-record
//! get / create / update / delete / upsert by external id.
//!
//! Records are `serde_json::Map`s ([`Record`]) so numbers keep every digit
//! (`arbitrary_precision`) and field order is preserved.

use std::collections::BTreeMap;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::client::{parse_json, Call, SalesforceClient, Target};
use super::error::{Result, SalesforceError};
use super::limits::ApiUsage;

/// A Salesforce record as JSON: field name → value (plus `attributes` when read).
pub type Record = serde_json::Map<String, Value>;

/// A stream of query results; pages are fetched lazily as the stream is polled.
pub type RecordStream = BoxStream<'static, Result<Record>>;

/// A stream of query result pages.
pub type PageStream = BoxStream<'static, Result<QueryPage>>;

/// The parts of `GET /sobjects/X/describe` pgforce uses. Unknown fields are ignored and
/// missing ones take their defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SObjectDescribe {
    /// API name, e.g. `Account`.
    pub name: String,
    /// Label.
    pub label: String,
    /// Three-character id prefix.
    pub key_prefix: Option<String>,
    /// Custom object (`__c`).
    pub custom: bool,
    /// Records can be created.
    pub createable: bool,
    /// Records can be updated.
    pub updateable: bool,
    /// Records can be deleted.
    pub deletable: bool,
    /// Can be queried.
    pub queryable: bool,
    /// The fields.
    pub fields: Vec<FieldDescribe>,
}

impl SObjectDescribe {
    /// The field with this API name (case-insensitive, like Salesforce).
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// One field of a describe result.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FieldDescribe {
    /// API name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Data type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Max characters for text types (0 otherwise).
    pub length: u32,
    /// Total digits for double/currency/percent.
    pub precision: u32,
    /// Decimal digits for double/currency/percent.
    pub scale: u32,
    /// Digits for `int`.
    pub digits: u32,
    /// Accepts null.
    pub nillable: bool,
    /// Settable on create.
    pub createable: bool,
    /// Settable on update.
    pub updateable: bool,
    /// Marked External ID (usable for upsert).
    pub external_id: bool,
    /// Unique.
    pub unique: bool,
    /// Can identify a record (Id, Name, external ids).
    pub id_lookup: bool,
    /// Case-sensitive matching.
    pub case_sensitive: bool,
    /// Objects a reference points to.
    pub reference_to: Vec<String>,
    /// Relationship name for references (e.g. `Owner`, `Account__r`).
    pub relationship_name: Option<String>,
    /// Picklist values.
    pub picklist_values: Vec<PicklistValue>,
    /// Only listed picklist values are accepted.
    pub restricted_picklist: bool,
    /// Formula or roll-up (read-only).
    pub calculated: bool,
    /// Auto-number (read-only).
    pub auto_number: bool,
    /// Set by Salesforce when omitted on create.
    pub defaulted_on_create: bool,
    /// The compound field this is part of (e.g. `BillingAddress`).
    pub compound_field_name: Option<String>,
}

/// One picklist value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PicklistValue {
    /// The API value.
    pub value: String,
    /// Label.
    pub label: Option<String>,
    /// Whether it is active.
    pub active: bool,
    /// Whether it is the default.
    pub default_value: bool,
}

/// A describe field type; unknown names are kept in [`FieldType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "String")]
#[allow(missing_docs)]
pub enum FieldType {
    Id,
    #[default]
    String,
    Textarea,
    Email,
    Phone,
    Url,
    Picklist,
    Multipicklist,
    Combobox,
    Boolean,
    Int,
    Long,
    Double,
    Currency,
    Percent,
    Date,
    Datetime,
    Time,
    Reference,
    Address,
    Location,
    Base64,
    EncryptedString,
    AnyType,
    ComplexValue,
    Json,
    /// A type this client does not know.
    Other(std::string::String),
}

impl From<std::string::String> for FieldType {
    fn from(s: std::string::String) -> Self {
        match s.as_str() {
            "id" => Self::Id,
            "string" => Self::String,
            "textarea" => Self::Textarea,
            "email" => Self::Email,
            "phone" => Self::Phone,
            "url" => Self::Url,
            "picklist" => Self::Picklist,
            "multipicklist" => Self::Multipicklist,
            "combobox" => Self::Combobox,
            "boolean" => Self::Boolean,
            "int" => Self::Int,
            "long" => Self::Long,
            "double" => Self::Double,
            "currency" => Self::Currency,
            "percent" => Self::Percent,
            "date" => Self::Date,
            "datetime" => Self::Datetime,
            "time" => Self::Time,
            "reference" => Self::Reference,
            "address" => Self::Address,
            "location" => Self::Location,
            "base64" => Self::Base64,
            "encryptedstring" => Self::EncryptedString,
            "anyType" => Self::AnyType,
            "complexvalue" => Self::ComplexValue,
            "json" => Self::Json,
            _ => Self::Other(s),
        }
    }
}

/// `GET /limits`: limit name → `{Max, Remaining}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Limits(pub BTreeMap<String, LimitValue>);

/// One entry of `/limits`. Nested per-app maps are ignored.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct LimitValue {
    /// The allocation.
    #[serde(rename = "Max")]
    pub max: i64,
    /// What is left.
    #[serde(rename = "Remaining")]
    pub remaining: i64,
}

impl Limits {
    /// The entry with this name (e.g. `DailyApiRequests`).
    pub fn get(&self, name: &str) -> Option<LimitValue> {
        self.0.get(name).copied()
    }

    /// `DailyApiRequests` as [`ApiUsage`].
    pub fn daily_api_usage(&self) -> Option<ApiUsage> {
        let v = self.get("DailyApiRequests")?;
        let max = u64::try_from(v.max).ok()?;
        let remaining = u64::try_from(v.remaining.max(0)).ok()?;
        Some(ApiUsage {
            used: max.saturating_sub(remaining),
            max,
            per_app: None,
            updated_at: chrono::Utc::now(),
        })
    }
}

/// One page of a SOQL query.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    /// Rows in the whole result.
    pub total_size: u64,
    /// No more pages.
    pub done: bool,
    /// Path of the next page when `done` is false.
    #[serde(default)]
    pub next_records_url: Option<String>,
    /// The rows of this page.
    #[serde(default)]
    pub records: Vec<Record>,
}

/// The outcome of a single-record upsert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertResult {
    /// The record id; `None` when Salesforce answered 204 (API ≤ v45 updates).
    pub id: Option<String>,
    /// True when a record was inserted, false when one was updated.
    pub created: bool,
}

/// A save result body (`{"id","success","errors","created"}`).
#[derive(Debug, Deserialize)]
struct SaveResult {
    /// Record id.
    #[serde(default)]
    id: Option<String>,
    /// Present from v46 on for upsert.
    #[serde(default)]
    created: Option<bool>,
}

impl SalesforceClient {
    /// `GET /sobjects/{object}/describe`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn describe(&self, object: &str) -> Result<SObjectDescribe> {
        let body = self.describe_json(object).await?;
        serde_json::from_value(body).map_err(|e| SalesforceError::BadResponse {
            context: "describe".into(),
            detail: e.to_string(),
        })
    }

    /// `GET /sobjects/X/describe` as the raw JSON body (config validation reads it whole).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn describe_json(&self, object: &str) -> Result<serde_json::Value> {
        let call = Call::new(
            Method::GET,
            &["sobjects", object, "describe"],
            "describe",
            object,
        );
        self.send_json(&call).await
    }

    /// `GET /limits`; also refreshes the governor's view of API usage.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn limits(&self) -> Result<Limits> {
        let call = Call::new(Method::GET, &["limits"], "limits", "");
        self.send_json(&call).await
    }

    /// The page at a `nextRecordsUrl`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage> {
        let mut call = Call::new(Method::GET, &[], "query", "");
        call.target = Target::Path(next_records_url.to_string());
        self.send_json(&call).await
    }

    /// Every page of a query (`include_deleted` uses `/queryAll`), following `nextRecordsUrl`.
    pub fn query_pages(&self, soql: impl Into<String>, include_deleted: bool) -> PageStream {
        /// Where the page stream is.
        enum Next {
            /// Before the first page.
            Start(String),
            /// At a `nextRecordsUrl`.
            More(String),
            /// Finished.
            Done,
        }
        let client = self.clone();
        stream::try_unfold(Next::Start(soql.into()), move |next| {
            let client = client.clone();
            async move {
                let page = match next {
                    Next::Start(soql) => client.first_page(&soql, include_deleted).await?,
                    Next::More(url) => client.query_more(&url).await?,
                    Next::Done => return Ok(None),
                };
                let next = match (&page.done, &page.next_records_url) {
                    (false, Some(url)) => Next::More(url.clone()),
                    _ => Next::Done,
                };
                Ok(Some((page, next)))
            }
        })
        .boxed()
    }

    /// Every record of a query, page after page.
    pub fn query(&self, soql: impl Into<String>) -> RecordStream {
        records_of(self.query_pages(soql, false))
    }

    /// Every record of a `queryAll` (includes deleted and archived rows).
    pub fn query_all(&self, soql: impl Into<String>) -> RecordStream {
        records_of(self.query_pages(soql, true))
    }

    /// `GET /sobjects/{object}/{id}`, optionally only `fields`.
    #[tracing::instrument(level = "debug", skip(self, fields))]
    pub async fn get_record(&self, object: &str, id: &str, fields: &[&str]) -> Result<Record> {
        let mut call = Call::new(Method::GET, &["sobjects", object, id], "get", object);
        if !fields.is_empty() {
            call = call.query("fields", fields.join(","));
        }
        self.send_json(&call).await
    }

    /// `POST /sobjects/{object}`; returns the new id. Not retried when the outcome is unknown.
    #[tracing::instrument(level = "debug", skip(self, record))]
    pub async fn create_record(&self, object: &str, record: &Record) -> Result<String> {
        let call = Call::new(Method::POST, &["sobjects", object], "create", object).json(record)?;
        let result: SaveResult = self.send_json(&call).await?;
        result.id.ok_or_else(|| SalesforceError::BadResponse {
            context: "create".into(),
            detail: "201 without an id".into(),
        })
    }

    /// `PATCH /sobjects/{object}/{id}` (204).
    #[tracing::instrument(level = "debug", skip(self, record))]
    pub async fn update_record(&self, object: &str, id: &str, record: &Record) -> Result<()> {
        let call =
            Call::new(Method::PATCH, &["sobjects", object, id], "update", object).json(record)?;
        self.send(&call).await.map(|_| ())
    }

    /// `DELETE /sobjects/{object}/{id}` (204).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn delete_record(&self, object: &str, id: &str) -> Result<()> {
        let call = Call::new(Method::DELETE, &["sobjects", object, id], "delete", object);
        self.send(&call).await.map(|_| ())
    }

    /// `PATCH /sobjects/{object}/{ext_field}/{value}`: insert or update by external id.
    /// `Id` and the external-id field are left out of the body (the value is in the URL).
    /// 201 → created; 200 → `created` from the body; 204 (≤ v45) → updated, id unknown;
    /// 300 → [`SalesforceError::MultipleMatches`]; 404 and others → [`SalesforceError::Api`].
    #[tracing::instrument(level = "debug", skip(self, value, record))]
    pub async fn upsert(
        &self,
        object: &str,
        ext_field: &str,
        value: &str,
        record: &Record,
    ) -> Result<UpsertResult> {
        if value.is_empty() {
            return Err(SalesforceError::invalid_input(format!(
                "upsert of {object} by {ext_field} needs a non-empty external id value"
            )));
        }
        let body = WithoutKeys {
            record,
            skip: ["Id", ext_field],
        };
        let call = Call::new(
            Method::PATCH,
            &["sobjects", object, ext_field, value],
            "upsert",
            object,
        )
        .json(&body)?;
        let reply = self.send(&call).await?;
        match reply.status {
            201 | 200 => {
                let r: SaveResult = parse_json(&reply.body, "upsert")?;
                Ok(UpsertResult {
                    id: r.id,
                    created: r.created.unwrap_or(reply.status == 201),
                })
            }
            204 => Ok(UpsertResult {
                id: None,
                created: false,
            }),
            300 => Err(SalesforceError::MultipleMatches {
                object: object.to_string(),
                field: ext_field.to_string(),
                matches: parse_matches(&reply.body),
            }),
            other => Err(SalesforceError::bad_response(
                "upsert",
                &format!("unexpected status {other}"),
                &reply.body,
            )),
        }
    }

    /// First page of `/query` or `/queryAll`.
    async fn first_page(&self, soql: &str, include_deleted: bool) -> Result<QueryPage> {
        let (resource, op) = if include_deleted {
            ("queryAll", "query_all")
        } else {
            ("query", "query")
        };
        let call = Call::new(Method::GET, &[resource], op, "").query("q", soql);
        self.send_json(&call).await
    }
}

/// Flattens pages into records.
fn records_of(pages: PageStream) -> RecordStream {
    pages
        .map_ok(|page| stream::iter(page.records.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// The URLs (or ids) in a 300 Multiple Choices body.
fn parse_matches(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Vec<Value>>(body) {
        Ok(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        Err(_) => vec![super::error::snippet(body)],
    }
}

/// Serializes a record without some keys (compared case-insensitively).
struct WithoutKeys<'a, const N: usize> {
    /// The record.
    record: &'a Record,
    /// Keys to leave out.
    skip: [&'a str; N],
}

impl<const N: usize> Serialize for WithoutKeys<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(
            self.record
                .iter()
                .filter(|(k, _)| !self.skip.iter().any(|skip| k.eq_ignore_ascii_case(skip))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_ignores_unknown_fields() {
        let json = r#"{"name":"Account","fields":[{"name":"OwnerId","type":"reference",
            "length":18,"referenceTo":["Group","User"],"relationshipName":"Owner",
            "polymorphicForeignKey":true,"picklistValues":[],"nillable":false},
            {"name":"Weird","type":"brandnew","picklistValues":[{"value":"A","active":true,
            "validFor":null}]}]}"#;
        let d: SObjectDescribe = serde_json::from_str(json).unwrap();
        let owner = d.field("ownerid").unwrap();
        assert_eq!(owner.field_type, FieldType::Reference);
        assert_eq!(owner.reference_to, ["Group", "User"]);
        assert_eq!(owner.relationship_name.as_deref(), Some("Owner"));
        let weird = d.field("Weird").unwrap();
        assert_eq!(weird.field_type, FieldType::Other("brandnew".into()));
        assert!(weird.picklist_values[0].active);
    }

    #[test]
    fn limits_to_usage() {
        let l: Limits = serde_json::from_str(
            r#"{"DailyApiRequests":{"Max":15000,"Remaining":14998,"App":{"Max":0,"Remaining":0}},
                "DataStorageMB":{"Max":1073,"Remaining":1073}}"#,
        )
        .unwrap();
        let u = l.daily_api_usage().unwrap();
        assert_eq!((u.used, u.max), (2, 15000));
    }

    #[test]
    fn upsert_body_drops_id_and_key() {
        let mut r = Record::new();
        r.insert("Id".into(), Value::from("001"));
        r.insert("ext__c".into(), Value::from("k"));
        r.insert("Name".into(), Value::from("Acme"));
        let body = WithoutKeys {
            record: &r,
            skip: ["Id", "Ext__c"],
        };
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"Name":"Acme"}"#);
    }
}
