//! Pub/Sub API errors as Salesforce sends them: a gRPC status whose message ends with
//! `rpcId: <id>` and whose trailers carry `error-code` (and `rpc-id`).

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// `error-code` of authentication failures.
pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
/// `error-code` of invalid or expired replay ids.
pub const REPLAY_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
/// `error-code` of an unknown topic.
pub const TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.not.found";
/// `error-code` of a malformed request (topic change, bad preset, blank schema id).
pub const INVALID_REQUEST: &str = "sfdc.platform.eventbus.grpc.invalid.request";
/// `error-code` of publishing to a topic that does not accept it.
pub const PUBLISH_DENIED: &str = "sfdc.platform.eventbus.grpc.publish.permission.denied";
/// `error-code` of a dropped subscription.
pub const UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";

/// A new rpc id (UUID-shaped).
pub fn rpc_id() -> String {
    crate::txn::transaction_key()
}

/// A status with `message rpcId: {rpc_id}` and the `error-code` / `rpc-id` trailers.
pub fn status(code: Code, error_code: &'static str, message: &str, rpc_id: &str) -> Status {
    let mut md = MetadataMap::new();
    md.insert("error-code", MetadataValue::from_static(error_code));
    if let Ok(v) = MetadataValue::try_from(rpc_id) {
        md.insert("rpc-id", v);
    }
    Status::with_metadata(code, format!("{message} rpcId: {rpc_id}"), md)
}

/// UNAUTHENTICATED with the auth error code.
pub fn unauthenticated(rpc_id: &str) -> Status {
    status(
        Code::Unauthenticated,
        AUTH_ERROR,
        "Unable to authenticate the request. Ensure the accesstoken, instanceurl and tenantid metadata headers are valid.",
        rpc_id,
    )
}

/// NOT_FOUND for an unknown topic.
pub fn topic_not_found(org: &str, topic: &str, rpc_id: &str) -> Status {
    status(
        Code::NotFound,
        TOPIC_NOT_FOUND,
        &format!("The topic information for org {org} and topic {topic} not found. Ensure the topic name is correct and that the topic exists."),
        rpc_id,
    )
}

/// INVALID_ARGUMENT for a refused replay id.
pub fn replay_corrupted(rpc_id: &str) -> Status {
    status(
        Code::InvalidArgument,
        REPLAY_CORRUPTED,
        "The Replay ID validation failed. Ensure the Replay ID is valid and within the retention window.",
        rpc_id,
    )
}

/// INVALID_ARGUMENT for a malformed request.
pub fn invalid(message: &str, rpc_id: &str) -> Status {
    status(Code::InvalidArgument, INVALID_REQUEST, message, rpc_id)
}
