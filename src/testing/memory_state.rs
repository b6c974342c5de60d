//! [`MemoryState`]: the sink's state ([`SinkState`]) in memory, for unit tests of the
//! epoch protocol. It keeps the trait's contract (the checkpoint never moves backwards,
//! finishing an epoch drops its plan and moves the checkpoint in one step) and records
//! every call in an [`EventLog`] shared with [`MemoryDestination`](super::MemoryDestination),
//! so a test can check the order of state writes and Salesforce calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::checkpoint::{
    DeadLetter, EpochPlan, ParkedChange, RecordedStep, StateError, StepPlan, StepState,
};
use crate::lsn::Lsn;
use crate::sink::{SinkState, SyncedValues, WriteBackTarget};

/// Calls in the order they happened, one line each (`state: …`, `dest: …`).
#[derive(Debug, Clone, Default)]
pub struct EventLog(Arc<Mutex<Vec<String>>>);

impl EventLog {
    pub fn push(&self, event: String) {
        self.0.lock().expect("event log").push(event);
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<String> {
        self.0.lock().expect("event log").clone()
    }

    /// Position of the first event starting with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.events().iter().position(|e| e.starts_with(prefix))
    }
}

/// A dead letter and whether it is still open.
#[derive(Debug, Clone)]
pub struct StoredDeadLetter {
    pub letter: DeadLetter,
    pub open: bool,
}

#[derive(Debug, Default)]
struct Inner {
    checkpoint: Option<Lsn>,
    inflight: BTreeMap<Lsn, Vec<RecordedStep>>,
    /// (object, key) → Id (`None`: noted before a write, Id not known).
    ids: HashMap<(String, String), Option<String>>,
    dead: Vec<StoredDeadLetter>,
    parked: BTreeMap<(String, String), ParkedChange>,
    write_backs: Vec<(WriteBackTarget, String)>,
    lost_lock: bool,
}

/// The sink's state in memory. See the module docs.
#[derive(Debug)]
pub struct MemoryState {
    pipeline: String,
    log: EventLog,
    inner: Mutex<Inner>,
}

impl MemoryState {
    pub fn new(pipeline: &str, log: EventLog) -> Self {
        MemoryState {
            pipeline: pipeline.to_string(),
            log,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory state")
    }

    /// The confirmed position.
    pub fn checkpoint(&self) -> Option<Lsn> {
        self.inner().checkpoint
    }

    /// The epoch left in flight, as `StateStore::open_epoch` returns it.
    pub fn open_epoch(&self) -> Option<EpochPlan> {
        let inner = self.inner();
        let (end_lsn, steps) = inner.inflight.iter().next()?;
        Some(EpochPlan {
            end_lsn: *end_lsn,
            steps: steps.clone(),
        })
    }

    /// Open dead letters, oldest first.
    pub fn open_dead_letters(&self) -> Vec<DeadLetter> {
        let inner = self.inner();
        inner
            .dead
            .iter()
            .filter(|d| d.open)
            .map(|d| d.letter.clone())
            .collect()
    }

    /// Every dead letter ever recorded, resolved ones included.
    pub fn dead_letters(&self) -> Vec<StoredDeadLetter> {
        self.inner().dead.clone()
    }

    /// Parked changes, by (mapping, key).
    pub fn parked(&self) -> Vec<ParkedChange> {
        self.inner().parked.values().cloned().collect()
    }

    /// The known Id of a key (`Some(None)`: noted, Id not known).
    pub fn id_of(&self, object: &str, key: &str) -> Option<Option<String>> {
        self.inner()
            .ids
            .get(&(object.to_string(), key.to_string()))
            .cloned()
    }

    /// Ids written back into source rows.
    pub fn write_backs(&self) -> Vec<(WriteBackTarget, String)> {
        self.inner().write_backs.clone()
    }

    /// Lose (or regain) the pipeline's lock: fenced writes fail while it is lost.
    pub fn set_lock_lost(&self, lost: bool) {
        self.inner().lost_lock = lost;
    }

    fn log(&self, event: String) {
        self.log.push(format!("state: {event}"));
    }
}

fn strings(keys: &[String]) -> String {
    keys.join(",")
}

impl SinkState for MemoryState {
    fn pipeline(&self) -> &str {
        &self.pipeline
    }

    async fn plan_epoch(&self, end_lsn: Lsn, steps: &[StepPlan]) -> Result<(), StateError> {
        self.log(format!("plan {end_lsn} steps={}", steps.len()));
        let recorded = steps
            .iter()
            .map(|p| RecordedStep {
                plan: p.clone(),
                job_id: None,
                state: StepState::Planned,
            })
            .collect();
        self.inner().inflight.insert(end_lsn, recorded);
        Ok(())
    }

    async fn set_step(
        &self,
        end_lsn: Lsn,
        step: i32,
        state: StepState,
        job_id: Option<&str>,
    ) -> Result<(), StateError> {
        self.log(format!(
            "step {step} {state:?} job={}",
            job_id.unwrap_or("-")
        ));
        let mut inner = self.inner();
        let Some(steps) = inner.inflight.get_mut(&end_lsn) else {
            return Ok(());
        };
        if let Some(s) = steps.iter_mut().find(|s| s.plan.step == step) {
            s.state = state;
            if let Some(job) = job_id {
                s.job_id = Some(job.to_string());
            }
        }
        Ok(())
    }

