//! sObject Collections (`/composite/sobjects`): create, update, upsert, delete and retrieve
//! up to 200 records per call, answering 200 with one result per record in request order
//! (per-record errors carry `statusCode`).
//!
//! `allOrNone: true` on update, upsert and delete is implemented with an undo log: every
//! record is attempted, and if any fails the successful writes are undone in reverse order
//! (inserts hard-deleted, updates and deletes restored from the snapshot taken before the
//! write) and every other record reports `ALL_OR_NONE_OPERATION_ROLLED_BACK`. Undone deletes still leave an entry in the store's
//! delete log (getDeleted may report them), the one visible difference from a real
//! transaction. A create is not undone but never written: its records are validated first
//! and written together under the tables' locks ([`Store::insert_together`]), so readers see
//! all of a call's successful records at once, and an allOrNone create that fails writes
//! nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::{ApiVersion, AuthContext};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::ids::Id;
use crate::latency::Delay;
use crate::state::{AppState, EmulatorState};
use crate::store::{Record, Store, UpsertError};
use crate::txn::{Txn, Writer};

/// Most records per create/update/upsert/delete call.
pub const MAX_RECORDS: usize = 200;
/// Most ids per retrieve call.
pub const MAX_RETRIEVE: usize = 2_000;

/// The routes of sObject Collections.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/services/data/{version}/composite/sobjects",
            patch(update).post(create).delete(delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}",
            get(retrieve).post(retrieve_post),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}/{field}",
            patch(upsert),
        )
}

/// A per-record error (`statusCode` form).
#[derive(Debug, Clone)]
struct RecordError {
    code: String,
    message: String,
    fields: Vec<String>,
}

