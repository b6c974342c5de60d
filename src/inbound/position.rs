//! Where each inbound entry stands, in the state schema's `inbound_positions` table: the
//! source position (a replay id or a poll watermark) and, during the initial load, the
//! last record Id loaded. [`save`] runs inside the transaction that wrote the rows, so
//! the rows and the position commit together or not at all (exactly once).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::event::Position;

/// Where an entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Loading the existing records; the stored position is the tip taken before.
    Loading,
    /// Applying the stream after the stored position.
    Streaming,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Streaming => "streaming",
        }
    }
}

/// One entry's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub phase: Phase,
    pub position: Option<Position>,
    /// During a load: the last record Id loaded (records are loaded in Id order).
    pub load_after_id: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The key of one entry's row.
#[derive(Debug, Clone)]
pub struct EntryKey {
    /// The quoted state schema.
    pub schema: String,
    pub pipeline: String,
    pub object: String,
    /// The target table, `schema.table`.
    pub target: String,
}

/// The stored state, `None` before the first start. `Err(reason)` for a row that cannot
/// be read back.
pub async fn load(
    client: &impl GenericClient,
    key: &EntryKey,
) -> Result<Option<Result<Stored, String>>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT phase, replay_id, poll_modstamp, poll_id, load_after_id, updated_at \
                 FROM {}.inbound_positions WHERE pipeline = $1 AND object = $2 AND target = $3",
                key.schema
            ),
            &[&key.pipeline, &key.object, &key.target],
        )
        .await?;
    Ok(row.map(|r| {
        let phase = match r.get::<_, String>(0).as_str() {
            "loading" => Phase::Loading,
            "streaming" => Phase::Streaming,
            other => return Err(format!("unknown phase {other:?}")),
        };
        let replay: Option<Vec<u8>> = r.get(1);
        let modstamp: Option<DateTime<Utc>> = r.get(2);
        let id: Option<String> = r.get(3);
        let position = match (replay, modstamp) {
            (Some(bytes), None) => Some(Position::Replay(bytes)),
            (None, Some(t)) => Some(Position::Poll {
                systemmodstamp: t,
                id: id.unwrap_or_default(),
            }),
            (None, None) => None,
            (Some(_), Some(_)) => return Err("both a replay id and a poll watermark".into()),
        };
        Ok(Stored {
            phase,
            position,
            load_after_id: r.get(4),
            updated_at: r.get(5),
        })
    }))
}

/// Stores the state (inside the caller's transaction).
pub async fn save(
    client: &impl GenericClient,
    key: &EntryKey,
    phase: Phase,
    position: Option<&Position>,
    load_after_id: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let (replay, modstamp, id): (Option<&[u8]>, Option<DateTime<Utc>>, Option<&str>) =
        match position {
            Some(Position::Replay(b)) => (Some(b.as_slice()), None, None),
            Some(Position::Poll { systemmodstamp, id }) => {
                (None, Some(*systemmodstamp), Some(id.as_str()))
            }
            None => (None, None, None),
        };
    client
        .execute(
            &format!(
                "INSERT INTO {}.inbound_positions \
                 (pipeline, object, target, phase, replay_id, poll_modstamp, poll_id, load_after_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) \
                 ON CONFLICT (pipeline, object, target) DO UPDATE SET phase = EXCLUDED.phase, \
                 replay_id = EXCLUDED.replay_id, poll_modstamp = EXCLUDED.poll_modstamp, \
                 poll_id = EXCLUDED.poll_id, load_after_id = EXCLUDED.load_after_id, updated_at = now()",
                key.schema
            ),
            &[
                &key.pipeline,
                &key.object,
                &key.target,
                &phase.as_str(),
                &replay,
                &modstamp,
                &id,
                &load_after_id,
            ],
        )
        .await?;
    Ok(())
}

/// A position as text (audit rows, status): hex replay ids, `<RFC 3339>/<Id>` watermarks.
pub fn position_text(p: &Position) -> String {
    match p {
        Position::Replay(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Position::Poll { systemmodstamp, id } => format!(
            "{}/{id}",
            systemmodstamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    }
}
