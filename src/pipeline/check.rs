//! Checking a pipeline's config against the live Postgres catalog and Salesforce describe
//! (what `pgforce validate` prints and what `run` refuses to start on).

use std::collections::BTreeSet;

use futures::future::try_join_all;

use super::setup::database_url;
use super::PipelineError;
use crate::config::catalog::PgCatalog;
use crate::config::describe::SfDescribe;
use crate::config::validate::{validate_pipeline, Diagnostic};
use crate::config::PipelineConfig;
use crate::replication::{connect_client, ConnectOptions};
use crate::salesforce::SalesforceClient;

/// Every finding for pipeline number `index`, using `client` (logged in) for describes.
pub async fn check_pipeline(
    index: usize,
    p: &PipelineConfig,
    client: &SalesforceClient,
) -> Result<Vec<Diagnostic>, PipelineError> {
    let pipeline = p.name.clone();
    let db = database_url(p)?;
    let opts = ConnectOptions::parse(&db).map_err(|source| PipelineError::Replication {
        pipeline: pipeline.clone(),
        source,
    })?;
    let pg = connect_client(&opts)
        .await
        .map_err(|source| PipelineError::Replication {
            pipeline: pipeline.clone(),
            source,
        })?;
    let mut tables: Vec<String> = p.mappings.iter().map(|m| m.table.clone()).collect();
    tables.extend(p.inbound.iter().map(|e| e.table.clone()));
    let catalog = PgCatalog::load(&pg, &tables)
        .await
        .map_err(|source| PipelineError::Catalog {
            pipeline: pipeline.clone(),
            source,
        })?;
    let mut objects: BTreeSet<String> = p.mappings.iter().map(|m| m.object.clone()).collect();
    for m in &p.mappings {
        objects.extend(m.lookups.iter().map(|l| l.object.clone()));
    }
    objects.extend(p.inbound.iter().map(|e| e.object.clone()));
    let bodies = try_join_all(objects.iter().map(|o| async move {
        match client.describe_json(o).await {
            Ok(b) => Ok(Some(b)),
            Err(crate::salesforce::SalesforceError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }))
    .await
    .map_err(|source| PipelineError::Salesforce {
        pipeline: pipeline.clone(),
        source,
    })?;
    let describe =
        SfDescribe::from_json(bodies.iter().flatten()).map_err(|e| PipelineError::Config {
            pipeline: pipeline.clone(),
            message: format!("reading Salesforce describe: {e}"),
        })?;
    Ok(validate_pipeline(index, p, &catalog, &describe))
}
