//! [`MemoryDestination`]: Salesforce as the sink sees it ([`Destination`]), in memory, for
//! unit tests of the epoch protocol, with faults injected at chosen calls. Records are
//! kept per object by external id; a lookup by external id (`{"Account": {"Ext__c":
//! "7"}}`) must name a stored record of the object the relationship names (`X__r` → `X__c`,
//! a standard name as is), or the record fails as Salesforce fails it
//! (`INVALID_FIELD`, "Foreign key external ID … not found"). Bulk jobs are processed when
//! their results are asked for, like a job that finished meanwhile.
//!
//! Faults ([`Fault`]) apply to the n-th call of one kind ([`Call`]): the call fails before
//! doing anything, or does its work and then fails (a response lost on the way back), or
//! (job results) leaves some records unprocessed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::memory_state::EventLog;
use crate::batch::StepKind;
use crate::sink::{Destination, JobStatus, Outcome, RecordFailure, SinkError};

/// A kind of Salesforce call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    CreateJob,
    Upload,
    JobStatus,
    AbortJob,
    JobResults,
    Upsert,
    Delete,
    FindIds,
}

/// What goes wrong at a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails and does nothing.
    Fail,
    /// The call does its work, then fails (the response was lost).
    LoseResponse,
    /// Job results: the last `n` records are reported unprocessed (and not applied).
    Unprocessed(usize),
}

/// Where a Bulk job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemJobState {
    Open,
    Uploaded,
    Finished,
    Aborted,
}

#[derive(Debug, Clone)]
struct Job {
    object: String,
    kind: StepKind,
    ext_field: String,
    state: MemJobState,
    records: Vec<Map<String, Value>>,
    results: Option<(Vec<Outcome>, Vec<String>)>,
}

/// A stored record: its Id and fields.
pub type Stored = (String, Map<String, Value>);

#[derive(Debug, Default)]
struct Inner {
    /// object → external id → record.
    records: HashMap<String, BTreeMap<String, Stored>>,
    jobs: BTreeMap<String, Job>,
    calls: HashMap<Call, usize>,
    faults: HashMap<(Call, usize), Fault>,
    /// External ids whose records fail validation.
    rejected: Vec<String>,
    next_id: u64,
    writes: usize,
}

/// Salesforce in memory. See the module docs.
#[derive(Debug)]
pub struct MemoryDestination {
    log: EventLog,
    inner: Mutex<Inner>,
}

fn remote(what: &str) -> SinkError {
    SinkError::Remote(format!("injected fault at {what}").into())
}

