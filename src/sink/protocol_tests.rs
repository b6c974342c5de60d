//! Unit tests of the epoch protocol against the in-memory state and destination
//! (`testing::MemoryState`, `testing::MemoryDestination` with injected faults): the job id
//! is recorded before its upload; the checkpoint moves only when an epoch finishes; a
//! replanned epoch aborts jobs that never got data; a resumed `done` step still reports
//! what it landed; a lost lock stops every write; lost responses and unprocessed records
//! end with each change applied once.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{FlushChange, Flusher, FlusherOptions, SinkError};
use crate::batch::{Coalesce, Epoch};
use crate::checkpoint::StepState;
use crate::lsn::Lsn;
use crate::testing::{Call, EventLog, Fault, MemJobState, MemoryDestination, MemoryState};

/// A change as the flusher sees it: an object, a key (`Ext__c`), fields, an optional
/// parent Account.
#[derive(Debug, Clone)]
struct Change {
    object: &'static str,
    key: String,
    delete: bool,
    parent: Option<String>,
    fields: Map<String, Value>,
    lsn: Lsn,
}

fn upsert(object: &'static str, key: &str, name: &str) -> Change {
    let mut fields = Map::new();
    fields.insert("Name".into(), json!(name));
    Change {
        object,
        key: key.into(),
        delete: false,
        parent: None,
        fields,
        lsn: Lsn(1),
    }
}

fn child(key: &str, parent: &str) -> Change {
    Change {
        parent: Some(parent.into()),
        ..upsert("Contact", key, "child")
    }
}

impl Coalesce for Change {
    fn object(&self) -> &str {
        self.object
    }
    fn key_field(&self) -> &str {
        "Ext__c"
    }
    fn key(&self) -> &str {
        &self.key
    }
    fn is_delete(&self) -> bool {
        self.delete
    }
    fn absorb_older(&mut self, _older: Self) {}
    fn approx_bytes(&self) -> usize {
        64
    }
}

impl FlushChange for Change {
    fn mapping(&self) -> &str {
        self.object
    }
    fn external_id_field(&self) -> &str {
        "Ext__c"
    }
    fn lsn(&self) -> Lsn {
        self.lsn
    }
    fn parents(&self) -> Vec<(String, String)> {
        self.parent
            .iter()
            .map(|p| ("Account".to_string(), p.clone()))
            .collect()
    }
    fn record(&self) -> Map<String, Value> {
        let mut r = self.fields.clone();
        r.insert("Ext__c".into(), json!(self.key));
        if let Some(p) = &self.parent {
            r.insert("Account".into(), json!({ "Ext__c": p }));
        }
        r
    }
}

struct Rig {
    log: EventLog,
    flusher: Flusher<MemoryDestination, MemoryState>,
}

impl Rig {
    /// Steps of at least `bulk_from` rows go through Bulk.
    fn new(bulk_from: usize) -> Rig {
        let log = EventLog::default();
        let dest = MemoryDestination::new(log.clone());
        let state = Arc::new(MemoryState::new("p", log.clone()));
        let opts = FlusherOptions {
            pipeline: "p".into(),
            collections_threshold: bulk_from,
            max_rows: 10_000,
            max_step_bytes: super::MAX_STEP_BYTES,
            object_order: vec!["Account".into(), "Contact".into()],
            transient_retries: 2,
            max_bulk_jobs: 4,
            paired_objects: Vec::new(),
        };
        Rig {
            log,
            flusher: Flusher::new(dest, state, opts),
        }
    }

    fn dest(&self) -> &MemoryDestination {
        self.flusher.destination()
    }

    fn state(&self) -> &MemoryState {
        self.flusher.state()
    }

    /// Flush `changes` as one epoch ending at `end`, resuming what the state left in
    /// flight.
    async fn flush(&self, end: u64, changes: &[Change]) -> Result<super::FlushReport, SinkError> {
        let mut epoch = Epoch::new();
        for c in changes {
            epoch.push(Change {
                lsn: Lsn(end),
                ..c.clone()
            });
        }
        epoch.commit(Lsn(end), chrono::Utc::now());
        let resume = self.state().open_epoch();
        self.flusher.flush(&mut epoch, resume).await
    }
}

fn accounts(n: usize) -> Vec<Change> {
    (1..=n)
        .map(|i| upsert("Account", &i.to_string(), &format!("a{i}")))
        .collect()
}

#[tokio::test]
async fn the_job_id_is_recorded_before_its_data_is_uploaded() {
    let rig = Rig::new(1);
    rig.flush(10, &accounts(3)).await.unwrap();
    let recorded = rig
        .log
        .position("state: step 0 JobCreated job=750")
        .unwrap();
    let uploaded = rig.log.position("dest: Upload 750").unwrap();
    let planned = rig.log.position("state: plan").unwrap();
    let created = rig.log.position("dest: CreateJob").unwrap();
    assert!(
        planned < created && recorded < uploaded,
        "{:#?}",
        rig.log.events()
    );
    assert_eq!(rig.state().checkpoint(), Some(Lsn(10)));
    assert_eq!(rig.dest().keys("Account"), ["1", "2", "3"]);
}

