//! The configuration model: one TOML file, `[[pipelines]]` each with a source, Salesforce
//! connection and `[[pipelines.mappings]]`.
//!
//! Every struct rejects unknown keys. Defaults come from named `default_*` functions.
//! Fields that take either a short string or a table (`fields`, `transform`, `delete`)
//! have hand-written `Deserialize` impls so errors keep pointing at the right key.
//! `deploy/examples/README.md` is the key-by-key reference built from these docs.

use std::collections::BTreeMap;
use std::fmt;

use chrono::FixedOffset;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::secret::Secret;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The process: ops listener and shutdown.
    #[serde(default)]
    pub server: ServerConfig,
    /// The change journal kept for `pgforce replay`.
    #[serde(default)]
    pub journal: JournalConfig,
    /// One entry per replication pipeline (one slot, one Salesforce org).
    pub pipelines: Vec<PipelineConfig>,
}

/// `[server]`: the ops listener and shutdown behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the ops listener (`/metrics`, `/healthz`, `/readyz`, `/status`).
    /// Default `127.0.0.1:9187` (loopback); `PGFORCE_OPS_LISTEN` overrides it.
    #[serde(default)]
    pub listen: Option<String>,
    /// Seconds pgforce spends draining on SIGTERM/SIGINT (flush complete transactions,
    /// checkpoint, confirm) before it exits anyway. Default 30. A second signal exits at once.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            shutdown_grace_seconds: default_shutdown_grace(),
        }
    }
}

fn default_shutdown_grace() -> u64 {
    30
}

/// `[journal]`: mapped changes kept on local disk so a range can be replayed to Salesforce
/// after the slot moved on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Directory of the journal (one subdirectory per pipeline). Unset: no journal, and
    /// `pgforce replay` is unavailable.
    #[serde(default)]
    pub dir: Option<String>,
    /// Keep at most this many MiB per pipeline (oldest segments go first). Default 1024.
    #[serde(default = "default_journal_mib")]
    pub max_mib: u64,
    /// Keep changes at most this many hours. Default 168 (7 days).
    #[serde(default = "default_journal_hours")]
    pub max_age_hours: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            dir: None,
            max_mib: default_journal_mib(),
            max_age_hours: default_journal_hours(),
        }
    }
}

fn default_journal_mib() -> u64 {
    1024
}

fn default_journal_hours() -> u64 {
    168
}

/// One pipeline: a publication and slot in one database, synced to one Salesforce org.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Unique name; used in state tables, metrics and logs. Letters, digits, `_`, `-`.
    pub name: String,
    /// The Postgres database to replicate from.
    pub source: SourceConfig,
    /// The publication the slot streams. pgforce creates it and adds mapped tables when
    /// `manage_publication` is true. Required when the pipeline has `mappings`.
    #[serde(default)]
    pub publication: String,
    /// Whether pgforce may create the publication and add mapped tables to it (default
    /// true). When false, a mapped table missing from the publication is an error.
    #[serde(default = "default_true")]
    pub manage_publication: bool,
    /// Logical replication slot name: lowercase letters, digits and `_`, at most 63.
    /// Required when the pipeline has `mappings`.
    #[serde(default)]
    pub slot: String,
    /// Replication origin pgforce writes under (write-backs, state), so its own writes are
    /// not replicated back. Default `pgforce`.
    #[serde(default = "default_pgforce")]
    pub replication_origin: String,
    /// Schema holding pgforce's state tables (checkpoints, in-flight jobs, id map, dead
    /// letters). Default `pgforce`.
    #[serde(default = "default_pgforce")]
    pub state_schema: String,
    /// When a batch is flushed.
    #[serde(default)]
    pub batching: BatchingConfig,
    /// The Salesforce org and how to log in.
    pub salesforce: SalesforceConfig,
    /// Table → sObject mappings (Postgres → Salesforce). A pipeline needs mappings,
    /// inbound entries or jobs (any of them, or several).
    #[serde(default)]
    pub mappings: Vec<MappingConfig>,
    /// Salesforce → Postgres entries (`[[pipelines.inbound]]`, see [`super::inbound`]).
    #[serde(default)]
    pub inbound: Vec<super::inbound::InboundConfig>,
    /// Query-driven jobs on this pipeline's database and org (see [`super::jobs`]).
    #[serde(default)]
    pub jobs: Vec<super::jobs::JobConfig>,
    /// Two-way pairs, table ⇄ object (`[[pipelines.pairs]]`, see [`super::pair`]). Each
    /// adds a mapping and an inbound entry named after it when the config is loaded.
    #[serde(default)]
    pub pairs: Vec<super::pair::PairConfig>,
}

