//! The Pub/Sub API's authentication: every call carries the metadata `accesstoken` (a live
//! token this emulator issued, checked like a REST bearer token), `instanceurl` (the
//! emulator's base URL) and `tenantid` (the org id, 15 or 18 characters). Anything else is
//! UNAUTHENTICATED with `error-code: sfdc.platform.eventbus.grpc.service.auth.error`.
//! Token values are never logged.

use tonic::metadata::MetadataMap;
use tonic::Status;

use super::errors;
use crate::ids::Id;
use crate::session::Session;
use crate::state::EmulatorState;

/// The session of a call, or the UNAUTHENTICATED status.
pub fn check(state: &EmulatorState, md: &MetadataMap, rpc_id: &str) -> Result<Session, Status> {
    let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    let fail = || errors::unauthenticated(rpc_id);
    let token = get("accesstoken")
        .filter(|t| !t.is_empty())
        .ok_or_else(fail)?;
    let token = token.strip_prefix("Bearer ").unwrap_or(token);
    let session = state
        .tokens
        .session(token, state.clock.now())
        .ok_or_else(fail)?;
    let instance = get("instanceurl").ok_or_else(fail)?;
    if instance.trim_end_matches('/') != state.base_url.trim_end_matches('/') {
        return Err(fail());
    }
    let tenant = get("tenantid")
        .and_then(|t| Id::parse(t).ok())
        .ok_or_else(fail)?;
    if tenant != state.org_id {
        return Err(fail());
    }
    Ok(session)
}
