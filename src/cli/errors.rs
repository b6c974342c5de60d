//! `pgforce errors list|retry|discard`: work on the dead-letter table.
//!
//! `retry` sends rows Salesforce rejected again (sObject Collections upsert of the stored
//! record); rows pgforce could not map (`PGFORCE_MAPPING`) cannot be retried as they are:
//! fix the data in Postgres and the next change of the row flows again. A retry never
//! races the pipeline: with no pipeline running, this command takes the pipeline's lock
//! and retries; with one running, it marks the letters and the pipeline retries them
//! between its epochs (within its status interval).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use pgforce::checkpoint::StateStore;
use pgforce::config::PipelineConfig;
use pgforce::pipeline::{retry_dead_letters, salesforce_client};
use pgforce::sink::SalesforceDestination;
use secrecy::ExposeSecret;

/// Options of `pgforce errors`.
#[derive(Debug, clap::Args)]
pub struct ErrorsArgs {
    #[command(subcommand)]
    pub action: ErrorsAction,
    /// The pgforce TOML config.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Pipeline name (needed when the config has several).
    #[arg(long, global = true)]
    pub pipeline: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ErrorsAction {
    /// List dead letters.
    List {
        /// open, resolved, discarded or all.
        #[arg(long, default_value = "open")]
        status: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Send open dead letters to Salesforce again (all, or the given ids).
    Retry { ids: Vec<i64> },
    /// Mark open dead letters discarded (all, or the given ids).
    Discard { ids: Vec<i64> },
}

pub async fn errors(args: ErrorsArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = args.config.as_ref() else {
        eprintln!("error: --config is required");
        return Ok(ExitCode::from(super::EXIT_CONFIG));
    };
    let config = match super::load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let p = match super::pick_pipeline(&config, args.pipeline.as_deref()) {
        Ok(p) => p.clone(),
        Err(code) => return Ok(code),
    };
    let db = p.source.database_url.value()?.expose_secret().to_string();
    let state = Arc::new(StateStore::connect(&db, &p.state_schema, &p.name).await?);
    match args.action {
        ErrorsAction::List {
            status,
            limit,
            json,
        } => {
            let filter = (status != "all").then_some(status.as_str());
            let rows = state.list_dead_letters(filter, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no dead letters ({status})");
            } else {
                println!(
                    "{:>6}  {:<12} {:<14} {:<18} {:<32} {:>4}  message",
                    "id", "mapping", "object", "key", "error", "try"
                );
                for r in rows {
                    let waiting = match r.children_waiting {
                        0 => String::new(),
                        n => format!(" ({n} parked child change(s) wait for this record)"),
                    };
                    println!(
                        "{:>6}  {:<12} {:<14} {:<18} {:<32} {:>4}  {}{waiting}",
                        r.id,
                        r.mapping,
                        r.object,
                        r.external_id,
                        r.error_code,
                        r.attempts,
                        r.message
                    );
                }
            }
        }
        ErrorsAction::Discard { ids } => {
            let n = state.discard_dead_letters(&ids).await?;
            println!("discarded {n} dead letter(s)");
        }
        ErrorsAction::Retry { ids } => return retry(&p, &state, &ids).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// `errors retry`: here under the pipeline's lock, or handed to the running pipeline.
async fn retry(p: &PipelineConfig, state: &StateStore, ids: &[i64]) -> anyhow::Result<ExitCode> {
    if !state.try_lock_pipeline().await? {
        let n = state.request_dead_letter_retry(ids).await?;
        println!(
            "pipeline {} is running: {n} dead letter(s) handed to it; it retries them between \
             its epochs (see `pgforce errors list` for what is still open)",
            p.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    let client = salesforce_client(p)?;
    client.login().await?;
    let dest = SalesforceDestination::new(client);
    let s = retry_dead_letters(state, &dest, &p.mappings, ids).await?;
    println!(
        "retried: {} applied, {} failed again, {} not retriable (mapping errors or deletes)",
        s.applied, s.failed, s.not_retriable
    );
    Ok(if s.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
