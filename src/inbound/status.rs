//! The inbound side's entry in the ops registry: one [`PipelineStatus`] named
//! `<pipeline>/inbound` whose `inbound` list has one [`InboundEntryStatus`] per entry,
//! and the position-age gauge.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::event::Position;
use super::position::position_text;
use crate::config::inbound::InboundConfig;
use crate::metrics as m;
use crate::server::{Health, InboundEntryStatus, InboundState, PipelineState, PipelineStatus};

/// The status name of a pipeline's inbound side.
pub fn status_name(pipeline: &str) -> String {
    format!("{pipeline}/inbound")
}

/// Publishes the inbound side of `pipeline` as starting.
pub fn register(health: &Health, pipeline: &str, entries: &[InboundConfig]) {
    let mut s = PipelineStatus::starting(status_name(pipeline));
    s.inbound = Some(
        entries
            .iter()
            .map(|e| InboundEntryStatus {
                object: e.object.clone(),
                table: e.qualified_table(),
                mode: e.mode.as_str().into(),
                source: e.source.as_str().into(),
                state: InboundState::Starting,
                position: None,
                position_stored_at: None,
                lag_seconds: None,
                events_applied: 0,
                records_loaded: 0,
                resyncs: 0,
                last_error: None,
            })
            .collect(),
    );
    health.publish(s);
}

/// Sets the side's overall state and connection flags.
pub fn set_side(
    health: &Health,
    pipeline: &str,
    state: PipelineState,
    connected: bool,
    error: Option<String>,
) {
    health.update(&status_name(pipeline), |s| {
        s.state = state;
        s.postgres_connected = connected;
        s.salesforce_connected = connected;
        if error.is_some() {
            s.last_error = error;
        }
    });
}

/// One entry's handle on its status.
#[derive(Debug, Clone)]
pub struct EntryStatus {
    health: Health,
    pipeline: String,
    object: String,
    index: usize,
    stored_at: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl EntryStatus {
    pub fn new(health: Health, pipeline: &str, object: &str, index: usize) -> EntryStatus {
        EntryStatus {
            health,
            pipeline: pipeline.to_string(),
            object: object.to_string(),
            index,
            stored_at: Arc::new(Mutex::new(None)),
        }
    }

    /// Edits this entry's status in place.
    pub fn update(&self, edit: impl FnOnce(&mut InboundEntryStatus)) {
        let index = self.index;
        self.health.update(&status_name(&self.pipeline), |s| {
            if let Some(e) = s.inbound.as_mut().and_then(|l| l.get_mut(index)) {
                edit(e);
            }
        });
    }

    pub fn set_state(&self, state: InboundState) {
        self.update(|s| s.state = state);
    }

    pub fn set_error(&self, error: String) {
        self.update(|s| {
            s.state = InboundState::Failed;
            s.last_error = Some(error);
        });
    }

    /// The source lost (`true`) or regained (`false`) its connection: a streaming entry
    /// shows `reconnecting` (not ready) until its source delivers again. Other states
    /// (loading, resyncing) are left alone.
    pub fn set_reconnecting(&self, reconnecting: bool) {
        self.update(|s| {
            s.state = match (s.state, reconnecting) {
                (InboundState::Streaming, true) => InboundState::Reconnecting,
                (InboundState::Reconnecting, false) => InboundState::Streaming,
                (other, _) => other,
            };
        });
    }

    pub fn set_position(&self, p: &Position, at: DateTime<Utc>) {
        *self.stored_at.lock() = Some(at);
        let text = position_text(p);
        self.update(|s| {
            s.position = Some(text);
            s.position_stored_at = Some(at);
        });
        self.age_metric();
    }

    /// Sets the position-age gauge (seconds since the position was last stored).
    pub fn age_metric(&self) {
        if let Some(at) = *self.stored_at.lock() {
            let age = (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!(m::INBOUND_POSITION_AGE, "pipeline" => self.pipeline.clone(), "object" => self.object.clone()).set(age);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_state(health: &Health) -> InboundState {
        health.get("p/inbound").unwrap().inbound.unwrap()[0].state
    }

    #[test]
    fn a_lost_stream_makes_a_streaming_entry_not_ready_until_it_delivers() {
        let health = Health::new();
        let cfg: InboundConfig = toml::from_str(
            "object = \"Opportunity\"\ntable = \"sf.opps\"\nsource = \"cdc\"\nfields = { Name = \"name\" }",
        )
        .unwrap();
        register(&health, "p", &[cfg]);
        set_side(&health, "p", PipelineState::Streaming, true, None);
        let s = EntryStatus::new(health.clone(), "p", "Opportunity", 0);
        s.set_state(InboundState::Streaming);
        assert!(health.readiness().ready);
        s.set_reconnecting(true);
        assert_eq!(entry_state(&health), InboundState::Reconnecting);
        assert!(!health.readiness().ready);
        s.set_reconnecting(false);
        assert_eq!(entry_state(&health), InboundState::Streaming);
        assert!(health.readiness().ready);
        // Loading and resyncing are not overwritten by the source's connection.
        s.set_state(InboundState::Resyncing);
        s.set_reconnecting(true);
        s.set_reconnecting(false);
        assert_eq!(entry_state(&health), InboundState::Resyncing);
    }
}
