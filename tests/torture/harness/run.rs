//! One torture run: a seed, a vocabulary and a number of transactions in; a verdict out.
//! The run is bounded (the caller puts a deadline on it) and its children die with it
//! (`Pipeline` and `TempCluster` clean up on drop).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

use super::chaos;
use super::env::{self, ConfigOptions, Env, Pipeline};
use super::oracle::{self, Verdict};
use super::vocab::Vocab;
use super::workload::{Generator, Model};

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub vocab: Vocab,
    /// Transactions of the workload (after the backfill).
    pub txns: usize,
    /// Hard limit for the whole run.
    pub deadline: Duration,
}

impl Settings {
    /// The command line that reproduces this run.
    pub fn repro(&self) -> String {
        format!(
            "PGFORCE_TORTURE_SEED={} PGFORCE_TORTURE_VOCAB={} PGFORCE_TORTURE_TXNS={} cargo test --test torture torture_short -- --nocapture",
            self.seed, self.vocab, self.txns
        )
    }
}

/// A progress line on stderr (visible with `--nocapture`).
pub fn note(seed: u64, msg: impl AsRef<str>) {
    eprintln!("[torture seed {seed}] {}", msg.as_ref());
}

/// Recovery-related log lines worth counting in a report.
const LOG_LINES: &[&str] = &[
    "resuming an epoch left in flight",
    "reconciling a Bulk job",
    "aborting a Bulk job",
    "the in-flight plan differs",
    "pipeline stopped; restarting",
    "backfill",
    "panicked",
    "ERROR",
];

fn log_counts(env: &Env) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    LOG_LINES
        .iter()
        .map(|n| (n.to_string(), text.matches(n).count()))
        .collect()
}