impl RecordError {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    fn json(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

impl From<&FieldError> for RecordError {
    fn from(e: &FieldError) -> Self {
        Self {
            code: e.code.as_str().to_string(),
            message: e.message.clone(),
            fields: e.fields.clone(),
        }
    }
}

/// Converts the store's errors (keeps the first, as Salesforce's results show one cause).
fn record_errors(errors: &[FieldError]) -> Vec<RecordError> {
    errors.iter().take(1).map(RecordError::from).collect()
}

/// What a successful write changed, so it can be undone.
#[derive(Debug)]
enum Undo {
    /// A record was inserted.
    Created(Id),
    /// A record was changed (update or soft delete); restore this snapshot.
    Changed(String, Arc<Record>),
}

/// One record's outcome.
#[derive(Debug)]
struct Outcome {
    id: Option<Id>,
    created: Option<bool>,
    result: Result<Option<Undo>, Vec<RecordError>>,
}

impl Outcome {
    fn failed(id: Option<Id>, errors: Vec<RecordError>) -> Self {
        Outcome {
            id,
            created: None,
            result: Err(errors),
        }
    }
}

/// `{allOrNone, records}` of a write request.
#[derive(Debug)]
struct WriteRequest {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

/// Parses and size-checks a write body.
fn write_request(body: &[u8]) -> Result<WriteRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::json_parser(format!("Unexpected character in JSON: {e}")))?;
    let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let Some(list) = v.get("records").and_then(Value::as_array) else {
        return Err(ApiError::json_parser(
            "Cannot deserialize the request: records is required and must be an array",
        ));
    };
    check_count(list.len())?;
    let records = list
        .iter()
        .map(|r| {
            r.as_object().cloned().ok_or_else(|| {
                ApiError::json_parser("Cannot deserialize instance of SObject from a non-object")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(WriteRequest {
        all_or_none,
        records,
    })
}

/// 400 `EXCEEDED_ID_LIMIT` past 200 records.
fn check_count(n: usize) -> Result<(), ApiError> {
    if n > MAX_RECORDS {
        return Err(ApiError::new(
            ErrorCode::ExceededIdLimit,
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    Ok(())
}

/// `attributes.type` of a record.
fn type_of(r: &Map<String, Value>) -> Option<&str> {
    r.get("attributes")?.get("type")?.as_str()
}

/// The record's type, validated against the schema.
fn record_object(
    state: &EmulatorState,
    r: &Map<String, Value>,
) -> Result<String, Vec<RecordError>> {
    let Some(t) = type_of(r) else {
        return Err(vec![RecordError::new(
            "INVALID_TYPE",
            "Must specify a type in attributes",
        )]);
    };
    state
        .schema
        .object(t)
        .map(|o| o.name.clone())
        .ok_or_else(|| {
            vec![RecordError::new(
                "INVALID_TYPE",
                format!("sObject type '{t}' is not supported."),
            )]
        })
}

/// The latency profile's server cost of writing `n` records.
async fn charge_records(state: &AppState, n: usize) {
    state.latency.wait(Delay::Records(n as u64)).await;
}

/// `POST /composite/sobjects`: create, mixed types allowed. The call's successful records
/// become visible together ([`Store::insert_together`]), as Salesforce commits the call at
/// once; with `allOrNone` a failure writes nothing.
async fn create(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = write_request(&body)?;
    charge_records(&state, req.records.len()).await;
    // A record without a known type fails in the store as well (no such table), so an
    // allOrNone call with one writes nothing; its error is the one `record_object` gives.
    let typed: Vec<(&str, &Map<String, Value>)> = req
        .records
        .iter()
        .map(|r| (type_of(r).unwrap_or_default(), r))
        .collect();
    let savepoint = auth.txn.savepoint();
    let together = state
        .store
        .insert_together(&typed, auth.writer(), req.all_or_none);
    let outcomes = req
        .records
        .iter()
        .zip(together.results)
        .map(|(r, result)| match (record_object(&state, r), result) {
            (Err(e), _) => Outcome::failed(None, e),
            (Ok(_), Ok(id)) => Outcome {
                id: Some(id),
                created: None,
                result: Ok(together.committed.then_some(Undo::Created(id))),
            },
            (Ok(_), Err(e)) => Outcome::failed(None, record_errors(&e)),
        })
        .collect();
    Ok(Json(finish(
        &state.store,
        outcomes,
        req.all_or_none,
        false,
        (&auth.txn, savepoint),
    )))
}

/// The `id`/`Id` of an update record.
fn record_id(r: &Map<String, Value>) -> Result<Id, Vec<RecordError>> {
    let raw = r
        .get("id")
        .or_else(|| r.get("Id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            vec![RecordError::new(
                "MISSING_ARGUMENT",
                "Id not specified in an update call",
            )]
        })?;
    Id::parse(raw).map_err(|_| {
        vec![RecordError::new(
            "MALFORMED_ID",
            format!("Record ID: id value of incorrect type: {raw}"),
        )]
    })
}

/// `PATCH /composite/sobjects`: update by id.
async fn update(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = write_request(&body)?;
    charge_records(&state, req.records.len()).await;
    let user = auth.writer();
    let savepoint = auth.txn.savepoint();
    let outcomes = req
        .records
        .iter()
        .map(|r| update_one(&state, r, &user))
        .collect();
    Ok(Json(finish(
        &state.store,
        outcomes,
        req.all_or_none,
        false,
        (&auth.txn, savepoint),
    )))
}

/// Updates one record, remembering its previous version.
fn update_one(state: &EmulatorState, r: &Map<String, Value>, user: &Writer) -> Outcome {
    let object = match record_object(state, r) {
        Ok(o) => o,
        Err(e) => return Outcome::failed(id_hint(r), e),
    };
    let id = match record_id(r) {
        Ok(id) => id,
        Err(e) => return Outcome::failed(None, e),
    };
    let before = state.store.get(&id);
    match state.store.update(&object, &id, r, user) {
        Ok(()) => Outcome {
            id: Some(id),
            created: None,
            result: Ok(before.map(|b| Undo::Changed(object, b))),
        },
        Err(e) => Outcome::failed(Some(id), record_errors(&e)),
    }
}

/// The record's id, if it parses (for failure results).
fn id_hint(r: &Map<String, Value>) -> Option<Id> {
    r.get("id")
        .or_else(|| r.get("Id"))
        .and_then(Value::as_str)
        .and_then(|s| Id::parse(s).ok())
}

/// `PATCH /composite/sobjects/{object}/{field}`: upsert by external id.
async fn upsert(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path((_, object, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = write_request(&body)?;
    charge_records(&state, req.records.len()).await;
    let def = state.schema.object(&object).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidType,
            format!("sObject type '{object}' is not supported."),
        )
    })?;
    let field = upsert_field(def, &field)?;
    let duplicates = duplicate_values(&req.records, &field);
    let user = auth.writer();
    let savepoint = auth.txn.savepoint();
    let ctx = UpsertCtx {
        store: &state.store,
        object: &def.name,
        field: &field,
        user: &user,
        duplicates: &duplicates,
    };
    let outcomes = req.records.iter().map(|r| ctx.one(r)).collect();
    Ok(Json(finish(
        &state.store,
        outcomes,
        req.all_or_none,
        true,
        (&auth.txn, savepoint),
    )))
}

/// The canonical upsert key field (`Id` or an external-id field).
fn upsert_field(def: &crate::schema::ObjectDef, field: &str) -> Result<String, ApiError> {
    if field.eq_ignore_ascii_case("Id") {
        return Ok("Id".into());
    }
    match def.field(field) {
        Some(f) if f.external_id || (f.id_lookup && f.unique) => Ok(f.name.clone()),
        _ => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("Invalid field for upsert, must be an External Id custom or standard indexed field: {field}"),
        )),
    }
}

/// Key values given more than once in one request (case-insensitively).
fn duplicate_values(records: &[Map<String, Value>], field: &str) -> HashSet<String> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for r in records {
        if let Some(v) = key_value(r, field) {
            *seen.entry(v.to_lowercase()).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect()
}

/// The key field's value in a record (text of a string or number).
fn key_value(r: &Map<String, Value>, field: &str) -> Option<String> {
    let v = r
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .map(|(_, v)| v)?;
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Everything one upsert record needs.
struct UpsertCtx<'a> {
    store: &'a Store,
    object: &'a str,
    field: &'a str,
    user: &'a Writer,
    duplicates: &'a HashSet<String>,
}

impl UpsertCtx<'_> {
    /// Upserts one record.
    fn one(&self, r: &Map<String, Value>) -> Outcome {
        if let Some(t) = type_of(r).filter(|t| !t.eq_ignore_ascii_case(self.object)) {
            return Outcome::failed(
                None,
                vec![RecordError::new(
                    "INVALID_TYPE",
                    format!(
                        "Record type {t} does not match the upsert object {}",
                        self.object
                    ),
                )],
            );
        }
        let value = key_value(r, self.field).unwrap_or_default();
        if self.duplicates.contains(&value.to_lowercase()) {
            let mut e = RecordError::new(
                "DUPLICATE_VALUE",
                format!("Duplicate external id specified: {value}"),
            );
            e.fields = vec![self.field.to_string()];
            return Outcome::failed(None, vec![e]);
        }
        let before = self.matched_snapshot(&value);
        let mut body = r.clone();
        body.retain(|k, _| !k.eq_ignore_ascii_case(self.field));
        match self
            .store
            .upsert_by_external_id(self.object, self.field, &value, &body, self.user)
        {
            Ok(u) => Outcome {
                id: Some(u.id),
                created: Some(u.created),
                result: Ok(Some(if u.created {
                    Undo::Created(u.id)
                } else {
                    match before {
                        Some(b) => Undo::Changed(self.object.to_string(), b),
                        None => Undo::Created(u.id),
                    }
                })),
            },
            Err(UpsertError::Multiple(ids)) => {
                let list: Vec<String> = ids.iter().map(Id::to_string).collect();
                Outcome::failed(
                    None,
                    vec![RecordError::new(
                        "DUPLICATE_EXTERNAL_ID",
                        format!(
                            "{} - {}: more than one record found for external id field: [{}]",
                            self.object,
                            self.field,
                            list.join(", ")
                        ),
                    )],
                )
            }
            Err(UpsertError::NotExternalId(f)) => Outcome::failed(
                None,
                vec![RecordError::new(
                    "INVALID_FIELD",
                    format!("Invalid field for upsert: {f}"),
                )],
            ),
            Err(UpsertError::Invalid(e)) => Outcome::failed(None, record_errors(&e)),
        }
    }

    /// The record an upsert of `value` would update, before it does.
    fn matched_snapshot(&self, value: &str) -> Option<Arc<Record>> {
        let ids = if self.field == "Id" {
            Id::parse(value).ok().into_iter().collect()
        } else {
            self.store
                .find_by_external_id(self.object, self.field, value)
                .ok()?
        };
        match ids.as_slice() {
            [id] => self.store.get(id),
            _ => None,
        }
    }
}

/// `?ids=&allOrNone=` of a delete.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteParams {
    ids: Option<String>,
    all_or_none: Option<String>,
}

/// `DELETE /composite/sobjects?ids=…&allOrNone=…`.
async fn delete(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Query(p): Query<DeleteParams>,
) -> Result<Json<Value>, ApiError> {
    let ids: Vec<&str> = p
        .ids
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "ids parameter is required",
        ));
    }
    check_count(ids.len())?;
    charge_records(&state, ids.len()).await;
    let all_or_none = p
        .all_or_none
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let user = auth.writer();
    let savepoint = auth.txn.savepoint();
    let outcomes = ids
        .iter()
        .map(|raw| delete_one(&state.store, raw, &user))
        .collect();
    Ok(Json(finish(
        &state.store,
        outcomes,
        all_or_none,
        false,
        (&auth.txn, savepoint),
    )))
}