#[tokio::test]
async fn the_checkpoint_moves_only_when_the_epoch_finishes() {
    let rig = Rig::new(1);
    rig.dest().fault(Call::Upload, 1, Fault::Fail);
    let err = rig.flush(10, &accounts(3)).await.unwrap_err();
    assert!(matches!(err, SinkError::Remote(_)), "{err}");
    assert_eq!(rig.state().checkpoint(), None, "nothing finished");
    let open = rig.state().open_epoch().expect("the epoch stays in flight");
    assert_eq!(open.steps[0].state, StepState::JobCreated);
    let job = open.steps[0].job_id.clone().expect("its job was recorded");

    let report = rig.flush(10, &accounts(3)).await.unwrap();
    assert_eq!(report.applied, 3);
    assert_eq!(rig.state().checkpoint(), Some(Lsn(10)));
    assert!(rig.state().open_epoch().is_none());
    assert_eq!(
        rig.dest().job_state(&job),
        Some(MemJobState::Aborted),
        "the job that never got its data is aborted, not left open"
    );
}

#[tokio::test]
async fn a_replanned_epoch_aborts_the_recorded_jobs_that_never_got_data() {
    let rig = Rig::new(1);
    rig.dest().fault(Call::Upload, 1, Fault::Fail);
    rig.flush(10, &accounts(3)).await.unwrap_err();
    let job = rig.state().open_epoch().unwrap().steps[0]
        .job_id
        .clone()
        .unwrap();
    // Re-read differently (a backfill chunk in a fresh snapshot): another plan.
    let report = rig.flush(10, &accounts(2)).await.unwrap();
    assert_eq!(report.applied, 2);
    assert_eq!(rig.dest().job_state(&job), Some(MemJobState::Aborted));
    assert_eq!(rig.dest().keys("Account"), ["1", "2"]);
    assert_eq!(rig.state().checkpoint(), Some(Lsn(10)));
}

#[tokio::test]
async fn a_resumed_done_step_still_reports_what_it_landed() {
    let rig = Rig::new(1_000);
    // A child whose parent is not in Salesforce yet is parked.
    let report = rig.flush(5, &[child("c1", "a1")]).await.unwrap();
    assert_eq!(report.parked, 1);
    // The parent lands (step 0), the next step fails: the epoch stays in flight.
    rig.dest().fault(Call::Upsert, 3, Fault::Fail); // 1: c1 (parked), 2: a1, 3: c2
    let epoch = [upsert("Account", "a1", "parent"), child("c2", "a1")];
    rig.flush(10, &epoch).await.unwrap_err();
    let open = rig.state().open_epoch().unwrap();
    assert_eq!(open.steps[0].state, StepState::Done);
    assert!(rig.dest().record("Contact", "c1").is_none());
    // Resumed, the done step reports a1 as landed: c1 is retried.
    let report = rig.flush(10, &epoch).await.unwrap();
    assert_eq!(report.unparked, 1);
    assert!(rig.dest().record("Contact", "c1").is_some());
    assert!(rig.dest().record("Contact", "c2").is_some());
    assert!(rig.state().parked().is_empty());
    assert_eq!(rig.state().checkpoint(), Some(Lsn(10)));
}

#[tokio::test]
async fn a_lost_lock_stops_every_write_and_the_checkpoint() {
    let rig = Rig::new(1_000);
    rig.state().set_lock_lost(true);
    let err = rig.flush(10, &accounts(2)).await.unwrap_err();
    assert!(matches!(err, SinkError::Fenced { .. }), "{err}");
    assert_eq!(rig.dest().calls(Call::Upsert), 0, "nothing was sent");
    assert_eq!(rig.state().checkpoint(), None);
}

#[tokio::test]
async fn a_lost_collections_response_is_sent_again_and_lands_once() {
    let rig = Rig::new(1_000);
    rig.dest().fault(Call::Upsert, 1, Fault::LoseResponse);
    rig.flush(10, &accounts(2)).await.unwrap_err();
    assert_eq!(rig.state().checkpoint(), None);
    // The keys were noted before the write, so they are known to maybe exist.
    assert_eq!(rig.state().id_of("Account", "1"), Some(None));
    rig.flush(10, &accounts(2)).await.unwrap();
    assert_eq!(
        rig.dest().keys("Account"),
        ["1", "2"],
        "upserts: no duplicate"
    );
    assert!(rig.state().id_of("Account", "1").unwrap().is_some());
    assert_eq!(rig.state().checkpoint(), Some(Lsn(10)));
}

#[tokio::test]
async fn records_a_bulk_job_left_unprocessed_are_retried_until_they_land() {
    let rig = Rig::new(1);
    rig.dest().fault(Call::JobResults, 1, Fault::Unprocessed(2));
    let report = rig.flush(10, &accounts(5)).await.unwrap();
    assert_eq!(report.applied, 5);
    assert_eq!(report.dead_lettered, 0);
    assert_eq!(rig.dest().keys("Account").len(), 5);
}

#[tokio::test]
async fn a_rejected_record_is_dead_lettered_with_its_code_and_the_rest_flows() {
    let rig = Rig::new(1);
    rig.dest().reject(&["2"]);
    let report = rig.flush(10, &accounts(3)).await.unwrap();
    assert_eq!((report.applied, report.dead_lettered), (2, 1));
    let dead = rig.state().open_dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].external_id, "2");
    assert_eq!(dead[0].error_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(dead[0].row["Name"], "a2");
    assert_eq!(rig.state().checkpoint(), Some(Lsn(10)), "the rest moves on");
    // A later good change of the key resolves it.
    rig.dest().accept_all();
    rig.flush(20, &accounts(3)[1..2]).await.unwrap();
    assert!(rig.state().open_dead_letters().is_empty());
}