async fn reconnect(env: &Env) -> Result<Client, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match env::connect(&env.db_url).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => return Err(format!("reconnect: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The state a run carries between its phases.
struct Run {
    s: Settings,
    env: Env,
    pg: Client,
    gen: Generator,
    child: Pipeline,
    events: Vec<String>,
    exits: usize,
    slot_drops: usize,
    bounces: usize,
    started: Instant,
    /// (transaction index, chaos item): each enabled failure happens at least once, at a
    /// point picked from the seed (a second rng, so the workload's sequence stays put).
    forced: Vec<(usize, &'static str)>,
}

impl Run {
    fn event(&mut self, e: String) {
        note(
            self.s.seed,
            format!("{:>6.1}s {e}", self.started.elapsed().as_secs_f64()),
        );
        self.events
            .push(format!("{:.1}s {e}", self.started.elapsed().as_secs_f64()));
    }

    async fn model(&mut self) -> Result<Model, String> {
        for _ in 0..3 {
            match Model::load(&self.pg).await {
                Ok(m) => return Ok(m),
                Err(_) => self.pg = reconnect(&self.env).await?,
            }
        }
        Err("cannot read the model from Postgres".into())
    }

    async fn one_transaction(&mut self) -> Result<(), String> {
        let model = self.model().await?;
        // A failed transaction rolled back (Postgres restarting, mostly): the model is
        // re-read before the next one, so just count it and go on.
        if self.gen.transaction(&mut self.pg, &model).await.is_err() {
            self.gen.stats.failed_transactions += 1;
            if self.pg.is_closed() {
                self.pg = reconnect(&self.env).await?;
            }
        }
        Ok(())
    }

    fn respawn_if_exited(&mut self) {
        if let Some(status) = self.child.try_exited() {
            self.exits += 1;
            let tail = self.env.log_tail(8);
            self.event(format!(
                "pgforce exited on its own ({status}); respawning. log tail:\n{tail}"
            ));
            self.child = self.env.spawn();
        }
    }

    async fn kill(&mut self) {
        let ms = self.gen.rng.random_range(0..1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.child.kill9();
        self.event(format!(
            "SIGKILL pgforce ({ms} ms after the last transaction)"
        ));
        let ms = self.gen.rng.random_range(0..300);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.child = self.env.spawn();
    }

    fn forced(&self, i: usize, item: &str) -> bool {
        self.forced.iter().any(|(at, it)| *at == i && *it == item)
    }

    /// Whether chaos `item` happens after transaction `i`: forced there, or by chance `p`.
    fn roll(&mut self, i: usize, item: &str, p: f64) -> bool {
        self.s.vocab.has(item) && (self.forced(i, item) || self.gen.rng.random_bool(p))
    }

    /// Maybe inject failures after transaction `i` (each with its own probability).
    async fn chaos(&mut self, i: usize) -> Result<(), String> {
        let v = self.s.vocab.clone();
        if self.roll(i, "kill", 0.07) {
            self.kill().await;
        }
        if v.has("faults_http") {
            if self.roll(i, "faults_http", 0.06) {
                let (what, spec) = chaos::random_http_fault(&mut self.gen);
                self.env.emulator.add_fault(spec);
                self.event(format!("fault: {what}"));
            } else if self.gen.rng.random_bool(0.04) {
                self.env.emulator.clear_faults();
                self.event("faults cleared".into());
            }
        }
        if self.roll(i, "token_expiry", 0.03) {
            self.env.emulator.expire_tokens();
            self.event("tokens expired".into());
        }
        if self.roll(i, "bulk_failed", 0.03) {
            self.env.emulator.add_fault(chaos::bulk_failed());
            self.event("fault: the next Bulk job ends Failed".into());
        }
        if self.roll(i, "bulk_aborted", 0.03) {
            // Slow job closes a little so an open job can be caught.
            let prefix = format!("/services/data/v{}/jobs/ingest/", env::API_VERSION);
            self.env.emulator.add_fault(
                pgforce_emulator::FaultSpec::always(pgforce_emulator::FaultKind::Latency {
                    ms: 400,
                })
                .matching(Some("PATCH"), &prefix)
                .times(3),
            );
            let job = chaos::abort_a_bulk_job(&self.env, Duration::from_secs(3)).await;
            self.event(format!("abort an open Bulk job from outside: {job:?}"));
        }
        if self.slot_drops < 2 && self.roll(i, "slot_drop", 0.02) {
            self.slot_drops += 1;
            self.child.kill9();
            chaos::drop_slot(&self.env).await?;
            self.event("slot dropped (pgforce killed first); writing while it is gone".into());
            for _ in 0..self.gen.rng.random_range(1..4) {
                self.one_transaction().await?;
            }
            self.child = self.env.spawn();
        }
        if self.bounces < 2 && self.roll(i, "pg_restart", 0.02) {
            self.bounces += 1;
            let crash = self.gen.rng.random_bool(0.5);
            chaos::bounce_postgres(&mut self.env, crash)?;
            self.event(format!(
                "Postgres {}",
                if crash {
                    "crashed and started"
                } else {
                    "restarted"
                }
            ));
            self.pg = reconnect(&self.env).await?;
        }
        Ok(())
    }

    /// Give every orphan its parent and fix most invalid rows.
    async fn settle(&mut self) -> Result<(), String> {
        let model = self.model().await?;
        let tx = self.pg.transaction().await.map_err(|e| e.to_string())?;
        let gen = &mut self.gen;
        for a in &model.pending_accounts {
            tx.execute(
                "INSERT INTO accounts VALUES ($1, $2, 'site', 'late parent', 1.00) ON CONFLICT DO NOTHING",
                &[a, &format!("Late parent {a}")],
            )
            .await
            .map_err(|e| e.to_string())?;
            incarnate_late(&tx, "Account", *a).await?;
        }
        for c in &model.pending_contacts {
            tx.execute(
                "INSERT INTO contacts (id, last_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[c, &format!("Late parent {c}")],
            )
            .await
            .map_err(|e| e.to_string())?;
            incarnate_late(&tx, "Contact", *c).await?;
        }
        for (t, id) in &model.invalid {
            if gen.rng.random_bool(0.7) {
                gen.fix(&tx, *t, *id).await.map_err(|e| e.to_string())?;
            }
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Wait until the checkpoint passed everything written and nothing is in flight.
    async fn quiet(&mut self, limit: Duration) -> Result<bool, String> {
        let target = env::current_wal_lsn(&self.pg)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            self.respawn_if_exited();
            let confirmed = env::slot_confirmed(&self.pg).await.unwrap_or(0);
            let cp = env::checkpoint(&self.pg).await;
            if confirmed.max(cp) >= target && env::inflight_rows(&self.pg).await == 0 {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(false)
    }
}

async fn incarnate_late(
    tx: &tokio_postgres::Transaction<'_>,
    object: &str,
    id: i64,
) -> Result<(), String> {
    tx.execute(
        "INSERT INTO incarnations VALUES ($1, $2, 1)
         ON CONFLICT (object, ext) DO UPDATE SET n = incarnations.n + 1",
        &[&object, &id.to_string()],
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The outcome of one run.
pub struct Outcome {
    pub verdict: Verdict,
    pub caught_up: bool,
    pub exits: usize,
    pub report: String,
}

impl Outcome {
    /// Clean verdict, caught up, and pgforce never exited on its own.
    pub fn passed(&self) -> bool {
        self.verdict.is_clean() && self.caught_up && self.exits == 0
    }
}

/// Run one seed to the end.
pub async fn run_seed(s: &Settings) -> Result<Outcome, String> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(s.seed);
    let max_batch_rows = [50, 500, 5000][rng.random_range(0..3)];
    let opts = ConfigOptions {
        max_batch_rows,
        // `validate` refuses a threshold above the batch size (a config error, not a
        // pipeline failure to torture).
        collections_threshold: [5, 50, 200][rng.random_range(0..3)].min(max_batch_rows),
        max_batch_age_ms: rng.random_range(200..800),
    };
    note(
        s.seed,
        format!(
            "vocab {} txns {} config {opts:?}; started {}",
            s.vocab,
            s.txns,
            chrono::Utc::now().format("%H:%M:%S%.3f")
        ),
    );
    let env = Env::start(&opts).await;
    let mut pg = env.client().await;
    let mut gen = Generator::new(rng, s.vocab.clone());
    if s.vocab.has("backfill") {
        gen.seed_rows(&mut pg)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
    }
    let child = env.spawn();
    let mut run = Run {
        s: s.clone(),
        env,
        pg,
        gen,
        child,
        events: Vec::new(),
        exits: 0,
        slot_drops: 0,
        bounces: 0,
        started,
        forced: forced_chaos(s),
    };
    if s.vocab.has("backfill") {
        during_backfill(&mut run).await?;
    }
    for i in 0..s.txns {
        run.one_transaction().await?;
        let ms = run.gen.rng.random_range(0..60);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        run.chaos(i).await?;
        run.respawn_if_exited();
    }
    run.settle().await?;
    run.env.emulator.clear_faults();
    run.respawn_if_exited();
    run.event("workload done; faults cleared; waiting for the checkpoint".into());
    let quiet_secs = std::env::var("PGFORCE_TORTURE_QUIET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    let caught_up = run.quiet(Duration::from_secs(quiet_secs)).await?;
    // Parked rows are retried after their parents land; give them a moment past the
    // checkpoint, then take the verdict.
    let mut verdict = oracle::check(&run.pg, &run.env.emulator).await;
    let settle_until = Instant::now() + Duration::from_secs(if caught_up { 15 } else { 2 });
    while !verdict.is_clean() && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        verdict = oracle::check(&run.pg, &run.env.emulator).await;
    }
    let exit = run.child.terminate(Duration::from_secs(20)).await;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "seed {} vocab {} txns {}: {} in {:.1}s; caught up: {caught_up}; pgforce exited on its own {}x; SIGTERM exit {exit:?}",
        s.seed,
        s.vocab,
        s.txns,
        if verdict.is_clean() && caught_up && run.exits == 0 {
            "PASS"
        } else {
            "FAIL"
        },
        started.elapsed().as_secs_f64(),
        run.exits,
    );
    let _ = writeln!(report, "ops {:?}", run.gen.stats);
    let _ = writeln!(report, "{}", verdict.render(8));
    if !(verdict.is_clean() && caught_up && run.exits == 0) {
        let _ = writeln!(report, "reproduce: {}", s.repro());
        let _ = writeln!(report, "events:\n  {}", run.events.join("\n  "));
        let _ = writeln!(report, "pgforce log counts: {:?}", log_counts(&run.env));
        let _ = writeln!(report, "{}", oracle::explain(&run.pg, &verdict, 6).await);
        if !caught_up {
            let tail: Vec<String> = run
                .env
                .log_tail(12)
                .lines()
                .map(|l| l.chars().take(400).collect())
                .collect();
            let _ = writeln!(report, "log tail:\n{}", tail.join("\n"));
        }
        if std::env::var_os("PGFORCE_KEEP_TEST_DIR").is_some() {
            let _ = writeln!(report, "kept: {:?}", run.env.keep_dir());
        }
    }
    Ok(Outcome {
        verdict,
        caught_up,
        exits: run.exits,
        report,
    })
}

/// Chaos items that fire at least once, at seeded transaction indices.
fn forced_chaos(s: &Settings) -> Vec<(usize, &'static str)> {
    let mut rng = StdRng::seed_from_u64(s.seed ^ 0x7047_f04c_e000_0001);
    let lo = s.txns / 5;
    let hi = (s.txns * 4 / 5).max(lo + 1);
    [
        "kill",
        "faults_http",
        "token_expiry",
        "bulk_failed",
        "bulk_aborted",
        "slot_drop",
        "pg_restart",
    ]
    .into_iter()
    .filter(|item| s.vocab.has(item))
    .map(|item| (rng.random_range(lo..hi), item))
    .collect()
}

/// Writes while the initial copy runs (deletes, inserts, updates of rows being copied),
/// with a kill in the middle when `kill` is on.
async fn during_backfill(run: &mut Run) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !std::fs::read_to_string(run.env.log_path())
            .unwrap_or_default()
            .contains("copying table")
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.event("backfill started; writing during it".into());
    let n = run.gen.rng.random_range(8..20);
    let kill_at = run
        .s
        .vocab
        .has("kill")
        .then(|| run.gen.rng.random_range(0..n));
    for i in 0..n {
        run.one_transaction().await?;
        if kill_at == Some(i) {
            run.child.kill9();
            run.event("SIGKILL pgforce during the backfill".into());
            run.child = run.env.spawn();
        }
    }
    Ok(())
}
