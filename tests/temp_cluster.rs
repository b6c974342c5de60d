//! The throwaway cluster starts with logical decoding on, can be restarted, and is gone after drop.

use pgforce::testing::TempCluster;

#[test]
fn starts_with_wal_level_logical_and_cleans_up() {
    let mut c = TempCluster::start().expect("start cluster");
    assert_eq!(c.psql("postgres", "SHOW wal_level").unwrap(), "logical");
    c.psql("postgres", "CREATE TABLE t(id int primary key)").unwrap();
    c.restart().unwrap();
    assert_eq!(c.psql("postgres", "SELECT count(*) FROM t").unwrap(), "0");
    let dir = c.data_dir();
    assert!(dir.exists());
    drop(c);
    assert!(!dir.exists(), "data dir removed on drop");
}

#[test]
fn two_clusters_run_side_by_side() {
    let a = TempCluster::start().unwrap();
    let b = TempCluster::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert!(a.major_version().unwrap() >= 14);
}

#[test]
fn missing_binaries_error_says_what_to_install() {
    let err = pgforce::testing::pg::TempCluster::start_with(pgforce::testing::pg::ClusterOptions {
        bindir: Some("/nonexistent/bin".into()),
        ..Default::default()
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/bin"), "{msg}");
    assert!(msg.contains("apt-get install postgresql"), "{msg}");
}
