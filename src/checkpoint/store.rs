//! [`StateStore`]: typed access to the state schema over one ordinary Postgres session.

use std::collections::HashMap;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::schema::{migrations, quote_ident, SCHEMA_VERSION};
use crate::lsn::Lsn;

/// A state-store failure, with what pgforce was doing.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store: cannot connect to Postgres: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("state store: {context}: {}", pg_message(.source))]
    Query {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("state store: schema {schema} is at version {found}, newer than this pgforce ({supported}); upgrade pgforce")]
    TooNew {
        schema: String,
        found: i32,
        supported: i32,
    },
    #[error("state store: stored value {value:?} in {column} is invalid: {reason}")]
    Corrupt {
        column: &'static str,
        value: String,
        reason: String,
    },
}

impl StateError {
    /// The SQLSTATE of a failed query (`42501`, `55006`, ...), when Postgres sent one.
    pub fn sql_state(&self) -> Option<&str> {
        match self {
            StateError::Query { source, .. } | StateError::Connect(source) => {
                source.code().map(|c| c.code())
            }
            _ => None,
        }
    }
}

/// A Postgres error as text: the server's message and SQLSTATE (tokio-postgres' own
/// `Display` says only "db error").
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn q(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StateError {
    move |source| StateError::Query { context, source }
}

/// One step of an epoch's flush plan: one object, one operation, one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub step: i32,
    pub object: String,
    /// `upsert` or `delete`.
    pub operation: String,
    /// `bulk` or `collections`.
    pub path: String,
    pub rows: i32,
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
            other => {
                return Err(StateError::Corrupt {
                    column: "inflight.state",
                    value: other.into(),
                    reason: "unknown step state".into(),
                })
            }
        })
    }
}

/// An epoch recorded as in flight: its end LSN and its steps with their job ids and states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochPlan {
    pub end_lsn: Lsn,
    pub steps: Vec<(StepPlan, Option<String>, StepState)>,
}

/// A row Salesforce rejected (or pgforce could not map), for the dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    pub operation: String,
    pub lsn: Lsn,
    pub error_code: String,
    pub message: String,
    pub fields: Vec<String>,
    pub row: serde_json::Value,
}

/// A stored dead letter as `pgforce errors list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetterRow {
    pub id: i64,
    pub pipeline: String,
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    pub operation: String,
    pub lsn: String,
    pub error_code: String,
    pub message: String,
    pub fields: Vec<String>,
    pub row: serde_json::Value,
    pub attempts: i32,
    pub status: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
}

/// A child change waiting for its parent to exist in Salesforce.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedChange {
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    pub parent_object: String,
    pub parent_external_id: String,
    pub lsn: Lsn,
    pub row: serde_json::Value,
}

