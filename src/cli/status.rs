//! `pgforce status`: per pipeline, what is durable (checkpoint, slot, in-flight jobs, dead
//! letters, parked children) read from Postgres, plus the live view of a running daemon
//! (changes/s, API budget, last error) from its `/status` endpoint when reachable.

use std::path::PathBuf;
use std::process::ExitCode;

use pgforce::checkpoint::StateStore;
use pgforce::replication::{connect_client, slot_health, ConnectOptions};
use pgforce::server::StatusReport;
use secrecy::ExposeSecret;
use serde_json::json;

/// Options of `pgforce status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The pgforce TOML config.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The running daemon's ops listener, for live figures.
    #[arg(long, default_value = "http://127.0.0.1:9187")]
    pub endpoint: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let live: Option<StatusReport> = fetch_live(&args.endpoint).await;
    let mut out = Vec::new();
    for p in &config.pipelines {
        let db = p.source.database_url.value()?.expose_secret().to_string();
        let state = StateStore::connect(&db, &p.state_schema, &p.name).await?;
        let pg = connect_client(&ConnectOptions::parse(&db)?).await?;
        let slot = slot_health(&pg, &p.slot).await.ok();
        let inflight = state.open_epoch().await?;
        let stuck = state.stuck().await?;
        let live_p = live
            .as_ref()
            .and_then(|l| l.pipelines.iter().find(|s| s.name == p.name));
        let inbound = inbound_rows(p, &pg, live.as_ref()).await?;
        out.push(json!({
            "inbound": inbound,
            "pipeline": p.name,
            "slot": p.slot,
            "confirmed_lsn": state.checkpoint().await?.map(|l| l.to_string()),
            "checkpoint_age_secs": state.checkpoint_age_secs().await?,
            "lag_bytes": slot.as_ref().map(|s| s.lag_bytes),
            "slot_active": slot.as_ref().map(|s| s.active),
            "wal_status": slot.as_ref().and_then(|s| s.wal_status.clone()),
            "in_flight_jobs": inflight.map(|e| e.steps.iter().filter_map(|r| r.job_id.clone()).collect::<Vec<_>>()).unwrap_or_default(),
            "dead_letters": state.open_dead_letters().await?,
            "parked": stuck.parked_total(),
            "oldest_dead_letter": stuck.oldest_dead_letter,
            "parked_reasons": stuck.parked,
            "state": live_p.map(|s| format!("{:?}", s.state).to_lowercase()),
            "changes_per_sec": live_p.map(|s| s.changes_per_sec),
            "api_remaining": live_p.and_then(|s| s.api_remaining),
            "api_max": live_p.and_then(|s| s.api_max),
            "last_error": live_p.and_then(|s| s.last_error.clone()),
            "jobs": job_rows(p).await,
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<10} {:<14} {:>12} {:>7} {:>6} {:>7} {:>9} {:>12}  last error",
        "pipeline",
        "state",
        "confirmed",
        "lag bytes",
        "active",
        "jobs",
        "dead",
        "parked",
        "api left"
    );
    for row in &out {
        let s = |k: &str| {
            row[k]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| "-".into())
        };
        let n = |k: &str| {
            if row[k].is_null() {
                "-".into()
            } else {
                row[k].to_string()
            }
        };
        println!(
            "{:<14} {:<10} {:<14} {:>12} {:>7} {:>6} {:>7} {:>9} {:>12}  {}",
            s("pipeline"),
            s("state"),
            s("confirmed_lsn"),
            n("lag_bytes"),
            n("slot_active"),
            row["in_flight_jobs"].as_array().map_or(0, |a| a.len()),
            n("dead_letters"),
            n("parked"),
            n("api_remaining"),
            s("last_error"),
        );
    }
    for row in &out {
        for line in stuck_lines(row).into_iter().chain(job_lines(row)) {
            println!("{line}");
        }
        for line in inbound_lines(row) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The pipeline's inbound entries: the stored position (durable) and the live figures.
async fn inbound_rows(
    p: &pgforce::config::PipelineConfig,
    pg: &tokio_postgres::Client,
    live: Option<&StatusReport>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    use pgforce::inbound::position::{load, position_text, EntryKey};
    let live_side = live.and_then(|l| {
        let name = pgforce::inbound::status::status_name(&p.name);
        l.pipelines.iter().find(|s| s.name == name)
    });
    let mut rows = Vec::new();
    for (i, e) in p.inbound.iter().enumerate() {
        let key = EntryKey {
            schema: pgforce::checkpoint::quote_ident(&p.state_schema),
            pipeline: p.name.clone(),
            object: e.object.clone(),
            target: e.qualified_table(),
        };
        let stored = load(pg, &key).await.ok().flatten().and_then(Result::ok);
        let live_e = live_side
            .and_then(|s| s.inbound.as_ref())
            .and_then(|l| l.get(i));
        rows.push(json!({
            "object": e.object,
            "table": e.qualified_table(),
            "mode": e.mode.as_str(),
            "source": e.source.as_str(),
            "phase": stored.as_ref().map(|s| format!("{:?}", s.phase).to_lowercase()),
            "position": stored.as_ref().and_then(|s| s.position.as_ref()).map(position_text),
            "position_age_secs": stored.as_ref().map(|s| (chrono::Utc::now() - s.updated_at).num_seconds()),
            "state": live_e.map(|l| format!("{:?}", l.state).to_lowercase()),
            "lag_seconds": live_e.and_then(|l| l.lag_seconds),
            "events_applied": live_e.map(|l| l.events_applied),
            "resyncs": live_e.map(|l| l.resyncs),
            "last_error": live_e.and_then(|l| l.last_error.clone()),
        }));
    }
    Ok(rows)
}

/// One line per inbound entry.
fn inbound_lines(row: &serde_json::Value) -> Vec<String> {
    let Some(entries) = row["inbound"].as_array() else {
        return Vec::new();
    };
    let t = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    entries
        .iter()
        .map(|e| {
            format!(
                "  inbound {} -> {} ({}, {}): {} position {} ({}s old), lag {}s, {} applied, {} resyncs{}",
                t(&e["object"]),
                t(&e["table"]),
                t(&e["mode"]),
                t(&e["source"]),
                t(if e["state"].is_null() { &e["phase"] } else { &e["state"] }),
                t(&e["position"]),
                t(&e["position_age_secs"]),
                t(&e["lag_seconds"]),
                t(&e["events_applied"]),
                t(&e["resyncs"]),
                e["last_error"].as_str().map(|x| format!(", last error: {x}")).unwrap_or_default(),
            )
        })
        .collect()
}

/// What is stuck in one pipeline, in words: the oldest open dead letter and each group of
/// parked changes with the parent they wait for. Empty when nothing is stuck.
fn stuck_lines(row: &serde_json::Value) -> Vec<String> {
    let name = row["pipeline"].as_str().unwrap_or("-");
    let mut lines = Vec::new();
    let dead = &row["oldest_dead_letter"];
    if dead.is_object() {
        let text = |k: &str| dead[k].as_str().unwrap_or("-").to_string();
        lines.push(format!(
            "{name}: oldest dead letter since {}: mapping {} ({}) rejected with {}: {} (tried {} times; `pgforce errors list` shows all)",
            text("first_seen"),
            text("mapping"),
            text("object"),
            text("error_code"),
            text("message"),
            dead["attempts"],
        ));
    }
    for group in row["parked_reasons"].as_array().into_iter().flatten() {
        let text = |k: &str| group[k].as_str().unwrap_or("-").to_string();
        let mut line = format!(
            "{name}: {} {} change(s) parked since {}, waiting for their {} parent to land",
            group["count"],
            text("mapping"),
            text("oldest"),
            text("waiting_for"),
        );
        let blocked = group["parent_dead_lettered"].as_u64().unwrap_or(0);
        if blocked > 0 {
            line.push_str(&format!(
                " ({blocked} of them wait for a parent that is dead-lettered: fix it, see `pgforce errors list`)"
            ));
        }
        lines.push(line);
    }
    lines
}

async fn fetch_live(endpoint: &str) -> Option<StatusReport> {
    let url = format!("{}/status", endpoint.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .ok()?;
    client.get(url).send().await.ok()?.json().await.ok()
}

/// The pipeline's jobs: last run (state, when, duration, rows sent, errors) and next run.
async fn job_rows(p: &pgforce::config::PipelineConfig) -> serde_json::Value {
    if p.jobs.is_empty() {
        return json!([]);
    }
    let runs = super::jobs::last_runs(p).await.unwrap_or_default();
    let rows: Vec<serde_json::Value> = p
        .jobs
        .iter()
        .map(|job| {
            let last = runs.iter().find(|r| r.job == job.name);
            let next = pgforce::jobs::next_run(job, last.map(|l| l.started_at));
            json!({
                "job": job.name,
                "target": job.target.kind(),
                "last_state": last.map(|l| l.state.clone()),
                "last_run": last.map(|l| l.started_at.to_rfc3339()),
                "duration_secs": last.and_then(|l| l.finished_at.map(|f| (f - l.started_at).num_milliseconds() as f64 / 1000.0)),
                "rows_sent": last.map(|l| l.rows_sent),
                "errors": last.map(|l| l.errors),
                "message": last.and_then(|l| l.message.clone()),
                "next_run": next.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    json!(rows)
}

/// One line per job: its last and next run.
fn job_lines(row: &serde_json::Value) -> Vec<String> {
    let name = row["pipeline"].as_str().unwrap_or("-");
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    row["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            format!(
                "{name}: job {} ({}): last run {} at {} took {}s, sent {}, errors {}; next run {}{}",
                text(&j["job"]),
                text(&j["target"]),
                text(&j["last_state"]),
                text(&j["last_run"]),
                text(&j["duration_secs"]),
                text(&j["rows_sent"]),
                text(&j["errors"]),
                j["next_run"].as_str().unwrap_or("on event"),
                j["message"].as_str().map(|m| format!(" ({m})")).unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::stuck_lines;
    use serde_json::json;

    #[test]
    fn nothing_stuck_prints_nothing() {
        let row = json!({"pipeline": "crm", "oldest_dead_letter": null, "parked_reasons": []});
        assert!(stuck_lines(&row).is_empty());
    }

    #[test]
    fn stuck_rows_are_named_with_their_reason() {
        let row = json!({
            "pipeline": "crm",
            "oldest_dead_letter": {"mapping": "contacts", "object": "Contact",
                "error_code": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"], "attempts": 2, "first_seen": "2026-01-02T03:04:05Z"},
            "parked_reasons": [{"mapping": "contacts", "object": "Contact", "waiting_for": "Account",
                "count": 3, "oldest": "2026-01-02T03:00:00Z"}],
        });
        assert_eq!(
            stuck_lines(&row),
            [
                "crm: oldest dead letter since 2026-01-02T03:04:05Z: mapping contacts (Contact) rejected with REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (tried 2 times; `pgforce errors list` shows all)",
                "crm: 3 contacts change(s) parked since 2026-01-02T03:00:00Z, waiting for their Account parent to land",
            ]
        );
    }
}
