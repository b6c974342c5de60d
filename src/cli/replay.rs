//! `pgforce replay`: re-apply a range of the change journal to Salesforce (see
//! `pgforce::replay`). Exit codes: 0 everything applied, 1 some records were rejected (they
//! are printed) or the run failed, 2 config or usage error (no journal, LSN older than the
//! journal keeps, unknown mapping).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use pgforce::lsn::Lsn;
use pgforce::replay::{self, ReplayError, ReplayPlan, ReplayReport, ReplayRequest, StepProgress};

/// Options of `pgforce replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The pgforce TOML config (its `[journal] dir` is read).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Pipeline name (needed when the config has several).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// First commit LSN to replay (inclusive), e.g. `0/16B3748`.
    #[arg(long)]
    pub from_lsn: Lsn,
    /// Last commit LSN to replay (inclusive); default: the end of the journal.
    #[arg(long)]
    pub to_lsn: Option<Lsn>,
    /// Only changes of this mapping.
    #[arg(long)]
    pub mapping: Option<String>,
    /// Print what would be sent and send nothing (no Salesforce or database connection).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan (with --dry-run) or the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let p = match super::pick_pipeline(&config, args.pipeline.as_deref()) {
        Ok(p) => p.clone(),
        Err(code) => return Ok(code),
    };
    let req = ReplayRequest {
        from: args.from_lsn,
        to: args.to_lsn,
        mapping: args.mapping.clone(),
    };
    let plan = match replay::plan(&p, &config.journal, &req) {
        Ok(plan) => plan,
        Err(e) => return Ok(fail(&e)),
    };
    if args.dry_run {
        print_plan(&plan, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if plan.is_empty() {
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&ReplayReport::default())?
            );
        } else {
            println!(
                "nothing to replay between {} and {} ({} journal entries)",
                plan.from, plan.to, plan.entries
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows = plan.rows() as u64;
    let bar = (std::io::stdout().is_terminal() && !args.json).then(|| {
        let b = indicatif::ProgressBar::new(rows);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    if !args.json && bar.is_none() {
        println!(
            "replaying {} change(s) of pipeline {} from {} to {} in {} step(s)",
            rows,
            p.name,
            plan.from,
            plan.to,
            plan.steps.len()
        );
    }
    let quiet = args.json;
    let report = replay::apply(&p, plan, |s: &StepProgress| match &bar {
        Some(b) => {
            b.inc(s.rows as u64);
            b.set_message(format!("{} {}", s.object, s.kind.as_str()));
        }
        None if !quiet => println!(
            "step {}/{}: {} {} {} row(s): {} applied, {} failed",
            s.step,
            s.steps,
            s.object,
            s.kind.as_str(),
            s.rows,
            s.applied,
            s.failed
        ),
        None => {}
    })
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = match report {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "applied {} change(s); {} failed",
            report.applied,
            report.failures.len()
        );
        if !report.failures.is_empty() {
            println!(
                "{:<12} {:<14} {:<18} {:<8} {:<32} message",
                "mapping", "object", "key", "op", "error"
            );
            for f in &report.failures {
                println!(
                    "{:<12} {:<14} {:<18} {:<8} {:<32} {}",
                    f.mapping, f.object, f.external_id, f.operation, f.error_code, f.message
                );
            }
        }
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn fail(e: &ReplayError) -> ExitCode {
    eprintln!("error: {e}");
    if e.is_usage() {
        ExitCode::from(super::EXIT_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}

fn print_plan(plan: &ReplayPlan, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&plan.to_json())?);
        return Ok(());
    }
    println!(
        "dry run: pipeline {} from {} to {}: {} journal entries, {} change(s) after coalescing; nothing sent",
        plan.pipeline,
        plan.from,
        plan.to,
        plan.entries,
        plan.rows()
    );
    let doc = plan.to_json();
    for o in doc["objects"].as_array().into_iter().flatten() {
        let ups = o["upserts"].as_array().map_or(&[][..], |v| v.as_slice());
        let dels = o["deletes"].as_array().map_or(&[][..], |v| v.as_slice());
        println!(
            "{}: {} upsert(s), {} delete(s)",
            o["object"].as_str().unwrap_or_default(),
            ups.len(),
            dels.len()
        );
        for r in ups {
            println!("  upsert {r}");
        }
        for r in dels {
            println!("  delete {r}");
        }
    }
    Ok(())
}
