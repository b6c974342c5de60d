//! `pgforce validate`: check the config against the Postgres catalog and the Salesforce
//! describe before anything runs. Exit 0 when clean (warnings allowed), 3 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

use pgforce::config::validate::{has_errors, render_table, to_json, Diagnostic};
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

pub async fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let mut findings: Vec<Diagnostic> = Vec::new();
    for (i, p) in config.pipelines.iter().enumerate() {
        let client = salesforce_client(p)?;
        client.login().await?;
        findings.extend(check_pipeline(i, p, &client).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&findings))?);
    } else if findings.is_empty() {
        println!("{}: no problems found", args.config.display());
    } else {
        print!("{}", render_table(&findings));
    }
    Ok(if has_errors(&findings) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
