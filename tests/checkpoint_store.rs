//! The state store against a real throwaway Postgres: migrations, checkpoints that never
//! move backwards, epoch plans that survive a reconnect, the id map, dead letters, parking.

use crate::support::wait::{check, wait_until, Deadline};
use pgforce::batch::StepKind;
use pgforce::checkpoint::{DeadLetter, ParkedChange, StateStore, StepPath, StepPlan, StepState};
use pgforce::lsn::Lsn;
use pgforce::testing::TempCluster;

async fn store(c: &TempCluster, pipeline: &str) -> StateStore {
    StateStore::connect(&c.conn_string("postgres"), "pgforce", pipeline)
        .await
        .expect("connect state store")
}

#[tokio::test]
async fn checkpoint_and_epoch_lifecycle() {
    let c = TempCluster::start().unwrap();
    let s = store(&c, "p1").await;
    assert_eq!(s.checkpoint().await.unwrap(), None);
    s.store_checkpoint(Lsn(100)).await.unwrap();
    s.store_checkpoint(Lsn(50)).await.unwrap();
    assert_eq!(
        s.checkpoint().await.unwrap(),
        Some(Lsn(100)),
        "never backwards"
    );

    let steps = vec![
        StepPlan {
            step: 0,
            object: "Account".into(),
            key_field: "External_Id__c".into(),
            operation: StepKind::Upsert,
            path: StepPath::Bulk,
            rows: 3,
            keys_digest: "d1".into(),
        },
        StepPlan {
            step: 1,
            object: "Contact".into(),
            key_field: "External_Id__c".into(),
            operation: StepKind::Upsert,
            path: StepPath::Collections,
            rows: 2,
            keys_digest: "d2".into(),
        },
    ];
    s.plan_epoch(Lsn(200), &steps).await.unwrap();
    s.set_step(
        Lsn(200),
        0,
        StepState::JobCreated,
        Some("750000000000001AAA"),
    )
    .await
    .unwrap();
    drop(s);

    // A new session (a restart) finds the plan with the job id.
    let s = store(&c, "p1").await;
    let plan = s.open_epoch().await.unwrap().expect("open epoch");
    assert_eq!(plan.end_lsn, Lsn(200));
    assert_eq!(plan.steps.len(), 2);
    assert_eq!(plan.steps[0].job_id.as_deref(), Some("750000000000001AAA"));
    assert_eq!(plan.steps[0].state, StepState::JobCreated);
    assert_eq!(plan.steps[1].state, StepState::Planned);
    assert_eq!(
        plan.steps[0].plan, steps[0],
        "the plan comes back as recorded"
    );
    assert_eq!(plan.steps[1].plan, steps[1]);

    s.finish_epoch(Lsn(200)).await.unwrap();
    assert_eq!(s.open_epoch().await.unwrap(), None);
    assert_eq!(s.checkpoint().await.unwrap(), Some(Lsn(200)));
    // Other pipelines are independent.
    let other = store(&c, "p2").await;
    assert_eq!(other.checkpoint().await.unwrap(), None);
}

#[tokio::test]
async fn id_map_dead_letters_and_parking() {
    let c = TempCluster::start().unwrap();
    let s = store(&c, "p").await;
    s.store_ids("Account", &[("a1".into(), "001000000000001AAA".into())])
        .await
        .unwrap();
    let got = s
        .lookup_ids("Account", &["a1".into(), "a2".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    s.forget_ids("Account", &["a1".into()]).await.unwrap();
    assert!(s
        .lookup_ids("Account", &["a1".into()])
        .await
        .unwrap()
        .is_empty());

    let dl = DeadLetter {
        mapping: "accounts".into(),
        object: "Account".into(),
        external_id: "7".into(),
        operation: "upsert".into(),
        lsn: Lsn(10),
        error_code: "STRING_TOO_LONG".into(),
        message: "Name: data value too large".into(),
        fields: vec!["Name".into()],
        row: serde_json::json!({"Name": "x"}),
    };
    s.record_dead_letters(std::slice::from_ref(&dl))
        .await
        .unwrap();
    s.record_dead_letters(&[dl]).await.unwrap();
    let open = s.list_dead_letters(Some("open"), 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].attempts, 2);
    assert_eq!(open[0].error_code, "STRING_TOO_LONG");
    assert_eq!(
        s.resolve_dead_letters("accounts", &["7".into()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.open_dead_letters().await.unwrap(), 0);

    let p = ParkedChange {
        mapping: "contacts".into(),
        object: "Contact".into(),
        external_id: "c1".into(),
        parents: vec![("Account".into(), "a9".into())],
        lsn: Lsn(20),
        row: serde_json::json!({"LastName": "Smith"}),
    };
    s.park(std::slice::from_ref(&p)).await.unwrap();
    assert_eq!(s.parked_count().await.unwrap(), 1);
    assert!(s
        .parked_for("Account", &["other".into()])
        .await
        .unwrap()
        .is_empty());
    let back = s.parked_for("Account", &["a9".into()]).await.unwrap();
    assert_eq!(back, vec![p]);
    assert_eq!(
        s.parked_count().await.unwrap(),
        1,
        "still parked until it goes through"
    );
    s.unpark_keys("contacts", &["c1".into()]).await.unwrap();
    assert_eq!(s.parked_count().await.unwrap(), 0);
}

#[tokio::test]
async fn advisory_lock_admits_one_owner() {
    let c = TempCluster::start().unwrap();
    let a = store(&c, "p").await;
    let b = store(&c, "p").await;
    assert!(a.try_lock_pipeline().await.unwrap());
    assert!(!b.try_lock_pipeline().await.unwrap());
    drop(a);
    // The lock goes with the session; the standby gets it once the server notices.
    wait_until(
        "the standby takes the lock after the owner's session ends",
        Deadline::secs(30),
        || async {
            let got = b.try_lock_pipeline().await.unwrap();
            check(got, || "still locked".into())
        },
    )
    .await;
}

#[tokio::test]
async fn unreachable_database_is_a_clear_error() {
    let err = StateStore::connect(
        "host=127.0.0.1 port=1 user=x dbname=y connect_timeout=2",
        "pgforce",
        "p",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
