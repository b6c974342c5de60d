//! The `pgforce_parked_changes` gauge: parked children per pipeline and child sObject, with a
//! 0 for every mapped object that has none (so the series exist before anything is parked).

use crate::checkpoint::Stuck;
use crate::config::PipelineConfig;
use crate::metrics as m;

/// Set `pgforce_parked_changes{pipeline, object}` from what the state store reports.
pub(crate) fn record_parked(pipeline: &str, cfg: &PipelineConfig, stuck: &Stuck) {
    let parked = stuck.parked_by_object();
    let mut objects: Vec<&str> = cfg.mappings.iter().map(|m| m.object.as_str()).collect();
    objects.extend(parked.keys().copied());
    objects.sort_unstable();
    objects.dedup();
    for object in objects {
        let count = parked.get(object).copied().unwrap_or(0);
        metrics::gauge!(m::PARKED_CHANGES, "pipeline" => pipeline.to_owned(), "object" => object.to_owned())
            .set(count as f64);
    }
}
