//! `pgforce schema`: for every inbound entry, the target table from the object's describe
//! — created when missing, or its differences printed. Dry run by default (prints the
//! SQL); `--apply` runs it. Exit 0 when every table is as needed (or was made so), 3 when
//! a dry run found differences, 1 when a pipeline could not be checked.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use pgforce::config::PipelineConfig;
use pgforce::inbound::ddl::{existing_columns, plan, Plan};
use pgforce::pipeline::salesforce_client;

/// Options of `pgforce schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// The pgforce TOML config.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Only this pipeline.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Run the statements (default: print them).
    #[arg(long)]
    pub apply: bool,
}

pub async fn schema(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let mut pending = false;
    for p in &config.pipelines {
        if args.pipeline.as_deref().is_some_and(|n| n != p.name) || p.inbound.is_empty() {
            continue;
        }
        let plans = plans_for(p)
            .await
            .with_context(|| format!("pipeline {}", p.name))?;
        pending |= report(p, &plans, args.apply).await?;
    }
    Ok(if pending && !args.apply {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

async fn connect(p: &PipelineConfig) -> anyhow::Result<tokio_postgres::Client> {
    use secrecy::ExposeSecret;
    let url = p
        .source
        .database_url
        .value()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (client, conn) = pgforce::pgconn::connect(url.expose_secret())
        .await
        .context("connecting to Postgres")?;
    tokio::spawn(conn);
    Ok(client)
}

async fn plans_for(p: &PipelineConfig) -> anyhow::Result<Vec<Plan>> {
    let sf = salesforce_client(p)?;
    sf.login().await?;
    let pg = connect(p).await?;
    let mut out = Vec::new();
    for e in &p.inbound {
        let describe = sf
            .describe(&e.object)
            .await
            .with_context(|| format!("describing {}", e.object))?;
        let have = existing_columns(&pg, e).await?;
        out.push(plan(e, &describe, have.as_ref()));
    }
    Ok(out)
}

/// Prints (and with `apply` runs) each plan; true when something was or is to be done.
async fn report(p: &PipelineConfig, plans: &[Plan], apply: bool) -> anyhow::Result<bool> {
    let pg = if apply { Some(connect(p).await?) } else { None };
    let mut any = false;
    for plan in plans {
        for note in &plan.notes {
            println!("-- note: {note}");
        }
        if plan.statements.is_empty() {
            println!("-- {}: as needed", plan.table);
            continue;
        }
        any = true;
        println!("-- {}", plan.table);
        for s in &plan.statements {
            println!("{s};");
        }
        if let Some(pg) = &pg {
            for s in &plan.statements {
                pg.batch_execute(s)
                    .await
                    .with_context(|| format!("running: {s}"))?;
            }
            println!("-- {}: applied", plan.table);
        }
    }
    Ok(any)
}
