//! [`JobStore`]: the jobs' bookkeeping in the pipeline's state schema (migration 3 of
//! `checkpoint::schema`): runs, per-row hash snapshots, per-row Salesforce errors, the
//! Campaign members a job added, the Leads a job enriched, and trigger cursors.
//!
//! The guarantee: a run's outcome is written in **one transaction** — the snapshot rows of
//! what Salesforce acknowledged, its errors, and the run's final state — so a crash leaves
//! either the whole outcome or none of it, and a run is `done` only if everything it sent
//! was acknowledged. Membership intents (`adding`, `removing`) are written before the
//! records are sent, so the next run can reconcile a run that died in between.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use crate::checkpoint::{StateError, StateStore};

/// A result of `map_err` for a failed state query.
fn q(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StateError {
    move |source| StateError::Query { context, source }
}

/// One per-row Salesforce error (or a row the target could not use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The row's key (record key, person, Lead Id).
    pub key: String,
    /// Salesforce's code (`REQUIRED_FIELD_MISSING`, …) or pgforce's (`JOB_NULL_KEY`, …).
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Everything sent was acknowledged (per-row rejections are recorded as errors).
    Done,
    /// The run stopped; only what Salesforce acknowledged is recorded.
    Failed,
    /// A dry run: nothing was sent or recorded.
    DryRun,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::DryRun => "dry_run",
        }
    }
}

/// Counts and state of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub state: RunState,
    pub rows_seen: u64,
    pub rows_sent: u64,
    pub errors: u64,
    pub message: Option<String>,
}

/// One member a membership job tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The Contact or Lead Id.
    pub person_id: String,
    /// The CampaignMember Id, once known.
    pub member_id: Option<String>,
    /// `adding`, `added`, `removing` or `departed`.
    pub state: String,
}

/// The last run of a job, for `status` and `jobs list`.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub job: String,
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub rows_sent: i64,
    pub errors: i64,
    pub message: Option<String>,
}

/// The jobs' state of one pipeline.
#[derive(Debug)]
pub struct JobStore {
    state: StateStore,
}

impl JobStore {
    /// Connect and migrate the state schema.
    pub async fn connect(conninfo: &str, schema: &str, pipeline: &str) -> Result<Self, StateError> {
        Ok(JobStore {
            state: StateStore::connect(conninfo, schema, pipeline).await?,
        })
    }

    fn s(&self) -> &str {
        self.state.schema()
    }

    fn pipeline(&self) -> &str {
        self.state.pipeline()
    }

