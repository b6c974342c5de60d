//! Every preflight problem, provoked on a real server, comes back typed with a message
//! that says what to do; server errors keep their SQLSTATE, detail and hint.

use crate::support::replication::*;
use pgforce::replication::publication::check_publication;
use pgforce::replication::{
    ensure_publication, ensure_slot, preflight, read_slot, slot_health, PreflightError,
    PreflightSpec, PublicationPolicy, ReplicationConnection, ReplicationError, SnapshotAction,
    StreamOptions, TableRef,
};
use pgforce::testing::TempCluster;

fn spec(tables: &[&str]) -> PreflightSpec {
    PreflightSpec {
        slot: "s".into(),
        publication: "pub".into(),
        tables: tables.iter().map(|t| TableRef::parse(t)).collect(),
        manage_publication: true,
    }
}

/// The preflight problems, or an empty list when all is well.
async fn problems(client: &tokio_postgres::Client, spec: &PreflightSpec) -> Vec<PreflightError> {
    match preflight(client, spec).await {
        Ok(()) => Vec::new(),
        Err(ReplicationError::PreflightMany(p)) => p.0,
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

async fn repl_as(c: &TempCluster, user: &str) -> Result<ReplicationConnection, ReplicationError> {
    ReplicationConnection::connect(&format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres",
        c.port()
    ))
    .await
}

fn stream_opts() -> StreamOptions {
    StreamOptions::new("s", vec!["pub".into()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_clear_on_a_well_configured_server() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    assert_eq!(problems(&sql, &spec(&["t"])).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_level_replica_says_set_logical_and_restart() {
    let c = cluster_with(&["wal_level = replica"]);
    let sql = client(&c).await;
    sql.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let found = problems(&sql, &spec(&["t"])).await;
    assert!(
        matches!(&found[..], [PreflightError::WalLevelNotLogical { actual }] if actual == "replica"),
        "{found:?}"
    );
    let msg = found[0].to_string();
    assert!(
        msg.contains("wal_level = logical") && msg.contains("restart"),
        "{msg}"
    );

    // Creating the slot anyway fails with the same advice.
    let err = repl(&c)
        .await
        .create_logical_slot("s", SnapshotAction::Export)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_preflight(),
            Some(PreflightError::WalLevelNotLogical { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_without_replication_says_alter_role() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute("CREATE ROLE plain LOGIN; CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t OWNER TO plain;")
        .await
        .unwrap();
    let err = repl_as(&c, "plain").await.unwrap_err();
    match err.as_preflight() {
        Some(e @ PreflightError::MissingReplicationPrivilege { role }) => {
            assert_eq!(role, "plain");
            assert!(
                e.to_string().contains("ALTER ROLE plain REPLICATION"),
                "{e}"
            );
        }
        _ => panic!("unexpected {err:?}"),
    }
    let as_plain = client_as(&c, "plain").await;
    let found = problems(&as_plain, &spec(&["t"])).await;
    assert!(
        found
            .iter()
            .any(|e| matches!(e, PreflightError::MissingReplicationPrivilege { .. })),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_owned_by_someone_else_or_not_creatable() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute(
        "CREATE ROLE app LOGIN REPLICATION;
         CREATE TABLE t1 (id int PRIMARY KEY);
         CREATE TABLE t2 (id int PRIMARY KEY);
         ALTER TABLE t2 OWNER TO app;
         GRANT SELECT ON t1 TO app;
         CREATE PUBLICATION pub FOR TABLE t1;",
    )
    .await
    .unwrap();
    let app = client_as(&c, "app").await;
    let tables = [TableRef::parse("t1"), TableRef::parse("t2")];

    // Not the owner: cannot add t2.
    let err = ensure_publication(&app, "pub", &tables, PublicationPolicy::default())
        .await
        .unwrap_err();
    match err.as_preflight() {
        Some(
            e @ PreflightError::PublicationNotOwned {
                owner,
                role,
                missing,
                ..
            },
        ) => {
            assert_eq!((owner.as_str(), role.as_str()), ("postgres", "app"));
            assert_eq!(missing, &vec!["public.t2".to_string()]);
            assert!(
                e.to_string()
                    .contains("ALTER PUBLICATION pub ADD TABLE public.t2"),
                "{e}"
            );
        }
        _ => panic!("unexpected {err:?}"),
    }
    let found = problems(&app, &spec(&["t1", "t2"])).await;
    assert!(
        found
            .iter()
            .any(|e| matches!(e, PreflightError::PublicationNotOwned { .. })),
        "{found:?}"
    );

    // No CREATE on the database: cannot create a publication at all.
    let err = ensure_publication(&app, "pub2", &tables[1..], PublicationPolicy::default())
        .await
        .unwrap_err();
    match err.as_preflight() {
        Some(e @ PreflightError::CannotCreatePublication { publication, .. }) => {
            assert_eq!(publication, "pub2");
            assert!(
                e.to_string()
                    .contains("CREATE PUBLICATION pub2 FOR TABLE public.t2"),
                "{e}"
            );
        }
        _ => panic!("unexpected {err:?}"),
    }
    let mut s = spec(&["t2"]);
    s.publication = "pub2".into();
    let found = problems(&app, &s).await;
    assert!(
        matches!(&found[..], [PreflightError::CannotCreatePublication { reason, .. }] if reason.contains("CREATE on the database")),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_missing_a_mapped_table() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute(
        "CREATE TABLE t1 (id int PRIMARY KEY); CREATE TABLE t2 (id int PRIMARY KEY);
         CREATE PUBLICATION pub FOR TABLE t1;",
    )
    .await
    .unwrap();
    let tables = [TableRef::parse("t1"), TableRef::parse("t2")];
    let err = check_publication(&sql, "pub", &tables).await.unwrap_err();
    match err.as_preflight() {
        Some(e @ PreflightError::PublicationMissingTables { tables, .. }) => {
            assert_eq!(tables, &vec!["public.t2".to_string()]);
            assert!(
                e.to_string()
                    .contains("ALTER PUBLICATION pub ADD TABLE public.t2"),
                "{e}"
            );
        }
        _ => panic!("unexpected {err:?}"),
    }
    let mut s = spec(&["t1", "t2"]);
    s.manage_publication = false;
    let found = problems(&sql, &s).await;
    assert!(
        matches!(
            &found[..],
            [PreflightError::PublicationMissingTables { .. }]
        ),
        "{found:?}"
    );

    let no_changes = PublicationPolicy {
        create_if_missing: false,
        add_missing_tables: false,
    };
    assert!(ensure_publication(&sql, "pub", &tables, no_changes)
        .await
        .is_err());
    let missing = ensure_publication(&sql, "nope", &tables, no_changes)
        .await
        .unwrap_err();
    assert!(matches!(
        missing.as_preflight(),
        Some(PreflightError::PublicationMissing { .. })
    ));
    // Allowed to fix it: the table is added and the check passes.
    let outcome = ensure_publication(&sql, "pub", &tables, PublicationPolicy::default())
        .await
        .unwrap();
    assert_eq!(outcome.added, vec![TableRef::parse("t2")]);
    check_publication(&sql, "pub", &tables).await.unwrap();
    // A mapped table that does not exist.
    let err = check_publication(&sql, "pub", &[TableRef::parse("ghost")]).await;
    assert!(err.is_err());
    let found = problems(&sql, &spec(&["ghost"])).await;
    assert!(
        matches!(&found[..], [PreflightError::TableNotFound { .. }]),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_without_primary_key_says_replica_identity_full() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute("CREATE TABLE nokey (a int, b text); CREATE TABLE nothing (id int PRIMARY KEY); ALTER TABLE nothing REPLICA IDENTITY NOTHING;")
        .await
        .unwrap();
    let found = problems(&sql, &spec(&["nokey", "nothing"])).await;
    assert_eq!(found.len(), 2, "{found:?}");
    let msg = found[0].to_string();
    assert!(
        msg.contains("ALTER TABLE public.nokey REPLICA IDENTITY FULL")
            && msg.contains("primary key"),
        "{msg}"
    );
    assert!(
        matches!(&found[1], PreflightError::NoReplicaIdentity { identity, .. } if identity == "NOTHING")
    );

    sql.batch_execute(
        "ALTER TABLE nokey REPLICA IDENTITY FULL; ALTER TABLE nothing REPLICA IDENTITY DEFAULT;",
    )
    .await
    .unwrap();
    assert_eq!(problems(&sql, &spec(&["nokey", "nothing"])).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_in_use_names_the_other_process() {
    let c = cluster();
    let sql = client(&c).await;
    sql.batch_execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t;")
        .await
        .unwrap();
    let mut first = repl(&c).await;
    first
        .create_logical_slot("s", SnapshotAction::NoExport)
        .await
        .unwrap();
    let pid = first.backend_pid();
    let stream = first.start_replication(stream_opts()).await.unwrap();

    let err = repl(&c)
        .await
        .start_replication(stream_opts())
        .await
        .unwrap_err();
    match err.as_preflight() {
        Some(e @ PreflightError::SlotActive { slot, pid: other }) => {
            assert_eq!((slot.as_str(), *other), ("s", pid));
            assert!(
                e.to_string()
                    .contains(&format!("pg_terminate_backend({pid})")),
                "{e}"
            );
        }
        _ => panic!("unexpected {err:?}"),
    }
    let found = problems(&sql, &spec(&["t"])).await;
    assert!(
        matches!(&found[..], [PreflightError::SlotActive { pid: p, .. }] if *p == pid),
        "{found:?}"
    );
    let err = ensure_slot(&mut repl(&c).await, &sql, "s")
        .await
        .unwrap_err();
    assert!(
        matches!(err.as_preflight(), Some(PreflightError::SlotActive { .. })),
        "{err:?}"
    );
    stream.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidated_slot_says_drop_recreate_and_resync() {
    let c = cluster_with(&["max_slot_wal_keep_size = 1MB"]);
    let sql = client(&c).await;
    sql.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, pad text); CREATE PUBLICATION pub FOR TABLE t;",
    )
    .await
    .unwrap();
    repl(&c)
        .await
        .create_logical_slot("s", SnapshotAction::NoExport)
        .await
        .unwrap();
    for round in 0..40 {
        let lost = read_slot(&sql, "s")
            .await
            .unwrap()
            .unwrap()
            .wal_status
            .as_deref()
            == Some("lost");
        if lost {
            break;
        }
        assert!(round < 39, "slot never became lost");
        sql.batch_execute(&format!(
            "INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series({0} * 2000 + 1, {0} * 2000 + 2000) g;
             SELECT pg_switch_wal(); CHECKPOINT;",
            round
        ))
        .await
        .unwrap();
    }
    let health = slot_health(&sql, "s").await.unwrap();
    assert!(health.is_lost(), "{health:?}");

    let found = problems(&sql, &spec(&["t"])).await;
    let [e @ PreflightError::SlotInvalidated { slot, .. }] = &found[..] else {
        panic!("unexpected {found:?}");
    };
    assert_eq!(slot, "s");
    let msg = e.to_string();
    assert!(
        msg.contains("pg_drop_replication_slot('s')") && msg.contains("resync"),
        "{msg}"
    );
    let err = ensure_slot(&mut repl(&c).await, &sql, "s")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_preflight(),
            Some(PreflightError::SlotInvalidated { .. })
        ),
        "{err:?}"
    );
    // Streaming from it anyway: the server's refusal is recognised too.
    let err = repl(&c)
        .await
        .start_replication(stream_opts())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_preflight(),
            Some(PreflightError::SlotInvalidated { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_free_replication_slot() {
    let c = cluster_with(&["max_replication_slots = 1"]);
    let sql = client(&c).await;
    sql.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    repl(&c)
        .await
        .create_logical_slot("other", SnapshotAction::NoExport)
        .await
        .unwrap();
    let found = problems(&sql, &spec(&["t"])).await;
    assert_eq!(found, vec![PreflightError::SlotsExhausted { max: 1 }]);
    assert!(found[0].to_string().contains("max_replication_slots"));
    let err = repl(&c)
        .await
        .create_logical_slot("s", SnapshotAction::Export)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_preflight(),
            Some(PreflightError::SlotsExhausted { max: 1 })
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_keep_sqlstate_detail_and_hint() {
    let c = cluster();
    let mut r = repl(&c).await;
    let err = r
        .simple_query("DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = 'P0001'; END $$")
        .await
        .unwrap_err();
    let ReplicationError::Server(e) = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(
        (e.severity.as_str(), e.code.as_str(), e.message.as_str()),
        ("ERROR", "P0001", "boom")
    );
    assert_eq!(
        (e.detail.as_deref(), e.hint.as_deref()),
        (Some("the detail"), Some("the hint"))
    );
    assert_eq!(err.sqlstate(), Some("P0001"));
    assert!(!err.is_transient());
    // The connection is still usable after an error.
    assert!(r.identify_system().await.is_ok());
    // A missing slot.
    let err = r.start_replication(stream_opts()).await.unwrap_err();
    assert!(
        matches!(err.as_preflight(), Some(PreflightError::SlotMissing { .. })),
        "{err:?}"
    );
    // Bad input is refused before reaching the server.
    let err = repl(&c)
        .await
        .start_replication(StreamOptions::new("Bad Name", vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, ReplicationError::Config(_)), "{err:?}");
}