    async fn finish_epoch(&self, end_lsn: Lsn) -> Result<(), StateError> {
        self.log(format!("finish {end_lsn}"));
        let mut inner = self.inner();
        inner.inflight.retain(|lsn, _| *lsn > end_lsn);
        inner.checkpoint = Some(inner.checkpoint.map_or(end_lsn, |c| c.max(end_lsn)));
        Ok(())
    }

    async fn lookup_ids(
        &self,
        object: &str,
        keys: &[String],
    ) -> Result<HashMap<String, String>, StateError> {
        let inner = self.inner();
        Ok(keys
            .iter()
            .filter_map(|k| {
                let id = inner.ids.get(&(object.to_string(), k.clone()))?.clone()?;
                Some((k.clone(), id))
            })
            .collect())
    }

    async fn note_keys(&self, object: &str, keys: &[&str]) -> Result<(), StateError> {
        self.log(format!("note {object} {}", keys.join(",")));
        let mut inner = self.inner();
        for k in keys {
            inner
                .ids
                .entry((object.to_string(), k.to_string()))
                .or_insert(None);
        }
        Ok(())
    }

    async fn store_ids(&self, object: &str, pairs: &[(String, String)]) -> Result<(), StateError> {
        let mut inner = self.inner();
        for (k, id) in pairs {
            inner
                .ids
                .insert((object.to_string(), k.clone()), Some(id.clone()));
        }
        Ok(())
    }

    async fn forget_ids(&self, object: &str, keys: &[String]) -> Result<(), StateError> {
        let mut inner = self.inner();
        for k in keys {
            inner.ids.remove(&(object.to_string(), k.clone()));
        }
        Ok(())
    }

    async fn record_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        self.log(format!("dead-letter {}", letters.len()));
        let mut inner = self.inner();
        for l in letters {
            inner.dead.push(StoredDeadLetter {
                letter: l.clone(),
                open: true,
            });
        }
        Ok(())
    }

    async fn resolve_dead_letters(
        &self,
        mapping: &str,
        keys: &[String],
    ) -> Result<u64, StateError> {
        let mut inner = self.inner();
        let mut n = 0;
        for d in inner.dead.iter_mut().filter(|d| d.open) {
            if d.letter.mapping == mapping && keys.contains(&d.letter.external_id) {
                d.open = false;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn resolve_dead_letters_through(
        &self,
        mapping: &str,
        landed: &[(String, Lsn)],
    ) -> Result<u64, StateError> {
        let mut inner = self.inner();
        let mut n = 0;
        for d in inner.dead.iter_mut().filter(|d| d.open) {
            let newer_landed = landed
                .iter()
                .any(|(k, lsn)| *k == d.letter.external_id && d.letter.lsn <= *lsn);
            if d.letter.mapping == mapping && newer_landed {
                d.open = false;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn park(&self, changes: &[ParkedChange]) -> Result<(), StateError> {
        self.log(format!("park {}", changes.len()));
        let mut inner = self.inner();
        for p in changes {
            let key = (p.mapping.clone(), p.external_id.clone());
            inner.parked.insert(key, p.clone());
        }
        Ok(())
    }

    async fn parked_for(
        &self,
        parent_object: &str,
        landed: &[String],
    ) -> Result<Vec<ParkedChange>, StateError> {
        let inner = self.inner();
        let mut out: Vec<ParkedChange> = inner
            .parked
            .values()
            .filter(|p| {
                p.parents
                    .iter()
                    .any(|(o, k)| o == parent_object && landed.contains(k))
            })
            .cloned()
            .collect();
        out.sort_by_key(|p| p.lsn);
        Ok(out)
    }

    async fn unpark_keys(&self, mapping: &str, keys: &[String]) -> Result<u64, StateError> {
        let mut inner = self.inner();
        let before = inner.parked.len();
        inner
            .parked
            .retain(|(m, k), _| !(m == mapping && keys.contains(k)));
        Ok((before - inner.parked.len()) as u64)
    }

    async fn holds_pipeline_lock(&self) -> Result<bool, StateError> {
        Ok(!self.inner().lost_lock)
    }

    async fn write_back_id(&self, target: &WriteBackTarget, id: &str) -> Result<u64, StateError> {
        self.log(format!("write-back {} {id}", target.table));
        let mut inner = self.inner();
        inner.write_backs.push((target.clone(), id.to_string()));
        Ok(1)
    }

    async fn remember_outbound(
        &self,
        object: &str,
        written: Vec<(String, Map<String, Value>)>,
    ) -> Result<(), StateError> {
        let ids: Vec<String> = written.into_iter().map(|(id, _)| id).collect();
        self.log(format!("synced {object} {}", strings(&ids)));
        Ok(())
    }

    async fn synced_values(
        &self,
        _object: &str,
        _ids: &[String],
    ) -> Result<SyncedValues, StateError> {
        Ok(SyncedValues::new())
    }

    async fn row_commit_times(
        &self,
        _table: &str,
        keys: &[Vec<(String, String)>],
    ) -> Result<Vec<Option<chrono::DateTime<chrono::Utc>>>, StateError> {
        Ok(vec![None; keys.len()])
    }
}
