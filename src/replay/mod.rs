//! `pgforce replay`: re-apply a range of the change journal to Salesforce.
//!
//! The journal (see [`crate::journal`]) holds every mapped change with its commit LSN, in
//! the live pipeline's own change type ([`Pending`], encoded by
//! [`crate::pipeline::pending_codec`]). A replay reads `[from, to]`, coalesces per object and external id in LSN order (the latest
//! change wins, a delete supersedes earlier upserts: the same rules as a live epoch, through
//! [`Epoch`]), and applies the result through the same sink as the live pipeline
//! ([`Flusher`] over [`SalesforceDestination`]): upserts parents first, deletes children
//! first, Bulk API 2.0 or sObject Collections by the pipeline's `collections_threshold`.
//!
//! What a replay guarantees:
//! - **The live pipeline's checkpoint and slot are never touched.** The flusher runs under a
//!   separate state name, `<pipeline>:replay` ([`replay_state_name`]), with its own
//!   advisory lock (two replays of one pipeline do not run at once), in-flight plan and
//!   checkpoint. The one thing shared with the live state is the external id → Salesforce
//!   Id cache: ids the replay created are stored there and deleted keys forgotten, so the
//!   live pipeline's next delete of a restored record does not use a stale Id.
//! - **Idempotent.** Upserts go by external id; a delete of a record that is already gone
//!   counts as done. Running the same replay twice leaves the same state.
//! - **Nothing lingers.** Records Salesforce rejected are returned in the report (and the
//!   CLI prints them) rather than left in a dead-letter table nobody reads; children whose
//!   parent is not in Salesforce are reported, not parked for a later run to re-send.
//!
//! The journal is read from a private copy of the segments the range needs (plus the
//! oldest, which decides [`JournalError::TooOld`]): opening a journal cuts off a torn tail,
//! and doing that to the directory a running pipeline appends to could cut a record the
//! pipeline is writing. The copy is taken from the local disk, so replay runs on the host
//! (or volume) of the daemon.
//!
//! A mapping that finds its records by an ordinary field (`external_id = { column,
//! match_by }`, two-way pairs matched by email among them) is refused
//! ([`ReplayError::MatchBy`]): its changes are keyed by a value that is not an External ID,
//! so an upsert by it would fail or create records, and matching them again would need the
//! live pipeline's first-contact rules. Replay such a pipeline's other mappings with
//! `--mapping`.
//!
//! A replay re-applies the journaled state of the range: with `--to-lsn` before the latest
//! change, newer values in Salesforce are overwritten by the older ones of the range, which
//! is the point when restoring, and a surprise otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::batch::{plan_steps, Coalesce, Epoch, Step, StepKind, StepLimits};
use crate::checkpoint::{StateError, StateStore};
use crate::config::{JournalConfig, PipelineConfig};
use crate::journal::{Journal, JournalError, JournalOptions};
use crate::lsn::Lsn;
use crate::pipeline::{pending_codec, Pending};
use crate::salesforce::SalesforceError;
use crate::sink::{FlushChange, Flusher, FlusherOptions, SalesforceDestination, SinkError};

/// The state name a replay of `pipeline` runs under (never the live pipeline's own).
pub fn replay_state_name(pipeline: &str) -> String {
    format!("{pipeline}:replay")
}

