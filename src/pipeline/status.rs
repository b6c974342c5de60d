//! [`refresh_status`]: the periodic refresh of a streaming pipeline's status page and
//! gauges: slot lag and activity, open dead letters, checkpoint age, API usage and whether
//! the Salesforce governor has paused the pipeline.

use crate::config::PipelineConfig;
use crate::metrics as m;
use crate::replication::slot_health;
use crate::server::Health;
use crate::sink::{Flusher, SalesforceDestination};

/// Read the slot's and the state store's numbers and publish them.
pub(super) async fn refresh_status(
    cfg: &PipelineConfig,
    flusher: &Flusher<SalesforceDestination>,
    status: &Health,
    pg: &tokio_postgres::Client,
) {
    let name = cfg.name.clone();
    let health = slot_health(pg, &cfg.slot).await;
    let dead = flusher.state().open_dead_letters().await.ok();
    let stuck = flusher.state().stuck().await.ok();
    let age = flusher.state().checkpoint_age_secs().await.ok().flatten();
    let usage = flusher.destination().client().api_usage();
    if let Ok(h) = &health {
        metrics::gauge!(m::REPLICATION_LAG_BYTES, "pipeline" => name.clone())
            .set(h.lag_bytes as f64);
    }
    if let Some(a) = age {
        metrics::gauge!(m::CHECKPOINT_AGE, "pipeline" => name.clone()).set(a);
    }
    if let Some(d) = dead {
        metrics::gauge!(m::DEAD_LETTER_ROWS, "pipeline" => name.clone()).set(d as f64);
    }
    if let Some(stuck) = &stuck {
        super::stuck_metrics::record_parked(&name, cfg, stuck);
    }
    let paused = !matches!(
        flusher.destination().client().governor_state(),
        crate::salesforce::GovernorState::Normal | crate::salesforce::GovernorState::Slowed { .. }
    );
    metrics::gauge!(m::GOVERNOR_PAUSED, "pipeline" => name.clone()).set(if paused {
        1.0
    } else {
        0.0
    });
    status.update(&name, |s| {
        if let Ok(h) = &health {
            s.lag_bytes = h.lag_bytes.max(0) as u64;
            s.slot_active = h.active;
        }
        if let Some(d) = dead {
            s.dead_letters = d.max(0) as u64;
        }
        if let Some(stuck) = &stuck {
            s.set_stuck(stuck);
        }
        s.governor_paused = paused;
        if let Some(u) = &usage {
            s.api_max = Some(u.max);
            s.api_remaining = Some(u.max.saturating_sub(u.used));
        }
    });
}
