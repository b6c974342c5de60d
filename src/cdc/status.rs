//! What a gRPC failure from the Pub/Sub API means for the subscriber: resume, refresh the
//! token, give up on the stored position, or stop.
//!
//! Salesforce puts a machine-readable `error-code` in the trailers
//! (`sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted`,
//! `…service.auth.error`, `…service.unavailable`, …) and the `rpcId:` in the message; the
//! decision uses the gRPC code and that trailer, the message is kept for the operator.

use tonic::{Code, Status};

/// The trailer Salesforce names its error in.
pub const ERROR_CODE_TRAILER: &str = "error-code";

/// What to do about a failed call or a broken stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The stream dropped or the service is briefly unavailable: resume after a backoff.
    Transient(String),
    /// The token was refused: refresh it once and retry.
    Unauthenticated(String),
    /// The replay id cannot be resumed from (expired, corrupted).
    PositionLost(String),
    /// Access to the topic is refused whatever the token.
    Forbidden(String),
    /// The request or the topic is wrong; retrying cannot help.
    Permanent(String),
}

/// Classifies a gRPC status.
pub fn classify(status: &Status) -> Failure {
    let error_code = status
        .metadata()
        .get(ERROR_CODE_TRAILER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let reason = describe(status, error_code);
    if error_code.contains("replayid") {
        return Failure::PositionLost(reason);
    }
    match status.code() {
        Code::Unauthenticated => Failure::Unauthenticated(reason),
        Code::PermissionDenied => Failure::Forbidden(reason),
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Internal
        | Code::Unknown => Failure::Transient(reason),
        Code::InvalidArgument if message_names_replay_id(status.message()) => {
            Failure::PositionLost(reason)
        }
        _ => Failure::Permanent(reason),
    }
}

/// A replay-id rejection whose trailer was lost on the way (some proxies drop trailers).
fn message_names_replay_id(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("replay id") || m.contains("replayid") || m.contains("replay_id")
}

/// `"<code>: <message> (error-code …)"`, for error messages.
fn describe(status: &Status, error_code: &str) -> String {
    let mut s = format!("gRPC {:?}: {}", status.code(), status.message());
    if !error_code.is_empty() {
        s.push_str(&format!(" (error-code {error_code})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn with_trailer(code: Code, message: &str, error_code: &str) -> Status {
        let mut md = MetadataMap::new();
        md.insert(ERROR_CODE_TRAILER, error_code.parse().unwrap());
        Status::with_metadata(code, message, md)
    }

    #[test]
    fn corrupted_replay_id_means_the_position_is_lost() {
        let s = with_trailer(
            Code::InvalidArgument,
            "The Replay ID validation failed. rpcId: 123",
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted",
        );
        match classify(&s) {
            Failure::PositionLost(r) => {
                assert!(r.contains("replayid.corrupted"), "{r}");
                assert!(r.contains("rpcId: 123"), "{r}");
            }
            other => panic!("{other:?}"),
        }
        let no_trailer = Status::invalid_argument("Replay ID is invalid");
        assert!(matches!(classify(&no_trailer), Failure::PositionLost(_)));
    }

    #[test]
    fn auth_and_access() {
        let s = with_trailer(
            Code::Unauthenticated,
            "auth error",
            "sfdc.platform.eventbus.grpc.service.auth.error",
        );
        assert!(matches!(classify(&s), Failure::Unauthenticated(_)));
        assert!(matches!(
            classify(&Status::permission_denied("no access to topic")),
            Failure::Forbidden(_)
        ));
    }

    #[test]
    fn drops_are_transient_and_bad_requests_permanent() {
        for s in [
            Status::unavailable("service unavailable"),
            Status::cancelled("stream reset"),
            Status::internal("h2 protocol error"),
            Status::unknown("transport error"),
            Status::resource_exhausted("concurrent client limit exceeded"),
        ] {
            assert!(matches!(classify(&s), Failure::Transient(_)), "{s:?}");
        }
        for s in [
            Status::invalid_argument("topic cannot change"),
            Status::not_found("no such topic"),
            Status::unimplemented("nope"),
        ] {
            assert!(matches!(classify(&s), Failure::Permanent(_)), "{s:?}");
        }
    }
}