/// Why a replay could not run (record rejections are not errors: see [`ReplayReport`]).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("pipeline {0}: no change journal is configured; set `[journal] dir` in the config (replay can only re-apply changes journaled after that)")]
    NoJournal(String),
    #[error("pipeline {pipeline}: no journal at {dir}; has the pipeline run with `[journal] dir` set on this host?")]
    NoJournalDir { pipeline: String, dir: PathBuf },
    #[error("--to-lsn {to} is before --from-lsn {from}")]
    EmptyRange { from: Lsn, to: Lsn },
    #[error("pipeline {pipeline} has no mapping named {mapping:?}")]
    UnknownMapping { pipeline: String, mapping: String },
    #[error("pipeline {pipeline}: mapping {mapping:?} matches records by {field} (`match_by`), which replay does not support (its changes are not keyed by an External ID); replay the other mappings with --mapping")]
    MatchBy {
        pipeline: String,
        mapping: String,
        field: String,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("journal entry at {lsn} is not a journaled change: {source}")]
    Decode {
        lsn: Lsn,
        #[source]
        source: serde_json::Error,
    },
    #[error("copying the journal for reading: {0}")]
    Copy(std::io::Error),
    #[error("pipeline {pipeline}: {message}")]
    Config { pipeline: String, message: String },
    #[error("another replay of pipeline {0} is running (it holds the replay lock)")]
    Busy(String),
    #[error("Salesforce: {0}")]
    Salesforce(#[from] SalesforceError),
    #[error("state store: {0}")]
    State(#[from] StateError),
    #[error("applying to Salesforce: {0}")]
    Sink(#[from] SinkError),
}

impl ReplayError {
    /// A mistake in the config or the arguments (exit code 2), as opposed to a failure
    /// while running.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ReplayError::NoJournal(_)
                | ReplayError::NoJournalDir { .. }
                | ReplayError::EmptyRange { .. }
                | ReplayError::UnknownMapping { .. }
                | ReplayError::MatchBy { .. }
                | ReplayError::Config { .. }
                | ReplayError::Journal(JournalError::TooOld { .. } | JournalError::Empty(_))
        )
    }
}

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayRequest {
    pub from: Lsn,
    /// Inclusive; `None`: to the end of the journal.
    pub to: Option<Lsn>,
    /// Only changes of this mapping.
    pub mapping: Option<String>,
}

/// The coalesced range, cut into the steps it will be applied in.
#[derive(Debug)]
pub struct ReplayPlan {
    pub pipeline: String,
    pub from: Lsn,
    /// LSN of the last journal entry read (the requested `to` when nothing was read).
    pub to: Lsn,
    /// Journal entries read (before coalescing and the mapping filter).
    pub entries: usize,
    /// Upserts parents first, then deletes children first.
    pub steps: Vec<Step<Pending>>,
}

/// One object's share of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectSummary {
    pub object: String,
    pub upserts: usize,
    pub deletes: usize,
}

