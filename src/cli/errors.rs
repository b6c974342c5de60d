//! `pgforce errors list|retry|discard`: work on the dead-letter table.
//!
//! `retry` sends rows Salesforce rejected again (sObject Collections upsert of the stored
//! record); rows pgforce could not map (`PGFORCE_MAPPING`) cannot be retried as they are:
//! fix the data in Postgres and the next change of the row flows again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use pgforce::checkpoint::{DeadLetter, StateStore};
use pgforce::pipeline::salesforce_client;
use pgforce::sink::{Destination, SalesforceDestination};
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
                    println!(
                        "{:>6}  {:<12} {:<14} {:<18} {:<32} {:>4}  {}",
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
        ErrorsAction::Retry { ids } => {
            let client = salesforce_client(&p)?;
            client.login().await?;
            let dest = SalesforceDestination::new(client);
            let rows = state.list_dead_letters(Some("open"), 10_000).await?;
            let (mut ok, mut failed, mut skipped) = (0, 0, 0);
            for r in rows
                .into_iter()
                .filter(|r| ids.is_empty() || ids.contains(&r.id))
            {
                let mapping = p.mappings.iter().find(|m| m.name == r.mapping);
                let (Some(m), Some(record)) = (mapping, r.row.as_object()) else {
                    skipped += 1;
                    continue;
                };
                if r.error_code == "PGFORCE_MAPPING" || r.operation != "upsert" {
                    skipped += 1;
                    continue;
                }
                let outcome = dest
                    .upsert_records(
                        &m.object,
                        &m.external_id.field,
                        std::slice::from_ref(record),
                    )
                    .await?;
                match outcome.into_iter().next().map(|o| o.result) {
                    Some(Ok((id, _))) => {
                        state
                            .store_ids(&m.object, &[(r.external_id.clone(), id)])
                            .await?;
                        state
                            .resolve_dead_letters(&r.mapping, std::slice::from_ref(&r.external_id))
                            .await?;
                        ok += 1;
                    }
                    Some(Err(f)) => {
                        state
                            .record_dead_letters(&[DeadLetter {
                                mapping: r.mapping.clone(),
                                object: r.object.clone(),
                                external_id: r.external_id.clone(),
                                operation: r.operation.clone(),
                                lsn: r.lsn.parse().unwrap_or_default(),
                                error_code: f.code,
                                message: f.message,
                                fields: f.fields,
                                row: r.row.clone(),
                            }])
                            .await?;
                        failed += 1;
                    }
                    None => failed += 1,
                }
            }
            println!("retried: {ok} applied, {failed} failed again, {skipped} not retriable (mapping errors or deletes)");
            if failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
