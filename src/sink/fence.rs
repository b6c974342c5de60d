//! Fencing: before each Salesforce write (a Bulk job created, uploaded or aborted, a
//! Collections upsert or delete, a retry of failed, parked or dead-lettered records) the sink checks that this process
//! still holds the pipeline's advisory lock, with one cheap query on the state-store
//! session that took it. A process whose session died (a standby may own the pipeline by
//! now) writes nothing more: [`fence`] fails with [`SinkError::Fenced`], the pipeline
//! stops, and the supervisor restarts it after a backoff, waiting for the lock as a
//! standby. A write already in flight when the lock is lost cannot be recalled; the check
//! keeps the window to one call.

use tracing::warn;

use super::destination::SinkError;
use super::state::SinkState;

/// `Ok` when this process still owns the pipeline; [`SinkError::Fenced`] otherwise.
pub async fn fence<S: SinkState>(state: &S) -> Result<(), SinkError> {
    let reason = match state.holds_pipeline_lock().await {
        Ok(true) => return Ok(()),
        Ok(false) => "its state-store session no longer holds the pipeline's lock".to_string(),
        Err(e) => format!("its state-store session is gone ({e}), and the pipeline's lock with it"),
    };
    warn!(pipeline = %state.pipeline(), %reason, "fenced: writing nothing more to Salesforce");
    Err(SinkError::Fenced {
        pipeline: state.pipeline().to_string(),
        reason,
    })
}