impl ReplayPlan {
    /// Distinct (object, key) changes to send.
    pub fn rows(&self) -> usize {
        self.steps.iter().map(|s| s.changes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Per object, in step order.
    pub fn summary(&self) -> Vec<ObjectSummary> {
        let mut out: Vec<ObjectSummary> = Vec::new();
        for s in &self.steps {
            let i = match out.iter().position(|o| o.object == s.object) {
                Some(i) => i,
                None => {
                    out.push(ObjectSummary {
                        object: s.object.clone(),
                        upserts: 0,
                        deletes: 0,
                    });
                    out.len() - 1
                }
            };
            match s.kind {
                StepKind::Upsert => out[i].upserts += s.changes.len(),
                StepKind::Delete => out[i].deletes += s.changes.len(),
            }
        }
        out
    }

    /// What would be sent, as JSON: per object the upsert records and the deleted keys.
    pub fn to_json(&self) -> Value {
        let mut objects: Vec<(String, Vec<Value>, Vec<Value>)> = Vec::new();
        for s in &self.steps {
            let i = match objects.iter().position(|(o, _, _)| *o == s.object) {
                Some(i) => i,
                None => {
                    objects.push((s.object.clone(), Vec::new(), Vec::new()));
                    objects.len() - 1
                }
            };
            for c in &s.changes {
                match s.kind {
                    StepKind::Upsert => objects[i].1.push(Value::Object(c.record())),
                    StepKind::Delete => objects[i].2.push(json!({
                        c.change.external_id_field.to_string(): c.change.external_id.clone()
                    })),
                }
            }
        }
        json!({
            "pipeline": self.pipeline,
            "from_lsn": self.from.to_string(),
            "to_lsn": self.to.to_string(),
            "journal_entries": self.entries,
            "rows": self.rows(),
            "objects": objects.into_iter().map(|(o, u, d)| json!({
                "object": o, "upserts": u, "deletes": d,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The pipeline's journal directory, `<dir>/<pipeline>/`.
pub fn journal_dir(journal: &JournalConfig, pipeline: &str) -> Result<PathBuf, ReplayError> {
    let dir = journal
        .dir
        .as_ref()
        .ok_or_else(|| ReplayError::NoJournal(pipeline.into()))?;
    Ok(Path::new(dir).join(pipeline))
}

/// Read and coalesce the requested range. Touches neither Postgres nor Salesforce.
pub fn plan(
    cfg: &PipelineConfig,
    journal: &JournalConfig,
    req: &ReplayRequest,
) -> Result<ReplayPlan, ReplayError> {
    if let Some(m) = &req.mapping {
        if cfg.mapping(m).is_none() {
            return Err(ReplayError::UnknownMapping {
                pipeline: cfg.name.clone(),
                mapping: m.clone(),
            });
        }
    }
    refuse_match_by(cfg, req.mapping.as_deref())?;
    let to = req.to.unwrap_or(Lsn(u64::MAX));
    if to < req.from {
        return Err(ReplayError::EmptyRange { from: req.from, to });
    }
    let dir = journal_dir(journal, &cfg.name)?;
    if !dir.is_dir() {
        return Err(ReplayError::NoJournalDir {
            pipeline: cfg.name.clone(),
            dir,
        });
    }
    let order = crate::config::order::object_order(cfg).map_err(|e| ReplayError::Config {
        pipeline: cfg.name.clone(),
        message: e.to_string(),
    })?;
    let entries = read_entries(&dir, req.from, to)?;
    let mut epoch: Epoch<Pending> = Epoch::new();
    let mut last = None;
    for e in &entries {
        let change = pending_codec::decode(&e.payload, e.lsn)
            .map_err(|source| ReplayError::Decode { lsn: e.lsn, source })?;
        last = Some(e.lsn);
        if req
            .mapping
            .as_ref()
            .is_some_and(|m| **m != *change.change.mapping)
        {
            continue;
        }
        epoch.push(change);
    }
    let max_rows = cfg.batching.max_batch_rows.max(1);
    Ok(ReplayPlan {
        pipeline: cfg.name.clone(),
        from: req.from,
        to: last.unwrap_or(req.to.unwrap_or(req.from)),
        entries: entries.len(),
        steps: plan_steps(epoch.drain(), &order, StepLimits::rows(max_rows)),
    })
}

/// A replay touching a `match_by` mapping (the one named, or any when none is) is
/// refused, naming the mapping.
fn refuse_match_by(cfg: &PipelineConfig, only: Option<&str>) -> Result<(), ReplayError> {
    let matched = cfg
        .mappings
        .iter()
        .filter(|m| only.is_none_or(|o| o == m.name))
        .find(|m| m.external_id.match_by);
    match matched {
        Some(m) => Err(ReplayError::MatchBy {
            pipeline: cfg.name.clone(),
            mapping: m.name.clone(),
            field: m.external_id.field.clone(),
        }),
        None => Ok(()),
    }
}

/// Read `[from, to]` from a private copy of the segments that can hold it.
fn read_entries(dir: &Path, from: Lsn, to: Lsn) -> Result<Vec<crate::journal::Entry>, ReplayError> {
    // Retention may drop a segment while it is being copied: list again and retry.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let copy = tempfile::tempdir().map_err(ReplayError::Copy)?;
        match copy_segments(dir, copy.path(), from, to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => continue,
            Err(e) => return Err(ReplayError::Copy(e)),
        }
        let mut j = Journal::open(copy.path(), JournalOptions::default())?;
        return Ok(j.read_range(from, to)?);
    }
}

/// Copy the oldest segment and every segment whose LSNs can fall in `[from, to]`. A
/// segment is named by its first LSN and holds LSNs up to the next segment's first
/// (one transaction's changes share a commit LSN and may straddle two segments).
fn copy_segments(src: &Path, dst: &Path, from: Lsn, to: Lsn) -> std::io::Result<()> {
    let mut segs: Vec<(Lsn, PathBuf)> = std::fs::read_dir(src)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .filter_map(|p| {
            let first = u64::from_str_radix(p.file_stem()?.to_str()?, 16).ok()?;
            Some((Lsn(first), p))
        })
        .collect();
    segs.sort();
    for (i, (first, path)) in segs.iter().enumerate() {
        let next = segs.get(i + 1).map(|(n, _)| *n);
        let wanted = i == 0 || (*first <= to && next.is_none_or(|n| n >= from));
        if wanted {
            let name = path.file_name().unwrap_or_default();
            std::fs::copy(path, dst.join(name))?;
        }
    }
    Ok(())
}

/// A change Salesforce did not take.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayFailure {
    pub mapping: String,
    pub object: String,
    pub external_id: String,
    pub operation: String,
    pub lsn: String,
    pub error_code: String,
    pub message: String,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Changes applied (deletes of records already gone included).
    pub applied: usize,
    /// Rejected records, and children whose parent is not in Salesforce.
    pub failures: Vec<ReplayFailure>,
    pub steps: usize,
}

/// Progress after each step.
#[derive(Debug, Clone)]
pub struct StepProgress {
    pub step: usize,
    pub steps: usize,
    pub object: String,
    pub kind: StepKind,
    pub rows: usize,
    pub applied: usize,
    pub failed: usize,
}

/// Apply a plan to Salesforce. `progress` is called after each step.
pub async fn apply(
    cfg: &PipelineConfig,
    plan: ReplayPlan,
    mut progress: impl FnMut(&StepProgress),
) -> Result<ReplayReport, ReplayError> {
    let p = cfg.name.as_str();
    let state_name = replay_state_name(p);
    let config_err = |e: crate::pipeline::PipelineError| ReplayError::Config {
        pipeline: p.into(),
        message: e.to_string(),
    };
    let db = cfg
        .source
        .database_url
        .value()
        .map_err(|e| ReplayError::Config {
            pipeline: p.into(),
            message: e.to_string(),
        })?;
    let db = secrecy::ExposeSecret::expose_secret(db).to_string();
    let state = Arc::new(StateStore::connect(&db, &cfg.state_schema, &state_name).await?);
    if !state.try_lock_pipeline().await? {
        return Err(ReplayError::Busy(p.into()));
    }
    let live = StateStore::connect(&db, &cfg.state_schema, p).await?;
    let client = crate::pipeline::salesforce_client(cfg).map_err(config_err)?;
    client.login().await?;
    let order = crate::config::order::object_order(cfg).map_err(|e| ReplayError::Config {
        pipeline: p.into(),
        message: e.to_string(),
    })?;
    let flusher = Flusher::new(
        SalesforceDestination::new(client).with_calls_in_flight(cfg.batching.max_concurrent_calls),
        state.clone(),
        FlusherOptions {
            pipeline: state_name.clone(),
            collections_threshold: cfg.batching.collections_threshold,
            max_rows: cfg.batching.max_batch_rows,
            max_step_bytes: crate::sink::MAX_STEP_BYTES,
            object_order: order,
            transient_retries: 5,
            max_bulk_jobs: cfg.batching.max_concurrent_bulk_jobs,
            paired_objects: cfg.pairs.clone(),
        },
    );

    // Failures of earlier (crashed) replays are told apart from this run's by their
    // attempt count.
    let before: HashMap<i64, i32> = state
        .list_dead_letters(Some("open"), i64::MAX)
        .await?
        .into_iter()
        .map(|r| (r.id, r.attempts))
        .collect();
    let end_lsn = plan.to;
    let mut resume = state
        .open_epoch()
        .await?
        .filter(|r| r.end_lsn == end_lsn && r.steps.len() == 1);
    let steps = plan.steps.len();
    let mut report = ReplayReport {
        steps,
        ..Default::default()
    };
    let mut parked: Vec<Pending> = Vec::new();
    for (i, step) in plan.steps.into_iter().enumerate() {
        let (object, kind, rows) = (step.object.clone(), step.kind, step.changes.len());
        let keys: Vec<String> = step.changes.iter().map(|c| c.key().to_string()).collect();
        if kind == StepKind::Delete {
            // Look Ids up afresh: a cached Id may belong to a record deleted (and the key
            // re-created) since.
            state.forget_ids(&object, &keys).await?;
        }
        let with_parent: Vec<Pending> = step
            .changes
            .iter()
            .filter(|c| !c.parents().is_empty())
            .cloned()
            .collect();
        let mut epoch = Epoch::new();
        for c in step.changes {
            epoch.push(c);
        }
        epoch.commit(end_lsn, chrono::Utc::now());
        // A step holds one object and one kind, so the flusher runs it as one step.
        let r = flusher.flush(&mut epoch, resume.take()).await?;
        report.applied += r.applied;
        if r.parked > 0 {
            parked.extend(with_parent);
        }
        match kind {
            StepKind::Upsert => {
                let ids = state.lookup_ids(&object, &keys).await?;
                let ids: Vec<(String, String)> = ids.into_iter().collect();
                live.store_ids(&object, &ids).await?;
            }
            StepKind::Delete => {
                let gone = state.lookup_ids(&object, &keys).await?;
                let gone: Vec<String> = keys
                    .iter()
                    .filter(|k| !gone.contains_key(*k))
                    .cloned()
                    .collect();
                live.forget_ids(&object, &gone).await?;
            }
        }
        progress(&StepProgress {
            step: i + 1,
            steps,
            object,
            kind,
            rows,
            applied: r.applied,
            failed: r.dead_lettered + r.parked,
        });
    }

    // Rejections: this run's dead letters, reported and then discarded.
    let mut discard = Vec::new();
    for d in state.list_dead_letters(Some("open"), i64::MAX).await? {
        if before.get(&d.id).is_some_and(|a| *a >= d.attempts) {
            continue;
        }
        discard.push(d.id);
        report.failures.push(ReplayFailure {
            mapping: d.mapping,
            object: d.object,
            external_id: d.external_id,
            operation: d.operation,
            lsn: d.lsn,
            error_code: d.error_code,
            message: d.message,
        });
    }
    if !discard.is_empty() {
        state.discard_dead_letters(&discard).await?;
    }
    report.failures.extend(unpark(&state, parked).await?);
    Ok(report)
}

/// Children this run parked (their parent is not in Salesforce): reported as failures and
/// dropped from the replay state, so no later replay re-sends a stale record.
async fn unpark(
    state: &StateStore,
    candidates: Vec<Pending>,
) -> Result<Vec<ReplayFailure>, ReplayError> {
    let mut by_parent: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut wanted: HashMap<(String, String), &Pending> = HashMap::new();
    for c in &candidates {
        for (po, pk) in c.parents() {
            by_parent.entry(po).or_default().insert(pk);
        }
        wanted.insert((c.change.mapping.to_string(), c.key().to_string()), c);
    }
    let mut out = Vec::new();
    let mut drop: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (parent_object, keys) in by_parent {
        let keys: Vec<String> = keys.into_iter().collect();
        for pc in state.parked_for(&parent_object, &keys).await? {
            // A child with several missing parents is parked under each: report it once.
            let Some(c) = wanted.remove(&(pc.mapping.clone(), pc.external_id.clone())) else {
                continue;
            };
            out.push(ReplayFailure {
                mapping: pc.mapping.clone(),
                object: pc.object.clone(),
                external_id: pc.external_id.clone(),
                operation: "upsert".into(),
                lsn: c.lsn.to_string(),
                error_code: "PARENT_NOT_IN_SALESFORCE".into(),
                message: format!(
                    "parent {} does not exist in Salesforce; include its changes in the range or create it first",
                    pc.parents
                        .iter()
                        .map(|(o, k)| format!("{o} {k}"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            });
            drop.entry(pc.mapping).or_default().push(pc.external_id);
        }
    }
    for (mapping, keys) in drop {
        state.unpark_keys(&mapping, &keys).await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(op: &str, key: &str, fields: &[(&str, &str)]) -> Pending {
        use crate::mapping::{FieldName, FieldValue, MappedChange, MappedOp};
        let change = MappedChange {
            mapping: Arc::from("accounts"),
            object: Arc::from("Account"),
            external_id_field: Arc::from("External_Id__c"),
            external_id: key.into(),
            op: if op == "delete" {
                MappedOp::Delete
            } else {
                MappedOp::Upsert
            },
            fields: fields
                .iter()
                .map(|(k, v)| {
                    (
                        FieldName::Field(k.to_string()),
                        FieldValue::Text(v.to_string()),
                    )
                })
                .collect(),
            parents: Vec::new(),
            write_back: None,
            existing_only: false,
            match_by: false,
        };
        Pending::new(change, Lsn(1))
    }

    #[test]
    fn coalesces_latest_wins_keeps_unmentioned_fields_and_delete_supersedes() {
        let mut e = Epoch::new();
        e.push(change("upsert", "1", &[("Name", "a"), ("Phone", "1")]));
        e.push(change("upsert", "1", &[("Name", "b")]));
        e.push(change("upsert", "2", &[("Name", "x")]));
        e.push(change("delete", "2", &[]));
        let steps = plan_steps(e.drain(), &["Account".into()], StepLimits::rows(100));
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].kind, StepKind::Upsert);
        let rec = steps[0].changes[0].record();
        assert_eq!(rec["Name"], json!("b"));
        assert_eq!(rec["Phone"], json!("1"));
        assert_eq!(rec["External_Id__c"], json!("1"));
        assert_eq!(steps[1].kind, StepKind::Delete);
        assert_eq!(steps[1].changes[0].key(), "2");
    }

    #[test]
    fn segments_outside_the_range_are_not_copied_but_the_oldest_is() {
        let src = tempfile::tempdir().unwrap();
        let opts = JournalOptions {
            segment_bytes: 60,
            ..Default::default()
        };
        let mut j = Journal::open(src.path(), opts).unwrap();
        for i in 1..=30u64 {
            j.append(Lsn(i * 10), format!("c{i}").as_bytes()).unwrap();
        }
        j.sync().unwrap();
        drop(j);
        let got = read_entries(src.path(), Lsn(150), Lsn(170)).unwrap();
        assert_eq!(
            got.iter().map(|e| e.lsn.0).collect::<Vec<_>>(),
            vec![150, 160, 170]
        );
        let dst = tempfile::tempdir().unwrap();
        copy_segments(src.path(), dst.path(), Lsn(150), Lsn(170)).unwrap();
        let copied = std::fs::read_dir(dst.path()).unwrap().count();
        let all = std::fs::read_dir(src.path()).unwrap().count();
        assert!(copied < all, "{copied} of {all} segments copied");
        assert!(matches!(
            read_entries(src.path(), Lsn(5), Lsn(170)),
            Err(ReplayError::Journal(JournalError::TooOld { oldest, .. })) if oldest == Lsn(10)
        ));
    }
}