/// Where to replicate from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Connection string or `postgres://` URL (TLS keys `sslmode`, `sslrootcert`: see
    /// [`crate::pgconn`]). Inline only without a password; with one, by reference
    /// (`env:DATABASE_URL` or `file:/run/secrets/db_url`).
    #[serde(deserialize_with = "super::secret::inline_or_reference")]
    pub database_url: Secret,
}

/// Flush policy: a batch is sent when any limit is reached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingConfig {
    /// Most rows in one Bulk job. Default 10000.
    #[serde(default = "default_max_batch_rows")]
    pub max_batch_rows: usize,
    /// Most CSV bytes in one Bulk upload. Default 90000000 (90 MB), under Salesforce's
    /// 100 MB raw (150 MB base64) per-job limit; at most 100000000.
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: u64,
    /// Longest a change waits in a batch before the batch is flushed, in ms. Default 1000.
    #[serde(default = "default_max_batch_age_ms")]
    pub max_batch_age_ms: u64,
    /// Batches with fewer rows than this go through sObject Collections (200 records per
    /// call, synchronous) instead of a Bulk job. Default 200; 0 means always Bulk.
    #[serde(default = "default_collections_threshold")]
    pub collections_threshold: usize,
    /// Most Bulk jobs of one epoch in flight at once (steps of one object with disjoint
    /// keys, e.g. a backfill chunk split into several jobs). Default 4; 1–25 (Salesforce
    /// allows 25 concurrent long-running requests per org, and parallel jobs share the
    /// org's row locks).
    #[serde(default = "default_max_concurrent_bulk_jobs")]
    pub max_concurrent_bulk_jobs: usize,
    /// Most sObject Collections calls of one step in flight at once. Default 4; 1–25.
    #[serde(default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_batch_rows: default_max_batch_rows(),
            max_batch_bytes: default_max_batch_bytes(),
            max_batch_age_ms: default_max_batch_age_ms(),
            collections_threshold: default_collections_threshold(),
            max_concurrent_bulk_jobs: default_max_concurrent_bulk_jobs(),
            max_concurrent_calls: default_max_concurrent_calls(),
        }
    }
}

/// The Salesforce org.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// OAuth token host: `https://login.salesforce.com` (default, production),
    /// `https://test.salesforce.com` (sandbox), or the org's My Domain URL.
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// The org's My Domain URL, e.g. `https://acme.my.salesforce.com`. Required for
    /// `client_credentials` (the token request must go to My Domain); otherwise the token
    /// response's `instance_url` is used.
    #[serde(default)]
    pub instance_url: Option<String>,
    /// REST API version, `NN.N` (a leading `v` is accepted). Default `62.0`; at least 46.0
    /// (upsert results with `created`).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// How to obtain an access token.
    pub auth: AuthConfig,
    /// Percent of the org's daily API requests pgforce leaves for other integrations:
    /// it pauses when less than this remains. 0–100, default 10.
    #[serde(default = "default_api_reserve_percent")]
    pub api_reserve_percent: u8,
    /// Seconds every call waits after Salesforce answers `REQUEST_LIMIT_EXCEEDED` (the
    /// org's API allocation is used up); then `/limits` is checked before calls resume.
    /// At least 1, default 900.
    #[serde(default = "default_limit_exceeded_pause_secs")]
    pub limit_exceeded_pause_secs: u64,
    /// The Pub/Sub API endpoint for `source = "cdc"` inbound entries. Default
    /// `https://api.pubsub.salesforce.com:7443`; plain `http://` only on loopback.
    #[serde(default = "default_pubsub_endpoint")]
    pub pubsub_endpoint: String,
}

/// OAuth 2.0 grant, chosen with `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    /// `type = "jwt_bearer"`: server-to-server with a certificate (recommended).
    JwtBearer(JwtBearerAuth),
    /// `type = "refresh_token"`: a refresh token obtained once through a web flow.
    RefreshToken(RefreshTokenAuth),
    /// `type = "client_credentials"`: the connected app's "Run As" user.
    ClientCredentials(ClientCredentialsAuth),
    /// `type = "password"`: username-password flow (blocked by default in newer orgs).
    Password(PasswordAuth),
}

