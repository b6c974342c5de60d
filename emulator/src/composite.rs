//! Composite (`POST /composite`): up to 25 subrequests run in order through the same
//! handlers as direct calls, with `@{ref.path}` references to earlier results, counted as one
//! API call.
//!
//! Subrequests are dispatched in-process: a router holding the REST, query and collections
//! routes (without the middleware, so they neither count toward limits nor re-check the
//! token) is called as a tower service with the composite request's session and the
//! subrequest's API version in its extensions.
//!
//! `allOrNone: true` rolls back on the first failing subrequest: records created by earlier
//! subrequests are hard-deleted and records they changed are restored from snapshots taken
//! just before each subrequest ran; every other subrequest answers 400 `PROCESSING_HALTED`.
//! With `allOrNone: false` only subrequests referring to a failed one are halted.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use crate::context::{ApiVersion, AuthContext};
use crate::ids::Id;
use crate::state::{AppState, EmulatorState};
use crate::store::Record;

/// Most subrequests per composite call.
pub const MAX_SUBREQUESTS: usize = 25;

/// The routes of Composite.
pub fn routes() -> Router<AppState> {
    Router::new().route("/services/data/{version}/composite", post(composite))
}

/// The in-process router subrequests go through, built once per emulator.
#[derive(Debug, Default)]
pub struct CompositeState {
    router: OnceLock<Router>,
}

/// The handlers a subrequest may reach.
fn inner_router(state: &AppState) -> Router {
    state
        .ext::<CompositeState>()
        .router
        .get_or_init(|| {
            crate::rest::routes()
                .merge(crate::query::routes())
                .merge(crate::collections::routes())
                .with_state(state.clone())
        })
        .clone()
}

/// One parsed subrequest.
#[derive(Debug, Clone)]
struct SubRequest {
    method: Method,
    url: String,
    reference_id: String,
    body: Option<Value>,
}

/// One subrequest's result.
#[derive(Debug, Clone)]
struct SubResult {
    status: StatusCode,
    headers: Map<String, Value>,
    body: Value,
}

impl SubResult {
    fn failed(&self) -> bool {
        self.status.as_u16() >= 400 || collection_failed(&self.body)
    }

    fn halted(message: &str) -> SubResult {
        SubResult {
            status: StatusCode::BAD_REQUEST,
            headers: Map::new(),
            body: json!([{"errorCode": "PROCESSING_HALTED", "message": message}]),
        }
    }
}

/// A collections result array where some record failed.
fn collection_failed(body: &Value) -> bool {
    body.as_array().is_some_and(|a| {
        a.iter()
            .any(|r| r.get("success").and_then(Value::as_bool) == Some(false))
    })
}

