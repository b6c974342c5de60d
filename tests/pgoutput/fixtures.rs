//! The decoder and assembler over pgoutput bytes captured from real PostgreSQL 15 and 17
//! servers (`proto-fixtures/`), checking exact decoded content.
//!
//! Regenerate the captures (needs the server binaries; run once per major):
//! `cargo test --test main pgoutput::fixtures::regenerate -- --ignored` and again with
//! `PGFORCE_PG_BINDIR=<pg17 bindir>`.

use crate::support::pgoutput::checks;
use crate::support::pgoutput::{
    capture, cluster_options, fixture_path, load_fixture, scenarios, FIXTURE_MAJORS,
};

#[tokio::test]
#[ignore = "captures fixtures from a live server; run explicitly to regenerate"]
async fn regenerate() {
    let cluster =
        pgforce::testing::pg::TempCluster::start_with(cluster_options()).expect("cluster");
    let major = cluster.major_version().unwrap();
    let version = cluster
        .psql("postgres", "SHOW server_version")
        .unwrap_or_default();
    for s in scenarios() {
        let msgs = capture(&cluster, &s).await;
        let opts: Vec<String> = s
            .options(major)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let text = format!(
            "# scenario: {} — {}\n# server: PostgreSQL {version}\n# options: {}\n# format: <lsn> <hex bytes of one pgoutput message>\n{}",
            s.name,
            s.about,
            opts.join(" "),
            pgforce::pgoutput::fixture::render(&msgs)
        );
        let path = fixture_path(major, s.name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        eprintln!("wrote {} ({} messages)", path.display(), msgs.len());
    }
}

macro_rules! fixture_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                for &major in FIXTURE_MAJORS {
                    let msgs = load_fixture(major, stringify!($name));
                    checks::$name(major, &msgs);
                }
            }
        )*
    };
}

fixture_tests!(
    basic,
    replica_identity,
    toast,
    truncate,
    messages,
    origin,
    streaming,
    stream_interleaved,
    two_phase,
    types,
    all_types,
    alter_table,
    binary,
);

#[test]
fn every_fixture_message_decodes() {
    use pgforce::pgoutput::{decode, DecodeContext};
    for &major in FIXTURE_MAJORS {
        for s in scenarios() {
            let mut ctx = DecodeContext::default();
            for (lsn, bytes) in load_fixture(major, s.name) {
                let msg = decode(&bytes, &ctx)
                    .unwrap_or_else(|e| panic!("pg{major} {} at {lsn}: {e}", s.name));
                ctx.observe(&msg);
            }
        }
    }
}

/// Print a capture's decoded messages: `PGFORCE_DUMP=pg15/streaming cargo test --test
/// pgoutput_fixtures -- --ignored dump --nocapture`.
#[test]
#[ignore = "debugging aid"]
fn dump() {
    use pgforce::pgoutput::{decode, DecodeContext, LogicalMessage};
    let which = std::env::var("PGFORCE_DUMP").unwrap_or_else(|_| "pg15/basic".into());
    let (major, name) = which.split_once('/').unwrap();
    let major: u32 = major.trim_start_matches("pg").parse().unwrap();
    let mut ctx = DecodeContext::default();
    let mut last = String::new();
    let mut repeat = 0;
    for (lsn, bytes) in load_fixture(major, name) {
        let msg = decode(&bytes, &ctx).unwrap();
        ctx.observe(&msg);
        let line = match &msg {
            LogicalMessage::Insert { xid, .. } if std::env::var("PGFORCE_DUMP_ALL").is_err() => {
                format!("Insert xid={xid:?}")
            }
            m => format!("{m:?}"),
        };
        if line == last {
            repeat += 1;
            continue;
        }
        if repeat > 0 {
            println!("   ... x{repeat}");
            repeat = 0;
        }
        println!("{lsn} {line}");
        last = line;
    }
    if repeat > 0 {
        println!("   ... x{repeat}");
    }
}