/// JWT bearer grant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtBearerAuth {
    /// Connected app consumer key (the JWT `iss`).
    pub client_id: String,
    /// Integration user's username (the JWT `sub`).
    pub username: String,
    /// PEM RSA private key whose certificate is uploaded to the connected app (secret ref).
    pub private_key: Secret,
    /// JWT `aud`: `https://login.salesforce.com` or `https://test.salesforce.com`, never the
    /// My Domain URL. Default: `login_url`.
    #[serde(default)]
    pub audience: Option<String>,
}

/// Refresh-token grant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenAuth {
    /// Connected app consumer key.
    pub client_id: String,
    /// Consumer secret, when the app requires one (secret ref).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The refresh token (secret ref).
    pub refresh_token: Secret,
}

/// Client-credentials grant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsAuth {
    /// Connected app consumer key.
    pub client_id: String,
    /// Consumer secret (secret ref).
    pub client_secret: Secret,
}

/// Username-password grant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordAuth {
    /// Connected app consumer key.
    pub client_id: String,
    /// Consumer secret (secret ref).
    pub client_secret: Secret,
    /// The user's username.
    pub username: String,
    /// The user's password (secret ref).
    pub password: Secret,
    /// Security token appended to the password, when the org requires one (secret ref).
    #[serde(default)]
    pub security_token: Option<Secret>,
}

/// One table → one sObject. A table may have several mappings (e.g. to a custom object and
/// to fields of its parent Account).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Unique within the pipeline; names the mapping in errors and dead letters.
    pub name: String,
    /// Source table, `schema.table` (a bare name means `public.name`).
    pub table: String,
    /// Target sObject API name, e.g. `Contact` or `Subscription__c`.
    pub object: String,
    /// The column whose value identifies the record, and the Salesforce External ID field
    /// it is upserted by.
    pub external_id: ExternalIdConfig,
    /// Column → field. A value is either the field name (`email = "Email"`) or a table
    /// `{ field = "Status__c", transform = { type = "value_map", … } }`.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// Parent records referenced by their external id (Bulk column
    /// `Relationship.External_Id__c`).
    #[serde(default)]
    pub lookups: Vec<LookupConfig>,
    /// Only rows matching every condition are synced. Empty: all rows.
    #[serde(default)]
    pub filter: Vec<FilterCondition>,
    /// What an UPDATE that moves a row out of the filter does: `delete` (default: apply the
    /// `delete` policy) or `ignore` (leave the record as it was).
    #[serde(default)]
    pub on_filter_exit: FilterExit,
    /// What a DELETE does: `"delete"` (default), `"ignore"`, or
    /// `{ soft = { field = "Is_Deleted__c", value = true } }` (upsert that one field).
    #[serde(default)]
    pub delete: DeletePolicy,
    /// Write the Salesforce record Id back into this column of the source row.
    #[serde(default)]
    pub write_back: Option<WriteBackConfig>,
    /// UTC offset for `timestamp without time zone` columns (`UTC`, `+02:00`). Default UTC.
    #[serde(default)]
    pub timezone: Option<Zone>,
}

/// The record key: an External ID field records are upserted by
/// (`{ column = "id", field = "External_Id__c" }`), or an ordinary field records are
/// matched by (`{ column = "email", match_by = "Email" }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "ExternalIdTable")]
pub struct ExternalIdConfig {
    /// Source column (ideally the primary key or another unique, non-null column).
    pub column: String,
    /// The key field: a Salesforce field marked External ID and Unique, e.g.
    /// `External_Id__c`, or (with [`match_by`](Self::match_by)) the field records are
    /// matched by.
    pub field: String,
    /// The key field is not an External ID (`match_by = "Email"`): records are found by a
    /// batched SOQL lookup on it (the id map first), then updated by Id, or created when
    /// none matches; two records with one value are dead-lettered with both Ids, never
    /// guessed. The column's value is sent as the field (do not map it again in `fields`).
    pub match_by: bool,
}

/// Table form of [`ExternalIdConfig`]: exactly one of `field` and `match_by`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalIdTable {
    column: String,
    field: Option<String>,
    match_by: Option<String>,
}