/// Soft-deletes one record, remembering it.
fn delete_one(store: &Store, raw: &str, user: &Writer) -> Outcome {
    let Ok(id) = Id::parse(raw) else {
        return Outcome::failed(
            None,
            vec![RecordError::new(
                "MALFORMED_ID",
                format!("malformed id {raw}"),
            )],
        );
    };
    let before = store.get(&id);
    let object = store.object_of(&id).map(str::to_string);
    match store.delete(&id, user) {
        Ok(()) => Outcome {
            id: Some(id),
            created: None,
            result: Ok(before.zip(object).map(|(b, o)| Undo::Changed(o, b))),
        },
        Err(e) if e.code == ErrorCode::NotFound => Outcome::failed(
            Some(id),
            vec![RecordError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            )],
        ),
        Err(e) => Outcome::failed(Some(id), record_errors(std::slice::from_ref(&e))),
    }
}

/// Applies allOrNone and renders the per-record results.
/// On rollback the changes this call put in the request's transaction since `savepoint`
/// are dropped too, so rolled-back writes publish no change events.
fn finish(
    store: &Store,
    mut outcomes: Vec<Outcome>,
    all_or_none: bool,
    upsert: bool,
    (txn, savepoint): (&Txn, usize),
) -> Value {
    let any_failed = outcomes.iter().any(|o| o.result.is_err());
    if all_or_none && any_failed {
        roll_back(store, &mut outcomes);
        txn.rollback_to(savepoint);
    }
    Value::Array(outcomes.iter().map(|o| result_json(o, upsert)).collect())
}

