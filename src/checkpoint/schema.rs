//! The state schema's DDL and its versioned migrations.

/// The version [`migrations`] brings a database to.
pub const SCHEMA_VERSION: i32 = 1;

/// Quote an SQL identifier (schema names come from config).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Migration `n` (1-based) as SQL for schema `s` (already quoted).
pub(crate) fn migrations(s: &str) -> Vec<String> {
    vec![format!(
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
    )]
}
