//! `pgforce validate`: check the config against the Postgres catalog and the Salesforce
//! describe before anything runs, reporting every problem found in one run. Exit 0 when
//! clean (warnings allowed), 3 on errors, 1 when a pipeline could not be checked.

use std::path::PathBuf;
use std::process::ExitCode;

use pgforce::config::validate::{has_errors, render_table, to_json, Diagnostic};
use pgforce::config::PipelineConfig;
use pgforce::pipeline::{check_pipeline, salesforce_client};

/// Options of `pgforce validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The pgforce TOML config.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print findings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Every problem in one run: the findings of every pipeline that could be checked, and
/// for each one that could not (database or org unreachable, login refused) the reason.
/// Exit 1 when some pipeline could not be checked, else 3 on errors, else 0.
pub async fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let mut findings: Vec<Diagnostic> = Vec::new();
    let mut unchecked: Vec<String> = Vec::new();
    for (i, p) in config.pipelines.iter().enumerate() {
        match check_one(i, p).await {
            Ok(f) => findings.extend(f),
            Err(e) => unchecked.push(format!("pipelines[{i}] ({}): {e:#}", p.name)),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&findings))?);
    } else if findings.is_empty() && unchecked.is_empty() {
        println!("{}: no problems found", args.config.display());
    } else if !findings.is_empty() {
        print!("{}", render_table(&findings));
    }
    for u in &unchecked {
        eprintln!("error: could not check {u}");
    }
    Ok(if !unchecked.is_empty() {
        ExitCode::from(1)
    } else if has_errors(&findings) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Log in to the pipeline's org and check it against its database and the org.
async fn check_one(i: usize, p: &PipelineConfig) -> anyhow::Result<Vec<Diagnostic>> {
    let client = salesforce_client(p)?;
    client.login().await?;
    let mut findings = if p.mappings.is_empty() {
        Vec::new()
    } else {
        check_pipeline(i, p, &client).await?
    };
    findings.extend(pgforce::jobs::check_jobs(i, p, &client).await?);
    Ok(findings)
}
