//! `pgforce jobs list` and `pgforce jobs run NAME [--dry-run] [--force]`: the query-driven
//! jobs of a config, their last run and next run, and running one now. A run first checks
//! the job's query columns against describe (a column that does not fit its field stops it,
//! naming the job); `--dry-run` prints the counts and a sample of what would change and
//! sends nothing. Exit 0 on success, 1 when the run failed, 2 on a config problem, 3 when the
//! check found errors.

use std::path::PathBuf;
use std::process::ExitCode;

use pgforce::config::validate::{has_errors, render_table};
use pgforce::config::{Config, PipelineConfig};
use pgforce::jobs::{check_jobs, next_run, JobRunOptions, JobRunner, JobStore, LastRun};
use secrecy::ExposeSecret;

/// `pgforce jobs …`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobsCommand,
}

/// The `jobs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// List the jobs with their trigger, target, last run and next run.
    List(ListArgs),
    /// Run one job now.
    Run(RunJobArgs),
}

/// Options of `pgforce jobs list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The pgforce TOML config.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Options of `pgforce jobs run`.
#[derive(Debug, clap::Args)]
pub struct RunJobArgs {
    /// The job's name.
    pub name: String,
    /// The pgforce TOML config.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The pipeline the job belongs to (needed only when two pipelines have a job of
    /// that name).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Print what would change (counts and a sample of records); send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove members even when more than the job's max_remove_percent would go.
    #[arg(long)]
    pub force: bool,
}

pub async fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        JobsCommand::List(a) => list(a).await,
        JobsCommand::Run(a) => run(a).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    println!(
        "{:<12} {:<20} {:<11} {:<16} {:<28} {:<10} {:<25} next run",
        "pipeline", "job", "target", "object", "trigger", "last", "last run at"
    );
    for p in &config.pipelines {
        if p.jobs.is_empty() {
            continue;
        }
        let runs = last_runs(p).await.unwrap_or_default();
        for job in &p.jobs {
            let last = runs.iter().find(|r| r.job == job.name);
            let next = next_run(job, last.map(|l| l.started_at))
                .map_or_else(|| "on event".to_string(), |t| t.to_rfc3339());
            println!(
                "{:<12} {:<20} {:<11} {:<16} {:<28} {:<10} {:<25} {next}",
                p.name,
                job.name,
                job.target.kind(),
                job.object(),
                job.trigger.describe(),
                last.map_or("never", |l| l.state.as_str()),
                last.map_or("-".into(), |l| l.started_at.to_rfc3339()),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The latest run of each job of `p` (none when the state schema is unreachable).
pub async fn last_runs(p: &PipelineConfig) -> anyhow::Result<Vec<LastRun>> {
    let db = p.source.database_url.value()?.expose_secret().to_string();
    let store = JobStore::connect(&db, &p.state_schema, &p.name).await?;
    Ok(store.last_runs().await?)
}

/// The pipeline holding job `name`.
fn find_job<'a>(
    config: &'a Config,
    name: &str,
    pipeline: Option<&str>,
) -> Option<&'a PipelineConfig> {
    config
        .pipelines
        .iter()
        .filter(|p| pipeline.is_none_or(|want| p.name == want))
        .find(|p| p.jobs.iter().any(|j| j.name == name))
}

async fn run(args: RunJobArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(p) = find_job(&config, &args.name, args.pipeline.as_deref()) else {
        eprintln!(
            "error: no job named {:?} in the config; `pgforce jobs list` shows the jobs",
            args.name
        );
        return Ok(ExitCode::from(super::EXIT_CONFIG));
    };
    let runner = JobRunner::connect(p).await?;
    runner.salesforce().login().await?;
    let index = config
        .pipelines
        .iter()
        .position(|q| q.name == p.name)
        .unwrap_or(0);
    let job_index = p.jobs.iter().position(|j| j.name == args.name).unwrap_or(0);
    let prefix = format!("pipelines[{index}].jobs[{job_index}]");
    let findings: Vec<_> = check_jobs(index, p, runner.salesforce())
        .await?
        .into_iter()
        .filter(|d| d.key.starts_with(&format!("{prefix}.")) || d.key == prefix)
        .collect();
    if has_errors(&findings) {
        eprintln!("error: job {} cannot run as configured:", args.name);
        eprint!("{}", render_table(&findings));
        return Ok(ExitCode::from(3));
    }
    let opts = JobRunOptions {
        dry_run: args.dry_run,
        force: args.force,
    };
    match runner.run(&args.name, opts).await {
        Ok(report) => {
            print!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