/// Undoes every successful write (newest first) and marks those records rolled back.
fn roll_back(store: &Store, outcomes: &mut [Outcome]) {
    for o in outcomes.iter_mut().rev() {
        let Ok(undo) = &o.result else { continue };
        match undo {
            Some(Undo::Created(id)) => {
                let _ = store.hard_delete(id);
            }
            Some(Undo::Changed(object, before)) => {
                let _ = store.put_raw(object, (**before).clone());
            }
            None => {}
        }
        o.id = None;
        o.created = Some(false);
        o.result = Err(vec![RecordError::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
        )]);
    }
}

/// One per-record result.
fn result_json(o: &Outcome, upsert: bool) -> Value {
    let mut m = Map::new();
    m.insert(
        "id".into(),
        o.id.map_or(Value::Null, |i| json!(i.to_string())),
    );
    m.insert("success".into(), json!(o.result.is_ok()));
    let errors: Vec<Value> = match &o.result {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(RecordError::json).collect(),
    };
    m.insert("errors".into(), Value::Array(errors));
    if upsert {
        m.insert("created".into(), json!(o.created.unwrap_or(false)));
    }
    Value::Object(m)
}

/// `?ids=&fields=` of a retrieve.
#[derive(Debug, Deserialize)]
struct RetrieveParams {
    ids: Option<String>,
    fields: Option<String>,
}

/// `GET /composite/sobjects/{object}?ids=…&fields=…`.
async fn retrieve(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path((_, object)): Path<(String, String)>,
    Query(p): Query<RetrieveParams>,
) -> Result<Json<Value>, ApiError> {
    let split = |s: Option<String>| -> Vec<String> {
        s.unwrap_or_default()
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    };
    retrieve_records(&state, version, &object, &split(p.ids), &split(p.fields)).map(Json)
}

/// `POST /composite/sobjects/{object}` with `{"ids": […], "fields": […]}`.
async fn retrieve_post(
    State(state): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path((_, object)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::json_parser(format!("Unexpected character in JSON: {e}")))?;
    let list = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    retrieve_records(&state, version, &object, &list("ids"), &list("fields")).map(Json)
}

/// The records (or `null` for unknown / deleted ids) with the requested fields.
fn retrieve_records(
    state: &EmulatorState,
    version: ApiVersion,
    object: &str,
    ids: &[String],
    fields: &[String],
) -> Result<Value, ApiError> {
    let def = state.schema.object(object).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidType,
            format!("sObject type '{object}' is not supported."),
        )
    })?;
    if ids.is_empty() || fields.is_empty() {
        return Err(ApiError::with_status(
            StatusCode::BAD_REQUEST,
            vec![FieldError::new(
                ErrorCode::InvalidField,
                "Both ids and fields are required",
            )],
        ));
    }
    if ids.len() > MAX_RETRIEVE {
        return Err(ApiError::new(
            ErrorCode::ExceededIdLimit,
            "record limit reached. cannot retrieve more than 2000 records into this call",
        ));
    }
    let names = fields
        .iter()
        .map(|f| {
            def.field(f).map(|d| d.name.clone()).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidField,
                    format!("No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", def.name),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let base = version.base();
    let out = ids
        .iter()
        .map(|raw| {
            let Some(r) = Id::parse(raw)
                .ok()
                .filter(|id| id.key_prefix() == def.key_prefix)
                .and_then(|id| state.store.get_live(&id).ok())
            else {
                return Value::Null;
            };
            let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
            let mut m = Map::new();
            m.insert(
                "attributes".into(),
                json!({"type": def.name, "url": format!("{base}/sobjects/{}/{id}", def.name)}),
            );
            for n in &names {
                m.insert(n.clone(), r.get(n).cloned().unwrap_or(Value::Null));
            }
            Value::Object(m)
        })
        .collect();
    Ok(Value::Array(out))
}