/// Typed access to one pipeline's state.
pub struct StateStore {
    client: Mutex<Client>,
    schema: String,
    pipeline: String,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("schema", &self.schema)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

/// An SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1).
fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn parse_lsn(column: &'static str, text: &str) -> Result<Lsn, StateError> {
    text.parse()
        .map_err(|e: crate::lsn::ParseLsnError| StateError::Corrupt {
            column,
            value: text.into(),
            reason: e.to_string(),
        })
}

impl StateStore {
    /// Connect (no TLS: the state lives beside the source, usually on the same network; use
    /// a TLS-terminating proxy otherwise) and bring the schema up to date.
    pub async fn connect(conninfo: &str, schema: &str, pipeline: &str) -> Result<Self, StateError> {
        let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
            .await
            .map_err(StateError::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "state store connection closed");
            }
        });
        Self::from_client(client, schema, pipeline).await
    }

    /// Use an existing session; runs the migrations.
    pub async fn from_client(
        client: Client,
        schema: &str,
        pipeline: &str,
    ) -> Result<Self, StateError> {
        let store = StateStore {
            client: Mutex::new(client),
            schema: quote_ident(schema),
            pipeline: pipeline.to_string(),
        };
        store.migrate(schema).await?;
        Ok(store)
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The quoted schema name, for callers that build their own queries.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn migrate(&self, raw_schema: &str) -> Result<(), StateError> {
        let s = &self.schema;
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(q("starting migration"))?;
        // Serialise concurrent starts (two replicas) on the migration.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('pgforce:migrate', 0))",
            &[],
        )
        .await
        .map_err(q("locking for migration"))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.schema_version (version int NOT NULL);"
        ))
        .await
        .map_err(q("creating the state schema"))?;
        let found: Option<i32> = tx
            .query_opt(&format!("SELECT max(version) FROM {s}.schema_version"), &[])
            .await
            .map_err(q("reading the schema version"))?
            .and_then(|r| r.get(0));
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                schema: raw_schema.into(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in migrations(s).iter().enumerate() {
            let version = i as i32 + 1;
            if version > found {
                tx.batch_execute(sql)
                    .await
                    .map_err(q("applying a migration"))?;
                tx.execute(
                    &format!("INSERT INTO {s}.schema_version VALUES ($1)"),
                    &[&version],
                )
                .await
                .map_err(q("recording the schema version"))?;
            }
        }
        tx.commit().await.map_err(q("committing the migration"))
    }

    /// Mark this session's writes with replication origin `name` (created if missing), so
    /// the decoder skips what pgforce writes into Postgres (no echo). Needs superuser or
    /// the EXECUTE grants on `pg_replication_origin_create`/`_session_setup`. The origin is
    /// created only when the setup says it does not exist (another session creating it at
    /// the same moment is fine). An origin is active in one session at a time: the error
    /// has SQLSTATE `55006` when another session has it.
    pub async fn use_origin(&self, name: &str) -> Result<(), StateError> {
        const SETUP: &str = "SELECT pg_replication_origin_session_setup($1)";
        let client = self.client.lock().await;
        match client.execute(SETUP, &[&name]).await {
            Ok(_) => return Ok(()),
            // 42704: the origin does not exist yet.
            Err(e) if e.code().is_some_and(|c| c.code() == "42704") => {}
            Err(e) => return Err(q("marking the session with the replication origin")(e)),
        }
        match client
            .execute("SELECT pg_replication_origin_create($1)", &[&name])
            .await
        {
            Ok(_) => {}
            // 42710: another session created it meanwhile.
            Err(e) if e.code().is_some_and(|c| c.code() == "42710") => {}
            Err(e) => return Err(q("creating the replication origin")(e)),
        }
        client
            .execute(SETUP, &[&name])
            .await
            .map_err(q("marking the session with the replication origin"))?;
        Ok(())
    }

    /// Write a Salesforce Id into the source row (`UPDATE table SET column = id WHERE key`),
    /// under this session's replication origin. Returns the rows updated.
    pub async fn write_back(
        &self,
        table: &str,
        column: &str,
        key: &[(String, String)],
        sf_id: &str,
    ) -> Result<u64, StateError> {
        let Some((schema, name)) = table.split_once('.') else {
            return Ok(0);
        };
        if key.is_empty() {
            // No row to find: never an unbounded UPDATE (nor malformed SQL).
            return Ok(0);
        }
        let predicate: Vec<String> = key
            .iter()
            .map(|(c, v)| format!("{} = {}", quote_ident(c), quote_literal(v)))
            .collect();
        let sql = format!(
            "UPDATE {}.{} SET {} = {} WHERE {} AND {} IS DISTINCT FROM {}",
            quote_ident(schema),
            quote_ident(name),
            quote_ident(column),
            quote_literal(sf_id),
            predicate.join(" AND "),
            quote_ident(column),
            quote_literal(sf_id),
        );
        let client = self.client.lock().await;
        // A simple query: untyped literals take the key columns' own types.
        let msgs = client
            .simple_query(&sql)
            .await
            .map_err(q("writing the Salesforce Id back"))?;
        Ok(msgs
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Take the pipeline's session-level advisory lock without waiting; `true` if this
    /// process now owns the pipeline. Released when the session ends.
    pub async fn try_lock_pipeline(&self) -> Result<bool, StateError> {
        let client = self.client.lock().await;
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('pgforce:pipeline:' || $1, 0))",
                &[&self.pipeline],
            )
            .await
            .map_err(q("taking the pipeline lock"))?;
        Ok(row.get(0))
    }

    /// The last confirmed LSN, if the pipeline has ever checkpointed.
    pub async fn checkpoint(&self) -> Result<Option<Lsn>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!("SELECT confirmed_lsn::text FROM {s}.checkpoints WHERE pipeline = $1"),
                &[&self.pipeline],
            )
            .await
            .map_err(q("reading the checkpoint"))?;
        row.map(|r| parse_lsn("checkpoints.confirmed_lsn", r.get(0)))
            .transpose()
    }

    /// Age of the checkpoint in seconds, if there is one.
    pub async fn checkpoint_age_secs(&self) -> Result<Option<f64>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!(
                    "SELECT extract(epoch FROM now() - updated_at)::float8 FROM {s}.checkpoints WHERE pipeline = $1"
                ),
                &[&self.pipeline],
            )
            .await
            .map_err(q("reading the checkpoint age"))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Store a checkpoint directly (first start, or after an empty stretch of WAL). Never
    /// moves it backwards.
    pub async fn store_checkpoint(&self, lsn: Lsn) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.checkpoints (pipeline, confirmed_lsn) VALUES ($1, $2::text::pg_lsn)
                     ON CONFLICT (pipeline) DO UPDATE
                       SET confirmed_lsn = greatest({s}.checkpoints.confirmed_lsn, excluded.confirmed_lsn),
                           updated_at = now()"
                ),
                &[&self.pipeline, &lsn.to_string()],
            )
            .await
            .map_err(q("storing the checkpoint"))?;
        Ok(())
    }

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
                "INSERT INTO {s}.inflight (pipeline, end_lsn, step, object, operation, path, rows, state)
                 VALUES ($1, $2::text::pg_lsn, $3, $4, $5, $6, $7, 'planned')"
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
                    &st.operation,
                    &st.path,
                    &st.rows,
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
                    "SELECT end_lsn::text, step, object, operation, path, rows, job_id, state
                     FROM {s}.inflight WHERE pipeline = $1 ORDER BY end_lsn, step"
                ),
                &[&self.pipeline],
            )
            .await
            .map_err(q("reading in-flight epochs"))?;
        let mut plan: Option<EpochPlan> = None;
        for r in rows {
            let end_lsn = parse_lsn("inflight.end_lsn", r.get(0))?;
            let step = StepPlan {
                step: r.get(1),
                object: r.get(2),
                operation: r.get(3),
                path: r.get(4),
                rows: r.get(5),
            };
            let job: Option<String> = r.get(6);
            let state = StepState::parse(r.get(7))?;
            let p = plan.get_or_insert_with(|| EpochPlan {
                end_lsn,
                steps: Vec::new(),
            });
            if p.end_lsn == end_lsn {
                p.steps.push((step, job, state));
            }
        }
        Ok(plan)
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

    /// Salesforce Ids for these external ids of `object` (missing ones are absent).
    pub async fn lookup_ids(
        &self,
        object: &str,
        external_ids: &[String],
    ) -> Result<HashMap<String, String>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT external_id, sf_id FROM {s}.id_map
                     WHERE pipeline = $1 AND object = $2 AND external_id = ANY($3)"
                ),
                &[&self.pipeline, &object, &external_ids],
            )
            .await
            .map_err(q("reading the id map"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Remember external id → Salesforce Id pairs.
    pub async fn store_ids(
        &self,
        object: &str,
        pairs: &[(String, String)],
    ) -> Result<(), StateError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let s = &self.schema;
        let (ext, ids): (Vec<&str>, Vec<&str>) =
            pairs.iter().map(|(e, i)| (e.as_str(), i.as_str())).unzip();
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.id_map (pipeline, object, external_id, sf_id)
                     SELECT $1, $2, e, i FROM unnest($3::text[], $4::text[]) AS t(e, i)
                     ON CONFLICT (pipeline, object, external_id)
                       DO UPDATE SET sf_id = excluded.sf_id, updated_at = now()"
                ),
                &[&self.pipeline, &object, &ext, &ids],
            )
            .await
            .map_err(q("writing the id map"))?;
        Ok(())
    }

    /// Forget ids of deleted records.
    pub async fn forget_ids(
        &self,
        object: &str,
        external_ids: &[String],
    ) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "DELETE FROM {s}.id_map WHERE pipeline = $1 AND object = $2 AND external_id = ANY($3)"
                ),
                &[&self.pipeline, &object, &external_ids],
            )
            .await
            .map_err(q("trimming the id map"))?;
        Ok(())
    }

    /// Write dead letters; a key already open gets its attempt count raised and its latest
    /// error and row.
    pub async fn record_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let stmt = client
            .prepare(&format!(
                "INSERT INTO {s}.errors (pipeline, mapping, object, external_id, operation, lsn,
                                         error_code, message, fields, row_data)
                 VALUES ($1, $2, $3, $4, $5, $6::text::pg_lsn, $7, $8, $9, $10)
                 ON CONFLICT (pipeline, mapping, external_id) WHERE status = 'open'
                 DO UPDATE SET attempts = {s}.errors.attempts + 1, last_seen = now(),
                     lsn = excluded.lsn, operation = excluded.operation,
                     error_code = excluded.error_code, message = excluded.message,
                     fields = excluded.fields, row_data = excluded.row_data"
            ))
            .await
            .map_err(q("writing dead letters"))?;
        for d in letters {
            client
                .execute(
                    &stmt,
                    &[
                        &self.pipeline,
                        &d.mapping,
                        &d.object,
                        &d.external_id,
                        &d.operation,
                        &d.lsn.to_string(),
                        &d.error_code,
                        &d.message,
                        &d.fields,
                        &d.row,
                    ],
                )
                .await
                .map_err(q("writing dead letters"))?;
        }
        Ok(())
    }

    /// A later change of these keys went through: their open dead letters are resolved.
    pub async fn resolve_dead_letters(
        &self,
        mapping: &str,
        keys: &[String],
    ) -> Result<u64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "UPDATE {s}.errors SET status = 'resolved', last_seen = now()
                     WHERE pipeline = $1 AND mapping = $2 AND external_id = ANY($3) AND status = 'open'"
                ),
                &[&self.pipeline, &mapping, &keys],
            )
            .await
            .map_err(q("resolving dead letters"))
    }

    /// Dead letters with the given status (`open`, `resolved`, `discarded`, or all if None).
    pub async fn list_dead_letters(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadLetterRow>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT id, pipeline, mapping, object, external_id, operation, lsn::text,
                            error_code, message, fields, row_data, attempts, status, first_seen, last_seen
                     FROM {s}.errors WHERE pipeline = $1 AND ($2::text IS NULL OR status = $2)
                     ORDER BY id LIMIT $3"
                ),
                &[&self.pipeline, &status, &limit],
            )
            .await
            .map_err(q("listing dead letters"))?;
        Ok(rows
            .into_iter()
            .map(|r| DeadLetterRow {
                id: r.get(0),
                pipeline: r.get(1),
                mapping: r.get(2),
                object: r.get(3),
                external_id: r.get(4),
                operation: r.get(5),
                lsn: r.get(6),
                error_code: r.get(7),
                message: r.get(8),
                fields: r.get(9),
                row: r.get(10),
                attempts: r.get(11),
                status: r.get(12),
                first_seen: r.get(13),
                last_seen: r.get(14),
            })
            .collect())
    }

    /// Count of open dead letters.
    pub async fn open_dead_letters(&self) -> Result<i64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM {s}.errors WHERE pipeline = $1 AND status = 'open'"),
                &[&self.pipeline],
            )
            .await
            .map_err(q("counting dead letters"))?;
        Ok(row.get(0))
    }

    /// Mark dead letters discarded (all open ones when `ids` is empty).
    pub async fn discard_dead_letters(&self, ids: &[i64]) -> Result<u64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "UPDATE {s}.errors SET status = 'discarded', last_seen = now()
                     WHERE pipeline = $1 AND status = 'open' AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))"
                ),
                &[&self.pipeline, &ids],
            )
            .await
            .map_err(q("discarding dead letters"))
    }

    /// Park a child whose parent is not in Salesforce yet (latest change of a key wins).
    pub async fn park(&self, changes: &[ParkedChange]) -> Result<(), StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let stmt = client
            .prepare(&format!(
                "INSERT INTO {s}.parked (pipeline, mapping, object, external_id, parent_object,
                                         parent_external_id, lsn, row_data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::text::pg_lsn, $8)
                 ON CONFLICT (pipeline, mapping, external_id) DO UPDATE
                   SET parent_object = excluded.parent_object,
                       parent_external_id = excluded.parent_external_id, lsn = excluded.lsn,
                       row_data = excluded.row_data, attempts = {s}.parked.attempts + 1,
                       last_seen = now()"
            ))
            .await
            .map_err(q("parking changes"))?;
        for p in changes {
            client
                .execute(
                    &stmt,
                    &[
                        &self.pipeline,
                        &p.mapping,
                        &p.object,
                        &p.external_id,
                        &p.parent_object,
                        &p.parent_external_id,
                        &p.lsn.to_string(),
                        &p.row,
                    ],
                )
                .await
                .map_err(q("parking changes"))?;
        }
        Ok(())
    }

    /// Parked children whose parent (object, external id) is in `landed`. They stay parked
    /// until [`unpark_keys`](Self::unpark_keys) after they went through, so a crash in
    /// between retries them instead of losing them.
    pub async fn parked_for(
        &self,
        parent_object: &str,
        landed: &[String],
    ) -> Result<Vec<ParkedChange>, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT mapping, object, external_id, parent_object, parent_external_id,
                            lsn::text, row_data
                     FROM {s}.parked
                     WHERE pipeline = $1 AND parent_object = $2 AND parent_external_id = ANY($3)
                     ORDER BY lsn"
                ),
                &[&self.pipeline, &parent_object, &landed],
            )
            .await
            .map_err(q("reading parked changes"))?;
        rows.into_iter()
            .map(|r| {
                Ok(ParkedChange {
                    mapping: r.get(0),
                    object: r.get(1),
                    external_id: r.get(2),
                    parent_object: r.get(3),
                    parent_external_id: r.get(4),
                    lsn: parse_lsn("parked.lsn", r.get(5))?,
                    row: r.get(6),
                })
            })
            .collect()
    }

    /// Drop parked entries superseded by a newer change of the same keys.
    pub async fn unpark_keys(&self, mapping: &str, keys: &[String]) -> Result<u64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "DELETE FROM {s}.parked WHERE pipeline = $1 AND mapping = $2 AND external_id = ANY($3)"
                ),
                &[&self.pipeline, &mapping, &keys],
            )
            .await
            .map_err(q("dropping superseded parked changes"))
    }

    /// What is stuck: the oldest open dead letter and the parked changes by reason.
    pub async fn stuck(&self) -> Result<super::Stuck, StateError> {
        let client = self.client.lock().await;
        super::stuck::read(&client, &self.schema, &self.pipeline).await
    }

    /// Number of parked changes.
    pub async fn parked_count(&self) -> Result<i64, StateError> {
        let s = &self.schema;
        let client = self.client.lock().await;
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM {s}.parked WHERE pipeline = $1"),
                &[&self.pipeline],
            )
            .await
            .map_err(q("counting parked changes"))?;
        Ok(row.get(0))
    }
}
