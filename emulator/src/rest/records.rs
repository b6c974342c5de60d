//! Record CRUD (`/sobjects/X`, `/sobjects/X/{id}`) and external-id access
//! (`/sobjects/X/{Field}/{value}`: read, upsert, delete).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::describe::{object_info, ObjectPath};
use super::{json_response, object_or_404, record_url, render_record, JsonBody};
use crate::context::{ApiVersion, AuthContext};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::ids::Id;
use crate::schema::ObjectDef;
use crate::state::AppState;
use crate::store::{Record, UpsertError};

/// Record routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/services/data/{version}/sobjects/{object}",
            get(object_info).post(create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(read).patch(update).delete(delete).post(create_by_id),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            get(read_by_ext).patch(upsert).delete(delete_by_ext),
        )
}

#[derive(Debug, Deserialize)]
struct RecordPath {
    object: String,
    id: String,
}

#[derive(Debug, Deserialize)]
struct ExtPath {
    object: String,
    field: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
struct FieldsQuery {
    fields: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpsertQuery {
    update_only: Option<bool>,
}

/// The HTTP status of a write failure: 404 for the target record itself, else by code.
fn write_error(errors: Vec<FieldError>) -> ApiError {
    let status = match errors.first() {
        Some(e)
            if matches!(e.code, ErrorCode::NotFound | ErrorCode::EntityIsDeleted)
                && e.fields.is_empty() =>
        {
            StatusCode::NOT_FOUND
        }
        Some(e) if e.code == ErrorCode::EntityIsDeleted => StatusCode::BAD_REQUEST,
        Some(e) => e.code.http_status(),
        None => StatusCode::BAD_REQUEST,
    };
    ApiError::with_status(status, errors)
}

/// Parses an id from the path; anything else (or another object's id) is 404.
fn record_id(object: &ObjectDef, raw: &str) -> Result<Id, ApiError> {
    match Id::parse(raw) {
        Ok(id) if id.key_prefix() == object.key_prefix => Ok(id),
        _ => Err(ApiError::not_found()),
    }
}

/// Splits `?fields=A,B` and checks every name.
fn selected_fields(object: &ObjectDef, q: &FieldsQuery) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = q.fields.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(f) = object.field(name) else {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", object.name),
            ));
        };
        out.push(f.name.clone());
    }
    Ok(Some(out))
}

