//! Decoder + assembler throughput against `pg_recvlogical` on the same slot contents.
//!
//! `cargo bench --bench decode` generates a workload on a throwaway cluster (100k inserts
//! and 100k updates over a table of mixed types by default; `PGFORCE_BENCH_CHANGES`
//! overrides), reads the slot's pgoutput bytes into memory with
//! `pg_logical_slot_peek_binary_changes`, then times:
//! - our decode + assemble (typed values, commit-ordered events) over those bytes;
//! - our decode alone (messages, no value parsing);
//! - `pg_recvlogical --start ... --endpos <lsn> -f /dev/null` streaming the same slot
//!   (this includes the server's WAL decoding, the walsender and the socket — ours is
//!   decode only, in memory; the output says so);
//! - and, as a fairer reference for the server side, the SQL peek itself.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a small smoke-sized
//! workload so CI checks it works without paying for the full run. No timing assertions.

#[path = "../tests/support/pgoutput/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use pgforce::lsn::Lsn;
use pgforce::pgoutput::{decode, Assembler, DecodeContext};
use pgforce::testing::pg::{ClusterOptions, TempCluster};
use support::{connect, peek};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let changes: usize = std::env::var("PGFORCE_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 200_000 } else { 2_000 });
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(run(changes, full));
}

async fn run(changes: usize, full: bool) {
    let cluster = TempCluster::start_with(ClusterOptions {
        extra_conf: vec!["max_wal_size = 4GB".into()],
        ..Default::default()
    })
    .expect("cluster");
    let major = cluster.major_version().unwrap();
    let client = connect(&cluster, "postgres").await;
    client
        .batch_execute(
            "CREATE TABLE bench (id int PRIMARY KEY, name text, amount numeric(12,2), flag bool,
               created timestamptz, tags text[], payload jsonb, score float8, day date);
             CREATE PUBLICATION p FOR ALL TABLES;",
        )
        .await
        .unwrap();
    client
        .batch_execute("SELECT pg_create_logical_replication_slot('bench', 'pgoutput')")
        .await
        .unwrap();

    let inserts = changes / 2;
    let updates = changes - inserts;
    let started = Instant::now();
    let batch = 10_000;
    for lo in (1..=inserts).step_by(batch) {
        let hi = (lo + batch - 1).min(inserts);
        client
            .batch_execute(&format!(
                "INSERT INTO bench SELECT g, 'customer ' || g, g * 1.25, g % 2 = 0,
                   '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second',
                   ARRAY['a' || g % 7, 'b'], jsonb_build_object('n', g, 'tier', g % 3),
                   g / 3.0, DATE '2024-01-01' + g % 365
                 FROM generate_series({lo}, {hi}) g"
            ))
            .await
            .unwrap();
    }
    for lo in (1..=updates).step_by(batch) {
        let hi = (lo + batch - 1).min(updates);
        let id_hi = hi.min(inserts.max(1));
        client
            .batch_execute(&format!(
                "UPDATE bench SET amount = amount + 1, flag = NOT flag WHERE id BETWEEN {lo} AND {id_hi}"
            ))
            .await
            .unwrap();
    }
    let end_lsn: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let workload_time = started.elapsed();

    // Read the slot's contents into memory (server decode + SQL transfer, timed too).
    let opts = vec![
        ("proto_version", "1".to_string()),
        ("publication_names", "p".to_string()),
    ];
    let t = Instant::now();
    let msgs = peek(&client, "bench", &opts, Some(&end_lsn)).await;
    let peek_time = t.elapsed();
    let bytes: usize = msgs.iter().map(|(_, b)| b.len()).sum();

    let rounds = if full { 3 } else { 1 };
    let (ours, n_changes) = best_of(rounds, || decode_and_assemble(&msgs));
    let (decode_only, _) = best_of(rounds, || decode_messages(&msgs));

    let recv = pg_recvlogical(&cluster, &end_lsn);

    let mb = bytes as f64 / 1e6;
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!("pgoutput decode bench (PostgreSQL {major}, proto_version 1)");
    println!(
        "  workload: {inserts} inserts + {updates} updates in {:.1}s; slot holds {} messages, {mb:.1} MB, {n_changes} row changes",
        workload_time.as_secs_f64(),
        msgs.len()
    );
    println!(
        "  ours, decode + assemble (typed values, in memory): {:>8.1} MB/s  {:>10.0} changes/s  ({:.3}s)",
        rate(ours),
        n_changes as f64 / ours.as_secs_f64(),
        ours.as_secs_f64()
    );
    println!(
        "  ours, decode only (no value parsing):               {:>8.1} MB/s  ({:.3}s)",
        rate(decode_only),
        decode_only.as_secs_f64()
    );
    println!(
        "  server, pg_logical_slot_peek_binary_changes (SQL):  {:>8.1} MB/s  ({:.3}s)",
        rate(peek_time),
        peek_time.as_secs_f64()
    );
    match recv {
        Ok(d) => {
            println!(
                "  pg_recvlogical --start ... -f /dev/null:            {:>8.1} MB/s  ({:.3}s)",
                rate(d),
                d.as_secs_f64()
            );
            println!(
                "  ratio ours ÷ pg_recvlogical: {:.2}x   (pg_recvlogical includes server WAL decoding, walsender and network; ours is decode only, from memory)",
                d.as_secs_f64() / ours.as_secs_f64()
            );
        }
        Err(e) => println!("  pg_recvlogical: not measured ({e})"),
    }
    println!(
        "  ratio ours ÷ server SQL peek: {:.2}x   (fairer: both sides decode the same changes, the server from WAL)",
        peek_time.as_secs_f64() / ours.as_secs_f64()
    );
    println!("  peak RSS (VmHWM): {}", peak_rss());
}

fn best_of(rounds: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        n = std::hint::black_box(f());
        best = best.min(t.elapsed());
    }
    (best, n)
}

fn decode_and_assemble(msgs: &[(Lsn, Vec<u8>)]) -> usize {
    let mut asm = Assembler::default();
    let mut changes = 0;
    for (lsn, b) in msgs {
        asm.push(*lsn, b).expect("push");
        while let Some(e) = asm.next_event().expect("event") {
            if matches!(e, pgforce::change::TxEvent::Change(_)) {
                changes += 1;
            }
            std::hint::black_box(e);
        }
    }
    changes
}

fn decode_messages(msgs: &[(Lsn, Vec<u8>)]) -> usize {
    let mut ctx = DecodeContext::default();
    let mut n = 0;
    for (_, b) in msgs {
        let m = decode(b, &ctx).expect("decode");
        ctx.observe(&m);
        n += 1;
        std::hint::black_box(m);
    }
    n
}

/// `pg_recvlogical` from the cluster's bindir, else any installed one.
fn recvlogical_binary(cluster: &TempCluster) -> Option<PathBuf> {
    let local = cluster.bindir().join("pg_recvlogical");
    if local.is_file() {
        return Some(local);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/pg_recvlogical"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

fn pg_recvlogical(cluster: &TempCluster, end_lsn: &str) -> Result<Duration, String> {
    let bin = recvlogical_binary(cluster).ok_or("pg_recvlogical not installed")?;
    let t = Instant::now();
    let out = Command::new(&bin)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port().to_string(),
            "-U",
            "postgres",
        ])
        .args(["-d", "postgres", "--slot", "bench", "--start", "--no-loop"])
        .args(["-o", "proto_version=1", "-o", "publication_names=p"])
        .args(["--endpos", end_lsn, "-f", "/dev/null"])
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let d = t.elapsed();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(d)
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