/// A composite request refused as a whole (400 in Salesforce's error array shape).
#[derive(Debug)]
struct Rejected {
    code: &'static str,
    message: String,
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        let body = json!([{"errorCode": self.code, "message": self.message}]);
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// A [`Rejected`] with this code and message.
fn bad_request(code: &'static str, message: impl Into<String>) -> Rejected {
    Rejected {
        code,
        message: message.into(),
    }
}

/// Parses the composite body, or refuses it.
fn parse(body: &[u8]) -> Result<(bool, Vec<SubRequest>), Rejected> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        bad_request(
            "JSON_PARSER_ERROR",
            format!("Unexpected character in JSON: {e}"),
        )
    })?;
    let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let Some(list) = v.get("compositeRequest").and_then(Value::as_array) else {
        return Err(bad_request(
            "JSON_PARSER_ERROR",
            "compositeRequest is required and must be an array",
        ));
    };
    if list.len() > MAX_SUBREQUESTS {
        return Err(bad_request(
            "INVALID_FIELD",
            format!("Limit Exceeded: a composite request can have at most {MAX_SUBREQUESTS} subrequests"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut subs = Vec::with_capacity(list.len());
    for item in list {
        let sub = sub_request(item).map_err(|m| bad_request("INVALID_FIELD", m))?;
        if !seen.insert(sub.reference_id.clone()) {
            return Err(bad_request(
                "INVALID_FIELD",
                format!(
                    "Duplicate referenceId provided in the request: {}",
                    sub.reference_id
                ),
            ));
        }
        subs.push(sub);
    }
    Ok((all_or_none, subs))
}

/// Parses one subrequest.
fn sub_request(v: &Value) -> Result<SubRequest, String> {
    let method = v
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        .ok_or("Each subrequest needs a method")?;
    let url = v
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("/services/data/"))
        .ok_or("Each subrequest needs a url starting with /services/data/")?;
    let reference_id = v
        .get("referenceId")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .ok_or("Each subrequest needs a referenceId made of letters, digits and underscores")?;
    Ok(SubRequest {
        method,
        url: url.to_string(),
        reference_id: reference_id.to_string(),
        body: v.get("body").cloned(),
    })
}

/// `POST /composite`.
async fn composite(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Response {
    let (all_or_none, subs) = match parse(&body) {
        Ok(p) => p,
        Err(rejected) => return rejected.into_response(),
    };
    let router = inner_router(&state);
    let mut results: Vec<SubResult> = Vec::with_capacity(subs.len());
    let mut by_ref: HashMap<String, usize> = HashMap::new();
    let mut undo = UndoLog::default();
    let savepoint = auth.txn.savepoint();
    let mut failed_at = None;
    for (i, sub) in subs.iter().enumerate() {
        let result = match resolve(sub, &results, &by_ref, all_or_none) {
            Err(message) => SubResult::halted(&message),
            Ok(sub) => {
                let before = undo.snapshot(&state, &sub);
                let r = dispatch(&router, &auth, &sub).await;
                undo.record(&state, &sub, &r, before);
                r
            }
        };
        let failed = result.failed();
        by_ref.insert(sub.reference_id.clone(), i);
        results.push(result);
        if all_or_none && failed {
            failed_at = Some(i);
            break;
        }
    }
    if let Some(f) = failed_at {
        undo.roll_back(&state);
        auth.txn.rollback_to(savepoint);
        halt_all(&mut results, f, subs.len());
    }
    respond(&subs, &results)
}

/// Replaces every result but the failed one with PROCESSING_HALTED, and fills the rest.
fn halt_all(results: &mut Vec<SubResult>, failed: usize, total: usize) {
    const ROLLED_BACK: &str =
        "The transaction was rolled back since another operation in the same transaction failed.";
    for (i, r) in results.iter_mut().enumerate() {
        if i != failed {
            *r = SubResult::halted(ROLLED_BACK);
        }
    }
    while results.len() < total {
        results.push(SubResult::halted(ROLLED_BACK));
    }
}

/// The `compositeResponse` body.
fn respond(subs: &[SubRequest], results: &[SubResult]) -> Response {
    let out: Vec<Value> = subs
        .iter()
        .zip(results)
        .map(|(s, r)| {
            json!({
                "body": r.body,
                "httpHeaders": r.headers,
                "httpStatusCode": r.status.as_u16(),
                "referenceId": s.reference_id,
            })
        })
        .collect();
    Json(json!({"compositeResponse": out})).into_response()
}

/// Substitutes `@{…}` references in the url and body; an error names a reference that
/// failed or has no such value (the subrequest is then halted).
fn resolve(
    sub: &SubRequest,
    results: &[SubResult],
    by_ref: &HashMap<String, usize>,
    all_or_none: bool,
) -> Result<SubRequest, String> {
    let lookup = |expr: &str| -> Result<Value, String> {
        let name = expr.split(['.', '[']).next().unwrap_or_default();
        let r = by_ref
            .get(name)
            .and_then(|i| results.get(*i))
            .ok_or_else(|| format!("Invalid reference specified. No value for {expr} found in {name}. Provided referenceId ('{name}') must be the referenceId of a previous subrequest."))?;
        if r.failed() && !all_or_none {
            return Err(format!(
                "Invalid reference specified. No value for {expr} found in {name}. Provided referenceId ('{name}') has failed."
            ));
        }
        eval_path(&r.body, &expr[name.len()..]).ok_or_else(|| {
            format!("Invalid reference specified. No value for {expr} found in {name}.")
        })
    };
    let url = substitute_str(&sub.url, &lookup)?;
    let body = match &sub.body {
        Some(b) => Some(substitute_value(b, &lookup)?),
        None => None,
    };
    Ok(SubRequest {
        method: sub.method.clone(),
        url,
        reference_id: sub.reference_id.clone(),
        body,
    })
}

/// Follows `.field` and `[n]` steps from `v`.
fn eval_path(v: &Value, mut path: &str) -> Option<Value> {
    let mut cur = v;
    while !path.is_empty() {
        if let Some(rest) = path.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            cur = cur.get(&rest[..end])?;
            path = &rest[end..];
        } else if let Some(rest) = path.strip_prefix('[') {
            let end = rest.find(']')?;
            cur = cur.get(rest[..end].trim().parse::<usize>().ok()?)?;
            path = &rest[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur.clone())
}

/// Replaces `@{expr}` in a string. A string that is exactly one reference keeps the
/// referenced JSON type when used as a body value (see [`substitute_value`]).
fn substitute_str(
    s: &str,
    lookup: &dyn Fn(&str) -> Result<Value, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        match lookup(&after[..end])? {
            Value::String(v) => out.push_str(&v),
            Value::Null => out.push_str("null"),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces references in every string of a JSON body.
fn substitute_value(
    v: &Value,
    lookup: &dyn Fn(&str) -> Result<Value, String>,
) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            let whole = s
                .strip_prefix("@{")
                .and_then(|x| x.strip_suffix('}'))
                .filter(|x| !x.contains('}'));
            match whole {
                Some(expr) => lookup(expr)?,
                None => Value::String(substitute_str(s, lookup)?),
            }
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute_value(x, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute_value(x, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Runs one subrequest through the in-process router.
async fn dispatch(router: &Router, auth: &AuthContext, sub: &SubRequest) -> SubResult {
    let segment = sub.url.split('/').nth(3).unwrap_or_default();
    let Some(version) = ApiVersion::parse(segment) else {
        return SubResult {
            status: StatusCode::NOT_FOUND,
            headers: Map::new(),
            body: json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]),
        };
    };
    let body = sub
        .body
        .as_ref()
        .map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let uri = trim_slash(&sub.url);
    let mut req = match Request::builder()
        .method(sub.method.clone())
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
    {
        Ok(r) => r,
        Err(e) => {
            return SubResult {
                status: StatusCode::BAD_REQUEST,
                headers: Map::new(),
                body: json!([{"errorCode": "INVALID_FIELD", "message": format!("Invalid subrequest url: {e}")}]),
            }
        }
    };
    req.extensions_mut().insert(version);
    req.extensions_mut().insert(auth.clone());
    let resp = match router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    into_result(resp).await
}

/// `/a/b/?q` → `/a/b?q`, like the outer router does.
fn trim_slash(url: &str) -> String {
    let (path, query) = url
        .split_once('?')
        .map_or((url, None), |(p, q)| (p, Some(q)));
    let path = path.trim_end_matches('/');
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// Collects a handler response into a subrequest result.
async fn into_result(resp: Response) -> SubResult {
    let status = resp.status();
    let mut headers = Map::new();
    if let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
        headers.insert("Location".into(), json!(loc));
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    SubResult {
        status,
        headers,
        body,
    }
}

/// Writes made by the subrequests run so far, to undo on rollback.
#[derive(Debug, Default)]
struct UndoLog {
    /// Records created, in order.
    created: Vec<Id>,
    /// Snapshots of records changed, in order (object, record as it was).
    changed: Vec<(String, Arc<Record>)>,
}

/// Records a subrequest may change, captured before it runs.
type Snapshot = Vec<(String, Arc<Record>)>;

impl UndoLog {
    /// Captures the records `sub` may change.
    fn snapshot(&self, state: &EmulatorState, sub: &SubRequest) -> Snapshot {
        if sub.method == Method::GET {
            return Vec::new();
        }
        touched_ids(state, sub)
            .into_iter()
            .filter_map(|id| {
                let object = state.store.object_of(&id)?.to_string();
                Some((object, state.store.get(&id)?))
            })
            .collect()
    }

    /// Remembers what a finished subrequest created and changed.
    fn record(&mut self, state: &EmulatorState, sub: &SubRequest, r: &SubResult, before: Snapshot) {
        self.changed.extend(before);
        if sub.method == Method::GET || r.status.as_u16() >= 400 {
            return;
        }
        let existed = |id: &Id| self.changed.iter().any(|(_, rec)| rec_id(rec) == Some(*id));
        let mut created = Vec::new();
        collect_created(&r.body, r.status, &mut created);
        for id in created {
            if !existed(&id) && state.store.get(&id).is_some() {
                self.created.push(id);
            }
        }
    }

    /// Undoes everything, newest first (so the oldest snapshot of a record wins).
    fn roll_back(&self, state: &EmulatorState) {
        for id in self.created.iter().rev() {
            let _ = state.store.hard_delete(id);
        }
        for (object, rec) in self.changed.iter().rev() {
            let _ = state.store.put_raw(object, (**rec).clone());
        }
    }
}

/// The id of a stored record.
fn rec_id(r: &Record) -> Option<Id> {
    r.get("Id")
        .and_then(Value::as_str)
        .and_then(|s| Id::parse(s).ok())
}

/// Ids a write subrequest names: in its path, its `?ids=`, its body records, or matched by
/// the external id it upserts on.
fn touched_ids(state: &EmulatorState, sub: &SubRequest) -> Vec<Id> {
    let (path, query) = sub.url.split_once('?').unwrap_or((&sub.url, ""));
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut ids = Vec::new();
    match parts.get(4..).unwrap_or_default() {
        ["sobjects", _, id] => ids.extend(Id::parse(id).ok()),
        ["sobjects", object, field, value] => ids.extend(
            state
                .store
                .find_by_external_id(object, field, value)
                .unwrap_or_default(),
        ),
        ["composite", "sobjects"] => {
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                if k == "ids" {
                    ids.extend(v.split(',').filter_map(|s| Id::parse(s.trim()).ok()));
                }
            }
            for r in body_records(sub) {
                let raw = r.get("id").or_else(|| r.get("Id")).and_then(Value::as_str);
                ids.extend(raw.and_then(|s| Id::parse(s).ok()));
            }
        }
        ["composite", "sobjects", object, field] => {
            for r in body_records(sub) {
                let value = r
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .and_then(|(_, v)| v.as_str());
                if let Some(v) = value {
                    ids.extend(
                        state
                            .store
                            .find_by_external_id(object, field, v)
                            .unwrap_or_default(),
                    );
                }
            }
        }
        _ => {}
    }
    ids
}

/// The `records` array of a collections body.
fn body_records(sub: &SubRequest) -> Vec<Map<String, Value>> {
    sub.body
        .as_ref()
        .and_then(|b| b.get("records"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default()
}

/// Ids a response reports as written: `{"id"}` of a 201/200 save result, or each successful
/// entry of a collections result.
fn collect_created(body: &Value, status: StatusCode, out: &mut Vec<Id>) {
    let one = |v: &Value| -> Option<Id> {
        if v.get("success").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        if v.get("created").and_then(Value::as_bool) == Some(false) {
            return None;
        }
        v.get("id")
            .and_then(Value::as_str)
            .and_then(|s| Id::parse(s).ok())
    };
    match body {
        Value::Array(a) => out.extend(a.iter().filter_map(one)),
        Value::Object(_) if status == StatusCode::CREATED || status == StatusCode::OK => {
            out.extend(one(body))
        }
        _ => {}
    }
}