/// 201 with the SaveResult and, as Salesforce sends it, `Location` naming the new record.
fn created_body(v: ApiVersion, object: &str, id: Id) -> Response {
    let location = record_url(v, object, id.as_str());
    let mut resp = json_response(
        StatusCode::CREATED,
        json!({"id": id, "success": true, "errors": []}),
    );
    if let Ok(loc) = location.parse() {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

/// Inserts `body`, answering 201 with the SaveResult.
fn insert(
    state: &AppState,
    v: ApiVersion,
    object: &ObjectDef,
    body: &Map<String, Value>,
    auth: &AuthContext,
) -> Result<Response, ApiError> {
    let id = state
        .store
        .insert(&object.name, body, auth.writer())
        .map_err(write_error)?;
    Ok(created_body(v, &object.name, id))
}

async fn create(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Extension(auth): Extension<AuthContext>,
    Path(p): Path<ObjectPath>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    insert(&state, v, object, &body, &auth)
}

/// `POST /sobjects/X/Id`: upsert by Id with no value, i.e. an insert.
async fn create_by_id(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Extension(auth): Extension<AuthContext>,
    Path(p): Path<RecordPath>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    if !p.id.eq_ignore_ascii_case("Id") {
        return Err(crate::server::method_not_allowed(
            &axum::http::Method::POST,
            "GET,PATCH,DELETE,HEAD",
        ));
    }
    insert(&state, v, object, &body, &auth)
}

fn live_record(state: &AppState, id: &Id) -> Result<std::sync::Arc<Record>, ApiError> {
    state.store.get_live(id).map_err(ApiError::from)
}

async fn read(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Path(p): Path<RecordPath>,
    Query(q): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let id = record_id(object, &p.id)?;
    let fields = selected_fields(object, &q)?;
    let record = live_record(&state, &id)?;
    Ok(Json(render_record(object, &record, v, fields.as_deref())))
}

async fn update(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(p): Path<RecordPath>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let id = record_id(object, &p.id)?;
    live_record(&state, &id)?;
    state
        .store
        .update(&object.name, &id, &body, auth.writer())
        .map_err(write_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(p): Path<RecordPath>,
) -> Result<StatusCode, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let id = record_id(object, &p.id)?;
    state
        .store
        .delete(&id, auth.writer())
        .map_err(ApiError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// 404 for an unknown external-id field; 400 for a field that is not an external id.
fn ext_field(object: &ObjectDef, field: &str) -> Result<String, ApiError> {
    if field.eq_ignore_ascii_case("Id") {
        return Ok("Id".to_string());
    }
    let Some(f) = object.field(field) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("Provided external ID field does not exist or is not accessible: {field}"),
        ));
    };
    if !(f.external_id || f.unique && f.id_lookup) {
        return Err(ApiError::from(FieldError::with_fields(
            ErrorCode::InvalidField,
            format!("Invalid field for upsert, must be an External Id custom or standard indexed field: {}", f.name),
            vec![f.name.clone()],
        )));
    }
    Ok(f.name.clone())
}

/// Live matches of an external id (400 for a field that is not indexed).
fn ext_matches(
    state: &AppState,
    object: &ObjectDef,
    field: &str,
    value: &str,
) -> Result<Vec<Id>, ApiError> {
    state
        .store
        .find_by_external_id(&object.name, field, value)
        .map_err(ApiError::from)
}

/// 300 Multiple Choices with the matching records' URLs.
fn multiple_choices(v: ApiVersion, object: &ObjectDef, ids: &[Id]) -> Response {
    let urls: Vec<Value> = ids
        .iter()
        .map(|id| Value::String(record_url(v, &object.name, id.as_str())))
        .collect();
    json_response(StatusCode::MULTIPLE_CHOICES, Value::Array(urls))
}

async fn read_by_ext(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Path(p): Path<ExtPath>,
    Query(q): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let field = ext_field(object, &p.field)?;
    let fields = selected_fields(object, &q)?;
    let ids = ext_matches(&state, object, &field, &p.value)?;
    match ids.as_slice() {
        [] => Err(ApiError::not_found()),
        [id] => {
            let record = live_record(&state, id)?;
            Ok(Json(render_record(object, &record, v, fields.as_deref())).into_response())
        }
        many => Ok(multiple_choices(v, object, many)),
    }
}

async fn delete_by_ext(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Extension(auth): Extension<AuthContext>,
    Path(p): Path<ExtPath>,
) -> Result<Response, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let field = ext_field(object, &p.field)?;
    let ids = ext_matches(&state, object, &field, &p.value)?;
    match ids.as_slice() {
        [] => Err(ApiError::not_found()),
        [id] => {
            state
                .store
                .delete(id, auth.writer())
                .map_err(ApiError::from)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        many => Ok(multiple_choices(v, object, many)),
    }
}

/// The field named `name` present in `body` (case-insensitively), if any.
fn body_has(body: &Map<String, Value>, name: &str) -> bool {
    body.keys().any(|k| k.eq_ignore_ascii_case(name))
}

async fn upsert(
    State(state): State<AppState>,
    Extension(v): Extension<ApiVersion>,
    Extension(auth): Extension<AuthContext>,
    Path(p): Path<ExtPath>,
    Query(q): Query<UpsertQuery>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let field = ext_field(object, &p.field)?;
    if body_has(&body, "Id") {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "The Id field should not be specified in the sobject data.",
        ));
    }
    if field != "Id" && body_has(&body, &field) {
        return Err(ApiError::from(FieldError::with_fields(
            ErrorCode::InvalidField,
            format!("The {field} field should not be specified in the sobject data when it is used as the external ID in the URL."),
            vec![field.clone()],
        )));
    }
    if q.update_only == Some(true) && ext_matches(&state, object, &field, &p.value)?.is_empty() {
        return Err(ApiError::not_found());
    }
    let result =
        state
            .store
            .upsert_by_external_id(&object.name, &field, &p.value, &body, auth.writer());
    match result {
        Ok(u) if u.created => {
            let mut body = json!({"id": u.id, "success": true, "errors": []});
            if v.0 >= 46 {
                body["created"] = Value::Bool(true);
            }
            let mut resp = json_response(StatusCode::CREATED, body);
            if let Ok(loc) = record_url(v, &object.name, u.id.as_str()).parse() {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            Ok(resp)
        }
        Ok(_) if v.0 <= 45 => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(u) => Ok(json_response(
            StatusCode::OK,
            json!({"id": u.id, "success": true, "errors": [], "created": false}),
        )),
        Err(UpsertError::Multiple(ids)) => Ok(multiple_choices(v, object, &ids)),
        Err(UpsertError::NotExternalId(f)) => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("Invalid field for upsert, must be an External Id custom or standard indexed field: {f}"),
        )),
        Err(UpsertError::Invalid(errors)) => Err(write_error(errors)),
    }
}