    /// Record the start of a run; its id.
    pub async fn begin_run(&self, job: &str, dry_run: bool) -> Result<i64, StateError> {
        let client = self.state.session().await;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {}.job_runs (pipeline, job, state, dry_run) \
                     VALUES ($1, $2, 'running', $3) RETURNING id",
                    self.s()
                ),
                &[&self.pipeline(), &job, &dry_run],
            )
            .await
            .map_err(q("recording a job run"))?;
        Ok(row.get(0))
    }

    /// Record a run's end without other changes (dry runs, runs that failed before sending).
    pub async fn end_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<(), StateError> {
        let client = self.state.session().await;
        end_run(&*client, self.s(), run_id, outcome).await
    }

    /// Mark a run failed unless its outcome is already recorded.
    pub async fn fail_if_running(
        &self,
        run_id: i64,
        outcome: &RunOutcome,
    ) -> Result<(), StateError> {
        let client = self.state.session().await;
        client
            .execute(
                &format!(
                    "UPDATE {}.job_runs SET state = $2, message = $3, finished_at = now() \
                     WHERE id = $1 AND state = 'running'",
                    self.s()
                ),
                &[&run_id, &outcome.state.as_str(), &outcome.message],
            )
            .await
            .map_err(q("finishing a job run"))?;
        Ok(())
    }

    /// The job's snapshot: row key → row hash of what Salesforce last acknowledged.
    pub async fn snapshot(&self, job: &str) -> Result<HashMap<String, String>, StateError> {
        let client = self.state.session().await;
        let rows = client
            .query(
                &format!(
                    "SELECT row_key, row_hash FROM {}.job_snapshots WHERE pipeline = $1 AND job = $2",
                    self.s()
                ),
                &[&self.pipeline(), &job],
            )
            .await
            .map_err(q("reading a job snapshot"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The outcome of an update run, in one transaction: acknowledged rows' hashes into the
    /// snapshot, keys gone from the result out of it, the errors, and the run's state.
    pub async fn finish_update(
        &self,
        run_id: i64,
        job: &str,
        acked: &[(String, String)],
        gone: &[String],
        errors: &[RowError],
        outcome: &RunOutcome,
    ) -> Result<(), StateError> {
        let mut client = self.state.session().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("starting a job commit"))?;
        let s = self.s();
        let (keys, hashes): (Vec<&str>, Vec<&str>) =
            acked.iter().map(|(k, h)| (k.as_str(), h.as_str())).unzip();
        tx.execute(
            &format!(
                "INSERT INTO {s}.job_snapshots (pipeline, job, row_key, row_hash) \
                 SELECT $1, $2, k, h FROM unnest($3::text[], $4::text[]) AS t(k, h) \
                 ON CONFLICT (pipeline, job, row_key) DO UPDATE SET row_hash = EXCLUDED.row_hash"
            ),
            &[&self.pipeline(), &job, &keys, &hashes],
        )
        .await
        .map_err(q("updating a job snapshot"))?;
        tx.execute(
            &format!(
                "DELETE FROM {s}.job_snapshots WHERE pipeline = $1 AND job = $2 AND row_key = ANY($3)"
            ),
            &[&self.pipeline(), &job, &gone],
        )
        .await
        .map_err(q("pruning a job snapshot"))?;
        insert_errors(&tx, s, self.pipeline(), job, run_id, errors).await?;
        end_run(&tx, s, run_id, outcome).await?;
        tx.commit().await.map_err(q("committing a job run"))
    }

    /// The members a membership job tracks in a Campaign.
    pub async fn members(&self, job: &str, campaign_id: &str) -> Result<Vec<Member>, StateError> {
        let client = self.state.session().await;
        let rows = client
            .query(
                &format!(
                    "SELECT person_id, member_id, state FROM {}.job_members \
                     WHERE pipeline = $1 AND job = $2 AND campaign_id = $3 ORDER BY person_id",
                    self.s()
                ),
                &[&self.pipeline(), &job, &campaign_id],
            )
            .await
            .map_err(q("reading a job's members"))?;
        Ok(rows
            .iter()
            .map(|r| Member {
                person_id: r.get(0),
                member_id: r.get(1),
                state: r.get(2),
            })
            .collect())
    }

    /// Write members' states (insert or overwrite), in one transaction; `member_id` `None`
    /// keeps a known one. Used for intents before sending.
    pub async fn set_members(
        &self,
        job: &str,
        campaign_id: &str,
        members: &[Member],
    ) -> Result<(), StateError> {
        let mut client = self.state.session().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("starting a member update"))?;
        upsert_members(&tx, self.s(), self.pipeline(), job, campaign_id, members).await?;
        tx.commit().await.map_err(q("committing a member update"))
    }

    /// The outcome of a membership run, in one transaction: the members' new states,
    /// the members no longer tracked, the errors and the run's state.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_membership(
        &self,
        run_id: i64,
        job: &str,
        campaign_id: &str,
        set: &[Member],
        forget: &[String],
        errors: &[RowError],
        outcome: &RunOutcome,
    ) -> Result<(), StateError> {
        let mut client = self.state.session().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("starting a job commit"))?;
        let s = self.s();
        upsert_members(&tx, s, self.pipeline(), job, campaign_id, set).await?;
        tx.execute(
            &format!(
                "DELETE FROM {s}.job_members WHERE pipeline = $1 AND job = $2 \
                 AND campaign_id = $3 AND person_id = ANY($4)"
            ),
            &[&self.pipeline(), &job, &campaign_id, &forget],
        )
        .await
        .map_err(q("forgetting members"))?;
        insert_errors(&tx, s, self.pipeline(), job, run_id, errors).await?;
        end_run(&tx, s, run_id, outcome).await?;
        tx.commit().await.map_err(q("committing a job run"))
    }

    /// Which of `lead_ids` the job has already enriched.
    pub async fn enriched(
        &self,
        job: &str,
        lead_ids: &[String],
    ) -> Result<HashSet<String>, StateError> {
        let client = self.state.session().await;
        let rows = client
            .query(
                &format!(
                    "SELECT lead_id FROM {}.job_enriched WHERE pipeline = $1 AND job = $2 \
                     AND lead_id = ANY($3)",
                    self.s()
                ),
                &[&self.pipeline(), &job, &lead_ids],
            )
            .await
            .map_err(q("reading enriched Leads"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The outcome of an enrich run, in one transaction: the Leads done (with whether the
    /// query matched), the trigger cursor, the errors and the run's state.
    pub async fn finish_enrich(
        &self,
        run_id: i64,
        job: &str,
        done: &[(String, bool)],
        cursor: Option<&str>,
        errors: &[RowError],
        outcome: &RunOutcome,
    ) -> Result<(), StateError> {
        let mut client = self.state.session().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("starting a job commit"))?;
        let s = self.s();
        let (ids, matched): (Vec<&str>, Vec<bool>) =
            done.iter().map(|(id, m)| (id.as_str(), *m)).unzip();
        tx.execute(
            &format!(
                "INSERT INTO {s}.job_enriched (pipeline, job, lead_id, matched) \
                 SELECT $1, $2, l, m FROM unnest($3::text[], $4::bool[]) AS t(l, m) \
                 ON CONFLICT DO NOTHING"
            ),
            &[&self.pipeline(), &job, &ids, &matched],
        )
        .await
        .map_err(q("recording enriched Leads"))?;
        if let Some(c) = cursor {
            set_cursor(&tx, s, self.pipeline(), job, c).await?;
        }
        insert_errors(&tx, s, self.pipeline(), job, run_id, errors).await?;
        end_run(&tx, s, run_id, outcome).await?;
        tx.commit().await.map_err(q("committing a job run"))
    }

    /// The job's trigger cursor (e.g. the last Lead CreatedDate handled).
    pub async fn cursor(&self, job: &str) -> Result<Option<String>, StateError> {
        let client = self.state.session().await;
        let row = client
            .query_opt(
                &format!(
                    "SELECT position FROM {}.job_cursors WHERE pipeline = $1 AND job = $2",
                    self.s()
                ),
                &[&self.pipeline(), &job],
            )
            .await
            .map_err(q("reading a job cursor"))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The latest run of every job of the pipeline.
    pub async fn last_runs(&self) -> Result<Vec<LastRun>, StateError> {
        let client = self.state.session().await;
        last_runs(&*client, self.s(), self.pipeline()).await
    }

    /// The errors of a job's latest run: (key, code, message).
    pub async fn last_errors(&self, job: &str, limit: i64) -> Result<Vec<RowError>, StateError> {
        let client = self.state.session().await;
        let rows = client
            .query(
                &format!(
                    "SELECT row_key, error_code, message, fields FROM {s}.job_errors \
                     WHERE pipeline = $1 AND job = $2 AND run_id = \
                       (SELECT max(run_id) FROM {s}.job_errors WHERE pipeline = $1 AND job = $2) \
                     ORDER BY id LIMIT $3",
                    s = self.s()
                ),
                &[&self.pipeline(), &job, &limit],
            )
            .await
            .map_err(q("reading job errors"))?;
        Ok(rows
            .iter()
            .map(|r| RowError {
                key: r.get(0),
                code: r.get(1),
                message: r.get(2),
                fields: r.get(3),
            })
            .collect())
    }
}

/// The latest run of every job of `pipeline` (for `pgforce status`, on any session).
pub async fn last_runs(
    client: &impl GenericClient,
    schema: &str,
    pipeline: &str,
) -> Result<Vec<LastRun>, StateError> {
    let rows = client
        .query(
            &format!(
                "SELECT DISTINCT ON (job) job, state, started_at, finished_at, rows_sent, errors, message \
                 FROM {schema}.job_runs WHERE pipeline = $1 AND NOT dry_run ORDER BY job, id DESC"
            ),
            &[&pipeline],
        )
        .await
        .map_err(q("reading job runs"))?;
    Ok(rows
        .iter()
        .map(|r| LastRun {
            job: r.get(0),
            state: r.get(1),
            started_at: r.get(2),
            finished_at: r.get(3),
            rows_sent: r.get(4),
            errors: r.get(5),
            message: r.get(6),
        })
        .collect())
}

async fn end_run(
    client: &impl GenericClient,
    s: &str,
    run_id: i64,
    o: &RunOutcome,
) -> Result<(), StateError> {
    let counts = [o.rows_seen, o.rows_sent, o.errors].map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    client
        .execute(
            &format!(
                "UPDATE {s}.job_runs SET state = $2, rows_seen = $3, rows_sent = $4, errors = $5, \
                 message = $6, finished_at = now() WHERE id = $1"
            ),
            &[
                &run_id,
                &o.state.as_str(),
                &counts[0],
                &counts[1],
                &counts[2],
                &o.message,
            ],
        )
        .await
        .map_err(q("finishing a job run"))?;
    Ok(())
}

async fn insert_errors(
    client: &impl GenericClient,
    s: &str,
    pipeline: &str,
    job: &str,
    run_id: i64,
    errors: &[RowError],
) -> Result<(), StateError> {
    for e in errors {
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.job_errors (run_id, pipeline, job, row_key, error_code, message, fields) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                &[&run_id, &pipeline, &job, &e.key, &e.code, &e.message, &e.fields],
            )
            .await
            .map_err(q("recording a job error"))?;
    }
    Ok(())
}

async fn upsert_members(
    client: &impl GenericClient,
    s: &str,
    pipeline: &str,
    job: &str,
    campaign_id: &str,
    members: &[Member],
) -> Result<(), StateError> {
    for m in members {
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.job_members (pipeline, job, campaign_id, person_id, member_id, state) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (pipeline, job, campaign_id, person_id) DO UPDATE SET \
                       member_id = coalesce(EXCLUDED.member_id, {s}.job_members.member_id), \
                       state = EXCLUDED.state, updated_at = now()"
                ),
                &[&pipeline, &job, &campaign_id, &m.person_id, &m.member_id, &m.state],
            )
            .await
            .map_err(q("recording a member"))?;
    }
    Ok(())
}

async fn set_cursor(
    client: &impl GenericClient,
    s: &str,
    pipeline: &str,
    job: &str,
    position: &str,
) -> Result<(), StateError> {
    client
        .execute(
            &format!(
                "INSERT INTO {s}.job_cursors (pipeline, job, position) VALUES ($1, $2, $3) \
                 ON CONFLICT (pipeline, job) DO UPDATE SET position = EXCLUDED.position"
            ),
            &[&pipeline, &job, &position],
        )
        .await
        .map_err(q("moving a job cursor"))?;
    Ok(())
}