impl TryFrom<ExternalIdTable> for ExternalIdConfig {
    type Error = String;
    fn try_from(t: ExternalIdTable) -> Result<Self, String> {
        let (field, match_by) = match (t.field, t.match_by) {
            (Some(f), None) => (f, false),
            (None, Some(f)) => (f, true),
            (Some(_), Some(_)) => {
                return Err(
                    "external_id takes `field` (an External ID field) or `match_by` \
                            (an ordinary field records are matched by), not both"
                        .into(),
                )
            }
            (None, None) => {
                return Err("external_id needs `field` (an External ID field, e.g. \
                            \"External_Id__c\") or `match_by` (e.g. \"Email\")"
                    .into())
            }
        };
        Ok(ExternalIdConfig {
            column: t.column,
            field,
            match_by,
        })
    }
}

/// Where a column goes and how it is converted.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// Target field API name.
    pub field: String,
    /// Conversion; none means the default conversion for the column's type.
    pub transform: Option<Transform>,
}

/// Table form of [`FieldSpec`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpecTable {
    field: String,
    #[serde(default, deserialize_with = "string_or_transform")]
    transform: Option<Transform>,
}

impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name or a table { field = \"…\", transform = { … } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldSpec, E> {
                Ok(FieldSpec {
                    field: v.to_string(),
                    transform: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldSpec, A::Error> {
                let t = FieldSpecTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldSpec {
                    field: t.field,
                    transform: t.transform,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A value conversion, chosen with `type`. Parameterless ones may be written as a string:
/// `transform = "json"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// Enum/text (or bool/integer, by their text) → picklist value via `values`.
    ValueMap {
        /// Source value → picklist value.
        values: BTreeMap<String, String>,
        /// Used for values not in `values`; without it an unmapped value is an error.
        #[serde(default)]
        default: Option<String>,
    },
    /// json/jsonb (or an array) → compact JSON text.
    Json,
    /// Array → `a;b;c`. With `split`, a text column is split on that separator first.
    Multipicklist {
        /// Separator for text input, e.g. `","`.
        #[serde(default)]
        split: Option<String>,
    },
    /// Exact decimal rounded half away from zero to `scale` places; more than
    /// `precision - scale` integer digits is an error.
    Numeric {
        /// Total significant digits allowed (Salesforce field precision).
        precision: u32,
        /// Decimal places (Salesforce field scale).
        scale: u32,
    },
    /// timestamptz/timestamp/date → UTC datetime `yyyy-MM-ddTHH:mm:ss.SSSZ`.
    Datetime {
        /// Offset for values without a time zone; default the mapping's `timezone`.
        #[serde(default)]
        timezone: Option<Zone>,
    },
    /// date/timestamp/timestamptz → `yyyy-MM-dd` (timestamptz: the date in `timezone`).
    Date {
        /// Offset to take the date of a timestamptz in; default UTC.
        #[serde(default)]
        timezone: Option<Zone>,
    },
    /// bool, 0/1 integers, or text matched case-insensitively against the lists.
    Bool {
        /// Text meaning true; default `true, t, yes, y, 1, on`.
        #[serde(default)]
        true_values: Option<Vec<String>>,
        /// Text meaning false; default `false, f, no, n, 0, off`.
        #[serde(default)]
        false_values: Option<Vec<String>>,
    },
    /// Any value → its text. Longer than `max_length` characters is an error, or cut when
    /// `truncate = true`. Also the way to send an interval (ISO 8601 duration).
    String {
        /// Salesforce field length.
        #[serde(default)]
        max_length: Option<usize>,
        /// Cut to `max_length` instead of failing. Default false.
        #[serde(default)]
        truncate: bool,
    },
}

impl Transform {
    /// The `type` name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::ValueMap { .. } => "value_map",
            Transform::Json => "json",
            Transform::Multipicklist { .. } => "multipicklist",
            Transform::Numeric { .. } => "numeric",
            Transform::Datetime { .. } => "datetime",
            Transform::Date { .. } => "date",
            Transform::Bool { .. } => "bool",
            Transform::String { .. } => "string",
        }
    }
}

/// Parses `transform = "json"` and `transform = { type = "json", … }` alike.
fn string_or_transform<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Transform>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Transform;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a transform name or a table { type = \"…\", … }")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Transform, E> {
            transform_from_name(v)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Transform, A::Error> {
            Transform::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V).map(Some)
}

/// The parameterless transforms by name; the others explain how to write them.
fn transform_from_name<E: de::Error>(name: &str) -> Result<Transform, E> {
    match name {
        "json" => Ok(Transform::Json),
        "multipicklist" => Ok(Transform::Multipicklist { split: None }),
        "datetime" => Ok(Transform::Datetime { timezone: None }),
        "date" => Ok(Transform::Date { timezone: None }),
        "bool" => Ok(Transform::Bool {
            true_values: None,
            false_values: None,
        }),
        "string" => Ok(Transform::String {
            max_length: None,
            truncate: false,
        }),
        "value_map" | "numeric" => Err(E::custom(format!(
            "transform `{name}` needs parameters: write it as a table, e.g. {}",
            if name == "numeric" {
                "{ type = \"numeric\", precision = 18, scale = 2 }"
            } else {
                "{ type = \"value_map\", values = { active = \"Active\" } }"
            }
        ))),
        other => Err(E::custom(format!(
            "unknown transform `{other}`, expected one of value_map, json, multipicklist, \
             numeric, datetime, date, bool, string"
        ))),
    }
}

/// What a DELETE of a source row does to the record.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DeletePolicy {
    /// Delete the record (`"delete"`, the default).
    #[default]
    Delete,
    /// Leave the record alone (`"ignore"`).
    Ignore,
    /// Upsert one field instead (`{ soft = { field = "Is_Deleted__c", value = true } }`).
    Soft {
        /// Field to set.
        field: String,
        /// Value to set it to.
        value: Scalar,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftDeleteOuter {
    soft: SoftDelete,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftDelete {
    field: String,
    value: Scalar,
}

impl<'de> Deserialize<'de> for DeletePolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DeletePolicy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"delete\", \"ignore\" or { soft = { field = \"…\", value = … } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DeletePolicy, E> {
                match v {
                    "delete" => Ok(DeletePolicy::Delete),
                    "ignore" => Ok(DeletePolicy::Ignore),
                    "soft" => Err(E::custom(
                        "soft delete needs a field and value: \
                         delete = { soft = { field = \"Is_Deleted__c\", value = true } }",
                    )),
                    other => Err(E::custom(format!(
                        "unknown delete policy `{other}`, expected \"delete\", \"ignore\" or \
                         {{ soft = {{ field = \"…\", value = … }} }}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DeletePolicy, A::Error> {
                let s = SoftDeleteOuter::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(DeletePolicy::Soft {
                    field: s.soft.field,
                    value: s.soft.value,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// What an UPDATE that takes a row out of the filter does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterExit {
    /// Apply the mapping's `delete` policy to the record.
    #[default]
    Delete,
    /// Leave the record as last synced.
    Ignore,
}

/// A parent lookup by external id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// Source column holding the parent's external id value.
    pub column: String,
    /// Parent sObject, e.g. `Account`.
    pub object: String,
    /// Relationship name on this object: `Account` for the standard `AccountId`,
    /// `Account__r` for a custom lookup `Account__c`.
    pub relationship: String,
    /// The parent's External ID field, e.g. `External_Id__c`.
    pub external_id_field: String,
    /// The lookup field itself, set to null when the column is NULL. Default: derived from
    /// `relationship` (`Account` → `AccountId`, `Account__r` → `Account__c`).
    #[serde(default)]
    pub field: Option<String>,
    /// Whether this pipeline also syncs the parent object (default true): then parents are
    /// sent before children and the object must be mapped here. Set false when the parent
    /// records are maintained elsewhere.
    #[serde(default = "default_true")]
    pub parent_synced: bool,
}

impl LookupConfig {
    /// The lookup field API name (explicit, or derived from the relationship name).
    pub fn lookup_field(&self) -> String {
        if let Some(f) = &self.field {
            return f.clone();
        }
        match self.relationship.strip_suffix("__r") {
            Some(base) => format!("{base}__c"),
            None => format!("{}Id", self.relationship),
        }
    }

    /// The Bulk CSV column, `Relationship.ExternalIdField`.
    pub fn csv_column(&self) -> String {
        format!("{}.{}", self.relationship, self.external_id_field)
    }
}

/// One row filter condition: `{ column = "status", op = "!=", value = "deleted" }`.
/// Compared against the column's value as text (bool `true`/`false`, integers in decimal,
/// numerics numerically); NULL never equals anything and fails `=`, `!=`, `in`, `not_in`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterCondition {
    /// Source column.
    pub column: String,
    /// `=`, `!=`, `in`, `not_in`, `is_null`, `is_not_null`.
    pub op: FilterOp,
    /// A string, integer or boolean; a list for `in`/`not_in`; absent for the null tests.
    #[serde(default)]
    pub value: Option<FilterValue>,
}

/// Filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum FilterOp {
    #[serde(rename = "=", alias = "==")]
    Eq,
    #[serde(rename = "!=", alias = "<>")]
    Ne,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "not_in")]
    NotIn,
    #[serde(rename = "is_null")]
    IsNull,
    #[serde(rename = "is_not_null")]
    IsNotNull,
}

/// A filter operand: one scalar or a list.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    One(Scalar),
    List(Vec<Scalar>),
}

/// A plain config value: string, integer or boolean (floats are refused: they are not exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

/// Visitor for [`Scalar`] values.
struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, integer or boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
        Err(E::custom(
            "floats are not exact: write the number as a string, e.g. \"12.50\"",
        ))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for FilterValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FilterValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, integer, boolean or a list of them")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FilterValue, E> {
                ScalarVisitor.visit_bool(v).map(FilterValue::One)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FilterValue, E> {
                ScalarVisitor.visit_i64(v).map(FilterValue::One)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FilterValue, E> {
                ScalarVisitor.visit_u64(v).map(FilterValue::One)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FilterValue, E> {
                ScalarVisitor.visit_f64(v).map(FilterValue::One)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FilterValue, E> {
                ScalarVisitor.visit_str(v).map(FilterValue::One)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<FilterValue, A::Error> {
                let mut items = Vec::new();
                while let Some(s) = seq.next_element::<Scalar>()? {
                    items.push(s);
                }
                Ok(FilterValue::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// Write the Salesforce Id back into the source row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackConfig {
    /// Text column (at least 18 characters) that receives the record Id. pgforce writes it
    /// under its replication origin, so the write is not synced back.
    pub column: String,
}

/// The zone `timestamp without time zone` values are read in: a fixed UTC offset (`UTC`, `Z`,
/// `+02:00`, `-0530`) or an IANA name (`Europe/Berlin`), with its daylight-saving rules.
///
/// Local times a named zone makes ambiguous or skips are resolved as PostgreSQL's
/// `ts AT TIME ZONE 'Europe/Berlin'` resolves them (see `mapping::convert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Zone {
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
    /// An IANA time zone.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone::Fixed(FixedOffset::east_opt(0).expect("zero offset is valid"))
    }
}

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(s: String) -> Result<Zone, String> {
        if let Some(zone) = parse_zone(&s) {
            return Ok(zone);
        }
        s.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!(
                "`{s}` is neither a UTC offset nor a time zone name: write `UTC`, \
                 `+HH:MM` / `-HH:MM`, or an IANA name such as `Europe/Berlin`"
            )
        })
    }
}

/// Parse `UTC`, `Z`, `±HH:MM`, `±HHMM` or `±HH`.
fn parse_zone(s: &str) -> Option<Zone> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Some(Zone::utc());
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    if hours > 15 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).map(Zone::Fixed)
}

fn default_true() -> bool {
    true
}
fn default_pgforce() -> String {
    "pgforce".into()
}
fn default_max_batch_rows() -> usize {
    10_000
}
fn default_max_batch_bytes() -> u64 {
    90_000_000
}
fn default_max_batch_age_ms() -> u64 {
    1_000
}
fn default_collections_threshold() -> usize {
    200
}
fn default_max_concurrent_bulk_jobs() -> usize {
    4
}
fn default_max_concurrent_calls() -> usize {
    4
}
fn default_login_url() -> String {
    "https://login.salesforce.com".into()
}
fn default_api_version() -> String {
    "62.0".into()
}
fn default_api_reserve_percent() -> u8 {
    10
}
fn default_pubsub_endpoint() -> String {
    super::inbound::DEFAULT_PUBSUB_ENDPOINT.into()
}
fn default_limit_exceeded_pause_secs() -> u64 {
    900
}
