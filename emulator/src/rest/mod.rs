//! The REST API: versions, resources, limits, describe, record CRUD, external-id reads and
//! upserts, getUpdated/getDeleted. Shared helpers ([`JsonBody`], [`render_record`],
//! [`record_url`]) are public for the other areas (collections, composite, query).

mod describe;
mod records;
mod replication;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::context::{ApiVersion, MAX_VERSION, MIN_VERSION};
use super::error::ApiError;
use super::schema::ObjectDef;
use super::state::AppState;
use axum::extract::State;

/// Authenticated REST routes (merged into the data router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/data/{version}", get(resources))
        .route("/services/data/{version}/limits", get(limits))
        .merge(describe::routes())
        .merge(records::routes())
        .merge(replication::routes())
        .method_not_allowed_fallback(method_not_allowed)
}

/// 405 METHOD_NOT_ALLOWED with Salesforce's error body.
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        super::error::ErrorCode::MethodNotAllowed,
        format!("HTTP Method '{method}' not allowed. Allowed are GET,HEAD,PATCH,POST,DELETE"),
    )
}

/// Unauthenticated REST routes: the versions list.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/services/data", get(versions))
}

/// The release name of an API version (`60` → `Spring '24`).
pub fn release_label(version: u32) -> String {
    let idx = i64::from(version) - 60;
    let season = idx.rem_euclid(3);
    let year = 24 + idx.div_euclid(3) + i64::from(season == 2);
    let name = ["Spring", "Summer", "Winter"][season as usize];
    format!("{name} '{year:02}")
}

/// `GET /services/data`: every supported version (no auth, not counted).
async fn versions() -> Json<Value> {
    let list: Vec<Value> = (MIN_VERSION..=MAX_VERSION)
        .map(|v| json!({"label": release_label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    Json(Value::Array(list))
}

/// `GET /services/data/vNN.N`: resource name → URL.
async fn resources(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Extension(auth): Extension<super::context::AuthContext>,
) -> Json<Value> {
    let b = v.base();
    Json(json!({
        "sobjects": format!("{b}/sobjects"),
        "query": format!("{b}/query"),
        "queryAll": format!("{b}/queryAll"),
        "composite": format!("{b}/composite"),
        "limits": format!("{b}/limits"),
        "jobs/ingest": format!("{b}/jobs/ingest"),
        "jobs/query": format!("{b}/jobs/query"),
        "recent": format!("{b}/recent"),
        "search": format!("{b}/search"),
        "tooling": format!("{b}/tooling"),
        "identity": state.identity_url(&auth.session.user_id),
    }))
}

/// `GET /limits`.
async fn limits(State(state): State<AppState>) -> Json<Value> {
    Json(state.limits.json())
}

/// A JSON object request body; malformed JSON or a non-object → 400 JSON_PARSER_ERROR.
#[derive(Debug)]
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::json_parser(e.body_text()))?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// Parses a JSON object body with Salesforce's JSON_PARSER_ERROR on failure.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::json_parser(
            "The HTTP entity body is required, but this request has no entity body.",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::json_parser(format!(
            "Cannot deserialize instance of sObject from {} at [line:1, column:1]",
            match other {
                Value::Array(_) => "START_ARRAY",
                Value::String(_) => "VALUE_STRING",
                Value::Number(_) => "VALUE_NUMBER_INT",
                _ => "VALUE_TOKEN",
            }
        ))),
        Err(e) => Err(ApiError::json_parser(format!(
            "Unexpected character in JSON body: {} at [line:{}, column:{}]",
            e.classify_message(),
            e.line(),
            e.column()
        ))),
    }
}

/// A short description of a serde_json error without its position.
trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        let s = self.to_string();
        match s.rfind(" at line ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }
}

/// `/services/data/v60.0/sobjects/Account/001…`.
pub fn record_url(version: ApiVersion, object: &str, id: &str) -> String {
    format!("{}/sobjects/{object}/{id}", version.base())
}

/// A record as REST returns it: `attributes` first, then all fields (or only `fields`).
pub fn render_record(
    object: &ObjectDef,
    record: &Map<String, Value>,
    version: ApiVersion,
    fields: Option<&[String]>,
) -> Value {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::with_capacity(record.len() + 1);
    out.insert(
        "attributes".into(),
        json!({"type": object.name, "url": record_url(version, &object.name, id)}),
    );
    match fields {
        Some(names) => {
            for n in names {
                if let Some(f) = object.field(n) {
                    out.insert(
                        f.name.clone(),
                        record.get(&f.name).cloned().unwrap_or(Value::Null),
                    );
                }
            }
        }
        None => {
            for (k, v) in record {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Resolves an object name from the path or answers 404 NOT_FOUND.
pub fn object_or_404<'a>(
    state: &'a AppState,
    name: &str,
) -> Result<&'a std::sync::Arc<ObjectDef>, ApiError> {
    state.schema.object(name).ok_or_else(ApiError::not_found)
}

/// JSON with a status.
pub fn json_response(status: axum::http::StatusCode, v: Value) -> Response {
    (status, Json(v)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_labels_match_salesforce() {
        assert_eq!(release_label(46), "Summer '19");
        assert_eq!(release_label(59), "Winter '24");
        assert_eq!(release_label(60), "Spring '24");
        assert_eq!(release_label(62), "Winter '25");
        assert_eq!(release_label(66), "Spring '26");
        assert_eq!(release_label(20), "Winter '11");
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(parse_object(b"{\"a\":1}").is_ok());
        let e = parse_object(b"{bad").unwrap_err();
        assert_eq!(
            e.errors[0].code,
            super::super::error::ErrorCode::JsonParserError
        );
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"  ").is_err());
    }
}
