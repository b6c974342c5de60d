//! In-flight plans: an epoch's steps are recorded before any of its data is uploaded, each
//! Bulk job id before its upload, and [`StateStore::finish_epoch`] drops the plan and moves
//! the checkpoint in one transaction.

use super::error::{parse_lsn, q, StateError};
use super::store::StateStore;
use crate::batch::StepKind;
use crate::lsn::Lsn;

/// How a step's records travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPath {
    /// Bulk API 2.0 ingest job (CSV).
    Bulk,
    /// sObject Collections (JSON, up to 200 records a call).
    Collections,
}

impl StepPath {
    pub fn as_str(self) -> &'static str {
        match self {
            StepPath::Bulk => "bulk",
            StepPath::Collections => "collections",
        }
    }

    fn parse(s: &str) -> Result<Self, StateError> {
        match s {
            "bulk" => Ok(StepPath::Bulk),
            "collections" => Ok(StepPath::Collections),
            other => Err(corrupt("inflight.path", other, "unknown step path")),
        }
    }
}

fn parse_operation(s: &str) -> Result<StepKind, StateError> {
    match s {
        "upsert" => Ok(StepKind::Upsert),
        "delete" => Ok(StepKind::Delete),
        other => Err(corrupt("inflight.operation", other, "unknown operation")),
    }
}

fn corrupt(column: &'static str, value: &str, reason: &str) -> StateError {
    StateError::Corrupt {
        column,
        value: value.into(),
        reason: reason.into(),
    }
}

/// One step of an epoch's flush plan: one object and key field, one operation, one path,
/// and a digest of the keys it holds (in order), so a resumed epoch is matched to its
/// recorded plan by content, never by shape alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub step: i32,
    pub object: String,
    pub key_field: String,
    pub operation: StepKind,
    pub path: StepPath,
    pub rows: i32,
    pub keys_digest: String,
}

/// A recorded step: its plan, the Bulk job it created (if any) and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedStep {
    pub plan: StepPlan,
    pub job_id: Option<String>,
    pub state: StepState,
}

/// Where a step stands. A step's job id is stored (`JobCreated`) before its data is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    Planned,
    JobCreated,
    Uploaded,
    Done,
}

impl StepState {
    fn as_str(&self) -> &'static str {
        match self {
            StepState::Planned => "planned",
            StepState::JobCreated => "job_created",
            StepState::Uploaded => "uploaded",
            StepState::Done => "done",
        }
    }

    fn parse(s: &str) -> Result<Self, StateError> {
        Ok(match s {
            "planned" => StepState::Planned,
            "job_created" => StepState::JobCreated,
            "uploaded" => StepState::Uploaded,
            "done" => StepState::Done,
            other => return Err(corrupt("inflight.state", other, "unknown step state")),
        })
    }
}

/// An epoch recorded as in flight: its end LSN and its steps with their job ids and states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochPlan {
    pub end_lsn: Lsn,
    pub steps: Vec<RecordedStep>,
}

impl StateStore {
    /// Record an epoch's plan before any of its data is uploaded (replacing an earlier plan
    /// for the same end LSN).
    pub async fn plan_epoch(&self, end_lsn: Lsn, steps: &[StepPlan]) -> Result<(), StateError> {
        let s = &self.schema;
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(q("planning an epoch"))?;
        tx.execute(
            &format!("DELETE FROM {s}.inflight WHERE pipeline = $1 AND end_lsn = $2::text::pg_lsn"),
            &[&self.pipeline, &end_lsn.to_string()],
        )
        .await
        .map_err(q("planning an epoch"))?;
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO {s}.inflight (pipeline, end_lsn, step, object, operation, path, rows,
                                           key_field, keys_digest, state)
                 VALUES ($1, $2::text::pg_lsn, $3, $4, $5, $6, $7, $8, $9, 'planned')"
            ))
            .await
            .map_err(q("planning an epoch"))?;
        let lsn = end_lsn.to_string();
        for st in steps {
            tx.execute(
                &stmt,
                &[
                    &self.pipeline,
                    &lsn,
                    &st.step,
                    &st.object,
                    &st.operation.as_str(),
                    &st.path.as_str(),
                    &st.rows,
                    &st.key_field,
                    &st.keys_digest,
                ],
            )
            .await
            .map_err(q("planning an epoch"))?;
        }
        tx.commit().await.map_err(q("planning an epoch"))
    }

    /// Move a step forward, recording its job id when it has one.
    pub async fn set_step(
        &self,
        end_lsn: Lsn,
        step: i32,
        state: StepState,
        job_id: Option<&str>,
    ) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "UPDATE {s}.inflight SET state = $4, job_id = coalesce($5, job_id), updated_at = now()
                     WHERE pipeline = $1 AND end_lsn = $2::text::pg_lsn AND step = $3"
                ),
                &[&self.pipeline, &end_lsn.to_string(), &step, &state.as_str(), &job_id],
            )
            .await
            .map_err(q("updating an in-flight step"))?;
        Ok(())
    }

    /// The epoch left in flight by a previous run, if any (there is at most one).
    pub async fn open_epoch(&self) -> Result<Option<EpochPlan>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT end_lsn::text, step, object, operation, path, rows, job_id, state,
                            key_field, keys_digest
                     FROM {s}.inflight WHERE pipeline = $1 ORDER BY end_lsn, step"
                ),
                &[&self.pipeline],
            )
            .await
            .map_err(q("reading in-flight epochs"))?;
        let mut open: Option<EpochPlan> = None;
        for r in rows {
            let end_lsn = parse_lsn("inflight.end_lsn", r.get(0))?;
            let plan = StepPlan {
                step: r.get(1),
                object: r.get(2),
                key_field: r.get(8),
                operation: parse_operation(r.get(3))?,
                path: StepPath::parse(r.get(4))?,
                rows: r.get(5),
                keys_digest: r.get(9),
            };
            let job_id: Option<String> = r.get(6);
            let state = StepState::parse(r.get(7))?;
            let p = open.get_or_insert_with(|| EpochPlan {
                end_lsn,
                steps: Vec::new(),
            });
            if p.end_lsn == end_lsn {
                p.steps.push(RecordedStep {
                    plan,
                    job_id,
                    state,
                });
            }
        }
        Ok(open)
    }

    /// An epoch is done: drop its plan and move the checkpoint to its end, atomically.
    pub async fn finish_epoch(&self, end_lsn: Lsn) -> Result<(), StateError> {
        let s = &self.schema;
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("finishing an epoch"))?;
        let lsn = end_lsn.to_string();
        tx.execute(
            &format!(
                "DELETE FROM {s}.inflight WHERE pipeline = $1 AND end_lsn <= $2::text::pg_lsn"
            ),
            &[&self.pipeline, &lsn],
        )
        .await
        .map_err(q("finishing an epoch"))?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.checkpoints (pipeline, confirmed_lsn) VALUES ($1, $2::text::pg_lsn)
                 ON CONFLICT (pipeline) DO UPDATE
                   SET confirmed_lsn = greatest({s}.checkpoints.confirmed_lsn, excluded.confirmed_lsn),
                       updated_at = now()"
            ),
            &[&self.pipeline, &lsn],
        )
        .await
        .map_err(q("finishing an epoch"))?;
        tx.commit().await.map_err(q("finishing an epoch"))
    }
}
