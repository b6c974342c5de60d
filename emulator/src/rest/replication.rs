//! getUpdated (`/sobjects/X/updated?start=&end=`) and getDeleted (`/sobjects/X/deleted`):
//! minute-truncated windows, 30 days back for updates and 15 for deletes, at most 600,000 ids.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::describe::ObjectPath;
use super::object_or_404;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::validation::{format_datetime, parse_datetime};

/// Most ids one call may return.
const MAX_IDS: usize = 600_000;

/// getUpdated/getDeleted routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/services/data/{version}/sobjects/{object}/updated",
            get(updated),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted",
            get(deleted),
        )
}

#[derive(Debug, Default, Deserialize)]
struct Window {
    start: Option<String>,
    end: Option<String>,
}

/// A validated replication window.
struct Range {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    latest_covered: DateTime<Utc>,
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
}

fn bad_date(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidReplicationDate, message)
}

/// Parses one bound; a `+` that URL-decoding turned into a space is restored.
fn bound(name: &str, raw: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::new(ErrorCode::MissingArgument, format!("{name} not specified"))
    })?;
    let fixed = raw.trim().replace(' ', "+");
    parse_datetime(&fixed)
        .map(minute)
        .ok_or_else(|| bad_date(format!("{name} date is not a valid dateTime: {raw}")))
}

/// Checks `start < end` and that `start` is within `days` of now.
fn range(state: &AppState, w: &Window, days: i64) -> Result<Range, ApiError> {
    let start = bound("start", w.start.as_deref())?;
    let end = bound("end", w.end.as_deref())?;
    if start >= end {
        return Err(bad_date("startDate must chronologically precede endDate"));
    }
    let now = minute(state.clock.now());
    if start < now - Duration::days(days) {
        return Err(bad_date(format!(
            "startDate cannot be more than {days} days ago"
        )));
    }
    let end = end.min(now);
    Ok(Range {
        start,
        end,
        latest_covered: end,
    })
}

async fn updated(
    State(state): State<AppState>,
    Path(p): Path<ObjectPath>,
    Query(w): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let r = range(&state, &w, 30)?;
    let ids = if r.start < r.end {
        state
            .store
            .updated_between(&object.name, r.start, r.end)
            .map_err(ApiError::from)?
    } else {
        Vec::new()
    };
    if ids.len() > MAX_IDS {
        return Err(ApiError::new(
            ErrorCode::ExceededIdLimit,
            "too many ids: more than 600000 records changed in the requested window",
        ));
    }
    Ok(Json(
        json!({"ids": ids, "latestDateCovered": format_datetime(r.latest_covered)}),
    ))
}

async fn deleted(
    State(state): State<AppState>,
    Path(p): Path<ObjectPath>,
    Query(w): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    let object = object_or_404(&state, &p.object)?;
    let r = range(&state, &w, 15)?;
    let records = if r.start < r.end {
        state
            .store
            .deleted_between(&object.name, r.start, r.end)
            .map_err(ApiError::from)?
    } else {
        Vec::new()
    };
    if records.len() > MAX_IDS {
        return Err(ApiError::new(
            ErrorCode::ExceededIdLimit,
            "too many ids: more than 600000 records deleted in the requested window",
        ));
    }
    let now = state.clock.now();
    let earliest = minute(state.store.created_at().max(now - Duration::days(15)));
    let list: Vec<Value> = records
        .iter()
        .map(|d| json!({"id": d.id, "deletedDate": format_datetime(d.deleted_date)}))
        .collect();
    Ok(Json(json!({
        "deletedRecords": list,
        "earliestDateAvailable": format_datetime(earliest),
        "latestDateCovered": format_datetime(r.latest_covered),
    })))
}
