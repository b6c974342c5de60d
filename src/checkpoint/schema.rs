//! The state schema's DDL, its versioned migrations and applying them (on open, under a
//! transaction-level advisory lock so two replicas starting together do not race).

use super::error::{q, StateError};
use super::store::StateStore;

/// The version [`migrations`] brings a database to.
pub const SCHEMA_VERSION: i32 = 6;

/// Quote an SQL identifier (schema names come from config).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Migration `n` (1-based) as SQL for schema `s` (already quoted).
pub(crate) fn migrations(s: &str) -> Vec<String> {
    vec![
        format!(
            r#"
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    pipeline      text PRIMARY KEY,
    confirmed_lsn pg_lsn NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.inflight (
    pipeline   text NOT NULL,
    end_lsn    pg_lsn NOT NULL,
    step       int NOT NULL,
    object     text NOT NULL,
    operation  text NOT NULL,
    path       text NOT NULL,
    rows       int NOT NULL,
    job_id     text,
    state      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, end_lsn, step)
);
CREATE TABLE IF NOT EXISTS {s}.id_map (
    pipeline    text NOT NULL,
    object      text NOT NULL,
    external_id text NOT NULL,
    sf_id       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, object, external_id)
);
CREATE TABLE IF NOT EXISTS {s}.errors (
    id          bigserial PRIMARY KEY,
    pipeline    text NOT NULL,
    mapping     text NOT NULL,
    object      text NOT NULL,
    external_id text NOT NULL,
    operation   text NOT NULL,
    lsn         pg_lsn NOT NULL,
    error_code  text NOT NULL,
    message     text NOT NULL,
    fields      text[] NOT NULL DEFAULT '{{}}',
    row_data    jsonb NOT NULL,
    attempts    int NOT NULL DEFAULT 1,
    status      text NOT NULL DEFAULT 'open',
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS errors_open_key
    ON {s}.errors (pipeline, mapping, external_id) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS {s}.parked (
    pipeline           text NOT NULL,
    mapping            text NOT NULL,
    object             text NOT NULL,
    external_id        text NOT NULL,
    parent_object      text NOT NULL,
    parent_external_id text NOT NULL,
    lsn                pg_lsn NOT NULL,
    row_data           jsonb NOT NULL,
    attempts           int NOT NULL DEFAULT 1,
    first_seen         timestamptz NOT NULL DEFAULT now(),
    last_seen          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, mapping, external_id)
);
CREATE INDEX IF NOT EXISTS parked_parent
    ON {s}.parked (pipeline, parent_object, parent_external_id);
"#
        ),
        // 2: steps keyed by what they hold (key field and a digest of their keys), so a
        // resumed epoch is matched by content, not shape; a parked change waits on every
        // parent it names, not only the first.
        format!(
            r#"
ALTER TABLE {s}.inflight ADD COLUMN IF NOT EXISTS key_field text NOT NULL DEFAULT '';
ALTER TABLE {s}.inflight ADD COLUMN IF NOT EXISTS keys_digest text NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS {s}.parked_parents (
    pipeline           text NOT NULL,
    mapping            text NOT NULL,
    external_id        text NOT NULL,
    parent_object      text NOT NULL,
    parent_external_id text NOT NULL,
    PRIMARY KEY (pipeline, mapping, external_id, parent_object, parent_external_id)
);
CREATE INDEX IF NOT EXISTS parked_parents_parent
    ON {s}.parked_parents (pipeline, parent_object, parent_external_id);
INSERT INTO {s}.parked_parents
    SELECT pipeline, mapping, external_id, parent_object, parent_external_id FROM {s}.parked
    ON CONFLICT DO NOTHING;
"#
        ),
        // 3: `pgforce errors retry` hands dead letters to the running pipeline, which
        // retries them between epochs (in order with its own changes).
        format!(
            r#"
ALTER TABLE {s}.errors ADD COLUMN IF NOT EXISTS retry_requested_at timestamptz;
"#
        ),
        // 4: Salesforce → Postgres: where each inbound entry stands, written in the same
        // transaction as the rows it applied; `phase` and the load columns make the
        // initial load resumable.
        format!(
            r#"
CREATE TABLE IF NOT EXISTS {s}.inbound_positions (
    pipeline      text NOT NULL,
    object        text NOT NULL,
    target        text NOT NULL,
    phase         text NOT NULL,
    replay_id     bytea,
    poll_modstamp timestamptz,
    poll_id       text,
    load_after_id text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, object, target)
);
"#
        ),
        // 5: query-driven jobs (`jobs::store`): runs, per-row hash snapshots, per-row errors,
        // the Campaign members a job added, the Leads a job enriched and trigger cursors.
        format!(
            r#"
CREATE TABLE IF NOT EXISTS {s}.job_runs (
    id          bigserial PRIMARY KEY,
    pipeline    text NOT NULL,
    job         text NOT NULL,
    state       text NOT NULL,
    dry_run     boolean NOT NULL DEFAULT false,
    rows_seen   bigint NOT NULL DEFAULT 0,
    rows_sent   bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    message     text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS job_runs_job ON {s}.job_runs (pipeline, job, id);
CREATE TABLE IF NOT EXISTS {s}.job_snapshots (
    pipeline text NOT NULL,
    job      text NOT NULL,
    row_key  text NOT NULL,
    row_hash text NOT NULL,
    PRIMARY KEY (pipeline, job, row_key)
);
CREATE TABLE IF NOT EXISTS {s}.job_errors (
    id         bigserial PRIMARY KEY,
    run_id     bigint NOT NULL,
    pipeline   text NOT NULL,
    job        text NOT NULL,
    row_key    text NOT NULL,
    error_code text NOT NULL,
    message    text NOT NULL,
    fields     text[] NOT NULL DEFAULT '{{}}',
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS job_errors_job ON {s}.job_errors (pipeline, job, run_id);
CREATE TABLE IF NOT EXISTS {s}.job_members (
    pipeline    text NOT NULL,
    job         text NOT NULL,
    campaign_id text NOT NULL,
    person_id   text NOT NULL,
    member_id   text,
    state       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, job, campaign_id, person_id)
);
CREATE TABLE IF NOT EXISTS {s}.job_enriched (
    pipeline text NOT NULL,
    job      text NOT NULL,
    lead_id  text NOT NULL,
    matched  boolean NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, job, lead_id)
);
CREATE TABLE IF NOT EXISTS {s}.job_cursors (
    pipeline text NOT NULL,
    job      text NOT NULL,
    position text NOT NULL,
    PRIMARY KEY (pipeline, job)
);
"#
        ),
        // 6: two-way pairs (`bidi::synced`): the last value each paired record field was
        // synced with, as a hash, so echoes and unchanged values are not sent back.
        format!(
            r#"
CREATE TABLE IF NOT EXISTS {s}.synced_values (
    pipeline   text NOT NULL,
    object     text NOT NULL,
    record_id  text NOT NULL,
    field      text NOT NULL,
    value_hash text NOT NULL,
    side       text NOT NULL,
    wal_lsn    pg_lsn NOT NULL,
    changed_at timestamptz,
    synced_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, object, record_id, field)
);
CREATE INDEX IF NOT EXISTS synced_values_age ON {s}.synced_values (pipeline, synced_at);
"#
        ),
    ]
}

impl StateStore {
    pub(super) async fn migrate(&self, raw_schema: &str) -> Result<(), StateError> {
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
}