/// The object a relationship field names: `Parent__r` → `Parent__c`, `Account` as is.
fn related_object(field: &str) -> String {
    match field.strip_suffix("__r") {
        Some(base) => format!("{base}__c"),
        None => field.to_string(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl MemoryDestination {
    pub fn new(log: EventLog) -> Self {
        MemoryDestination {
            log,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory destination")
    }

    /// Inject `fault` at the `nth` (1-based) call of `call`.
    pub fn fault(&self, call: Call, nth: usize, fault: Fault) {
        self.inner().faults.insert((call, nth), fault);
    }

    /// Records with these external ids fail validation
    /// (`FIELD_CUSTOM_VALIDATION_EXCEPTION`) until [`accept_all`](Self::accept_all).
    pub fn reject(&self, keys: &[&str]) {
        self.inner()
            .rejected
            .extend(keys.iter().map(|k| k.to_string()));
    }

    pub fn accept_all(&self) {
        self.inner().rejected.clear();
    }

    /// The stored record of `object` with external id `key`: (Id, fields).
    pub fn record(&self, object: &str, key: &str) -> Option<Stored> {
        self.inner().records.get(object)?.get(key).cloned()
    }

    /// External ids of every stored record of `object`, sorted.
    pub fn keys(&self, object: &str) -> Vec<String> {
        self.inner()
            .records
            .get(object)
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A Bulk job's state.
    pub fn job_state(&self, job: &str) -> Option<MemJobState> {
        self.inner().jobs.get(job).map(|j| j.state.clone())
    }

    /// Records created or updated so far (each applied record counts once per write).
    pub fn writes(&self) -> usize {
        self.inner().writes
    }

    /// How many calls of a kind were made.
    pub fn calls(&self, call: Call) -> usize {
        self.inner().calls.get(&call).copied().unwrap_or(0)
    }

    /// Counts the call, logs it, and returns the fault planned for it.
    fn enter(&self, call: Call, detail: &str) -> Option<Fault> {
        self.log.push(format!("dest: {call:?} {detail}"));
        let mut inner = self.inner();
        let n = inner.calls.entry(call).or_default();
        *n += 1;
        let n = *n;
        inner.faults.remove(&(call, n))
    }

    /// Applies one upsert by `ext_field` (the key) to `object`.
    fn apply(inner: &mut Inner, object: &str, ext_field: &str, r: &Map<String, Value>) -> Outcome {
        let key = r.get(ext_field).map(text).unwrap_or_default();
        if let Some(f) = Self::check(inner, &key, r) {
            return Outcome {
                key,
                result: Err(f),
            };
        }
        inner.writes += 1;
        inner.next_id += 1;
        let fresh = format!("001MEM{:09}", inner.next_id);
        let table = inner.records.entry(object.to_string()).or_default();
        let created = !table.contains_key(&key);
        let (id, fields) = table.entry(key.clone()).or_insert((fresh, Map::new()));
        for (f, v) in r {
            fields.insert(f.clone(), v.clone());
        }
        Outcome {
            key,
            result: Ok((id.clone(), created)),
        }
    }

    /// Why Salesforce would reject the record, if it would.
    fn check(inner: &Inner, key: &str, r: &Map<String, Value>) -> Option<RecordFailure> {
        if inner.rejected.iter().any(|k| k == key) {
            return Some(RecordFailure {
                code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
                message: "rejected by the test".into(),
                fields: Vec::new(),
            });
        }
        for (field, v) in r {
            let Value::Object(lookup) = v else { continue };
            let Some((parent_field, parent_key)) = lookup.iter().next() else {
                continue;
            };
            let parent = related_object(field);
            let parent_key = text(parent_key);
            let exists = inner
                .records
                .get(&parent)
                .is_some_and(|t| t.contains_key(&parent_key));
            if !exists {
                return Some(RecordFailure {
                    code: "INVALID_FIELD".into(),
                    message: format!("Foreign key external ID: {parent_key} not found for field {parent_field} in entity {parent}"),
                    fields: Vec::new(),
                });
            }
        }
        None
    }

    fn delete(inner: &mut Inner, id: &str) -> Outcome {
        for table in inner.records.values_mut() {
            let key = table
                .iter()
                .find_map(|(k, (rid, _))| (rid == id).then(|| k.clone()));
            if let Some(k) = key {
                table.remove(&k);
                inner.writes += 1;
                return Outcome {
                    key: id.to_string(),
                    result: Ok((id.to_string(), false)),
                };
            }
        }
        Outcome {
            key: id.to_string(),
            result: Err(RecordFailure {
                code: "ENTITY_IS_DELETED".into(),
                message: "entity is deleted".into(),
                fields: Vec::new(),
            }),
        }
    }

    /// Processes a job's records (once) and returns its results, `unprocessed` of the last
    /// records left out.
    fn process(inner: &mut Inner, job_id: &str, unprocessed: usize) -> (Vec<Outcome>, Vec<String>) {
        let Some(job) = inner.jobs.get(job_id).cloned() else {
            return (Vec::new(), Vec::new());
        };
        if let Some(done) = job.results {
            return done;
        }
        let keep = job.records.len().saturating_sub(unprocessed);
        let key_column = if job.kind == StepKind::Delete {
            "Id"
        } else {
            job.ext_field.as_str()
        };
        let mut outcomes = Vec::new();
        for r in &job.records[..keep] {
            outcomes.push(match job.kind {
                StepKind::Upsert => Self::apply(inner, &job.object, &job.ext_field, r),
                StepKind::Delete => Self::delete(inner, &r.get("Id").map(text).unwrap_or_default()),
            });
        }
        let left: Vec<String> = job.records[keep..]
            .iter()
            .map(|r| r.get(key_column).map(text).unwrap_or_default())
            .collect();
        let results = (outcomes, left);
        if let Some(j) = inner.jobs.get_mut(job_id) {
            j.state = MemJobState::Finished;
            j.results = Some(results.clone());
        }
        results
    }
}

impl Destination for MemoryDestination {
    async fn create_job(
        &self,
        object: &str,
        kind: StepKind,
        external_id_field: &str,
    ) -> Result<String, SinkError> {
        let fault = self.enter(Call::CreateJob, object);
        if fault == Some(Fault::Fail) {
            return Err(remote("create job"));
        }
        let mut inner = self.inner();
        let id = format!("750MEM{:09}", inner.jobs.len() + 1);
        inner.jobs.insert(
            id.clone(),
            Job {
                object: object.to_string(),
                kind,
                ext_field: external_id_field.to_string(),
                state: MemJobState::Open,
                records: Vec::new(),
                results: None,
            },
        );
        drop(inner);
        self.log.push(format!("dest: created {id}"));
        match fault {
            Some(Fault::LoseResponse) => Err(remote("create job (response lost)")),
            _ => Ok(id),
        }
    }

    async fn upload_and_close(
        &self,
        job_id: &str,
        _kind: StepKind,
        _external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<(), SinkError> {
        let fault = self.enter(Call::Upload, job_id);
        if fault == Some(Fault::Fail) {
            return Err(remote("upload"));
        }
        if let Some(job) = self.inner().jobs.get_mut(job_id) {
            if job.state == MemJobState::Open {
                job.records = records.to_vec();
                job.state = MemJobState::Uploaded;
            }
        }
        match fault {
            Some(Fault::LoseResponse) => Err(remote("upload (response lost)")),
            _ => Ok(()),
        }
    }

    async fn job_status(&self, job_id: &str) -> Result<JobStatus, SinkError> {
        if self.enter(Call::JobStatus, job_id) == Some(Fault::Fail) {
            return Err(remote("job status"));
        }
        Ok(match self.job_state(job_id) {
            Some(MemJobState::Open) => JobStatus::Open,
            Some(MemJobState::Uploaded) => JobStatus::Running,
            Some(MemJobState::Finished) => JobStatus::Finished,
            Some(MemJobState::Aborted) | None => JobStatus::Gone,
        })
    }

    async fn abort_job(&self, job_id: &str) -> Result<(), SinkError> {
        if self.enter(Call::AbortJob, job_id) == Some(Fault::Fail) {
            return Err(remote("abort"));
        }
        if let Some(job) = self.inner().jobs.get_mut(job_id) {
            if job.state == MemJobState::Open {
                job.state = MemJobState::Aborted;
            }
        }
        Ok(())
    }

    async fn job_results(
        &self,
        job_id: &str,
        _key_column: &str,
    ) -> Result<(Vec<Outcome>, Vec<String>), SinkError> {
        let fault = self.enter(Call::JobResults, job_id);
        let unprocessed = match fault {
            Some(Fault::Fail) => return Err(remote("job results")),
            Some(Fault::Unprocessed(n)) => n,
            _ => 0,
        };
        let results = Self::process(&mut self.inner(), job_id, unprocessed);
        match fault {
            Some(Fault::LoseResponse) => Err(remote("job results (response lost)")),
            _ => Ok(results),
        }
    }

    async fn upsert_records(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<Outcome>, SinkError> {
        let fault = self.enter(Call::Upsert, &format!("{object} {}", records.len()));
        if fault == Some(Fault::Fail) {
            return Err(remote("collections upsert"));
        }
        let mut inner = self.inner();
        let outcomes = records
            .iter()
            .map(|r| Self::apply(&mut inner, object, external_id_field, r))
            .collect();
        drop(inner);
        match fault {
            Some(Fault::LoseResponse) => Err(remote("collections upsert (response lost)")),
            _ => Ok(outcomes),
        }
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<Vec<Outcome>, SinkError> {
        let fault = self.enter(Call::Delete, &ids.join(","));
        if fault == Some(Fault::Fail) {
            return Err(remote("collections delete"));
        }
        let mut inner = self.inner();
        let outcomes = ids.iter().map(|id| Self::delete(&mut inner, id)).collect();
        drop(inner);
        match fault {
            Some(Fault::LoseResponse) => Err(remote("collections delete (response lost)")),
            _ => Ok(outcomes),
        }
    }

    async fn find_ids(
        &self,
        object: &str,
        _external_id_field: &str,
        keys: &[String],
    ) -> Result<HashMap<String, String>, SinkError> {
        if self.enter(Call::FindIds, object) == Some(Fault::Fail) {
            return Err(remote("find ids"));
        }
        let inner = self.inner();
        let Some(table) = inner.records.get(object) else {
            return Ok(HashMap::new());
        };
        Ok(keys
            .iter()
            .filter_map(|k| Some((k.clone(), table.get(k)?.0.clone())))
            .collect())
    }

    async fn find_matches(
        &self,
        object: &str,
        field: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<String>>, SinkError> {
        let inner = self.inner();
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (id, fields) in inner
            .records
            .get(object)
            .into_iter()
            .flat_map(|t| t.values())
        {
            let Some(v) = fields.get(field).map(text) else {
                continue;
            };
            if let Some(k) = keys.iter().find(|k| k.eq_ignore_ascii_case(&v)) {
                out.entry(k.clone()).or_default().push(id.clone());
            }
        }
        Ok(out)
    }

    async fn read_records(
        &self,
        object: &str,
        ids: &[String],
        fields: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, SinkError> {
        let inner = self.inner();
        let mut out = HashMap::new();
        for (id, stored) in inner
            .records
            .get(object)
            .into_iter()
            .flat_map(|t| t.values())
            .filter(|(id, _)| ids.contains(id))
        {
            let mut r = Map::new();
            r.insert("Id".into(), Value::String(id.clone()));
            for f in fields {
                r.insert(f.clone(), stored.get(f).cloned().unwrap_or(Value::Null));
            }
            out.insert(id.clone(), r);
        }
        Ok(out)
    }
}
