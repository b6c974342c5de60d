//! Writing Salesforce Ids back into the source rows that ask for it (`write_back` in a
//! mapping), once their upsert landed, and the replication origin that keeps those writes
//! out of the replication stream (no echo).
//!
//! This lives in the sink, not in the state store: writing into the user's tables is an
//! outcome of a landed record, like the id map or a dead letter, and not pgforce's own
//! state. It runs in the state store's session ([`StateStore::session`]) because the origin
//! marks a session, and that session is the one holding the pipeline's lock.

use std::collections::HashMap;

use super::destination::{Destination, SinkError};
use super::flusher::{FlushChange, Flusher};
use super::state::SinkState;
use crate::checkpoint::{quote_ident, StateError, StateStore};

impl<D: Destination, S: SinkState> Flusher<D, S> {
    /// Write Salesforce Ids back into the source rows that ask for it, where the row's
    /// column does not hold that Id already.
    pub(super) async fn write_back<C: FlushChange>(
        &self,
        by_key: &HashMap<&str, &C>,
        ids: &[(String, String)],
    ) -> Result<(), SinkError> {
        for (key, id) in ids {
            let Some(target) = by_key.get(key.as_str()).and_then(|c| c.write_back()) else {
                continue;
            };
            if target.current.as_deref() != Some(id.as_str()) {
                self.state.write_back_id(&target, id).await?;
            }
        }
        Ok(())
    }
}

/// Mark this session's writes with replication origin `name` (created if missing), so
/// the decoder skips what pgforce writes into Postgres (no echo). Needs superuser or
/// the EXECUTE grants on `pg_replication_origin_create`/`_session_setup`. The origin is
/// created only when the setup says it does not exist (another session creating it at
/// the same moment is fine). An origin is active in one session at a time: the error
/// has SQLSTATE `55006` when another session has it.
pub async fn use_origin(state: &StateStore, name: &str) -> Result<(), StateError> {
    const SETUP: &str = "SELECT pg_replication_origin_session_setup($1)";
    let client = state.session().await;
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
pub(super) async fn update_source_row(
    state: &StateStore,
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
    let client = state.session().await;
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

/// An SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1).
fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn q(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StateError {
    move |source| StateError::Query { context, source }
}
