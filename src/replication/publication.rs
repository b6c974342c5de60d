//! The publication that defines which tables the slot streams.
//!
//! [`ensure_publication`] creates it `FOR TABLE` the mapped tables when missing, adds
//! tables the mapping gained, and checks that every mapped table is published. A
//! publication `FOR ALL TABLES` publishes everything and is left alone. Permission
//! problems come back as [`PreflightError`]s that name the statement to run by hand.

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;
use tracing::{info, instrument};

use super::conn::server_error_of;
use super::error::{PreflightError, ReplicationError, Result};
use super::table::TableRef;

/// What [`ensure_publication`] may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicationPolicy {
    /// Create the publication when it does not exist.
    pub create_if_missing: bool,
    /// `ALTER PUBLICATION ... ADD TABLE` for mapped tables it lacks.
    pub add_missing_tables: bool,
}

impl Default for PublicationPolicy {
    fn default() -> Self {
        PublicationPolicy {
            create_if_missing: true,
            add_missing_tables: true,
        }
    }
}

/// What [`ensure_publication`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicationOutcome {
    pub created: bool,
    pub added: Vec<TableRef>,
}

/// A publication row from `pg_publication`.
#[derive(Debug, Clone)]
struct PublicationRow {
    owner: String,
    all_tables: bool,
}

/// Make sure publication `name` exists and publishes every table in `tables`.
#[instrument(skip(client, tables), fields(publication = name))]
pub async fn ensure_publication(
    client: &Client,
    name: &str,
    tables: &[TableRef],
    policy: PublicationPolicy,
) -> Result<PublicationOutcome> {
    check_tables_exist(client, tables).await?;
    let Some(publication) = read_publication(client, name).await? else {
        if !policy.create_if_missing {
            return Err(PreflightError::PublicationMissing {
                publication: name.to_string(),
            }
            .into());
        }
        create_publication(client, name, tables).await?;
        return Ok(PublicationOutcome {
            created: true,
            added: tables.to_vec(),
        });
    };
    if publication.all_tables {
        return Ok(PublicationOutcome::default());
    }
    let missing = missing_tables(client, name, tables).await?;
    if missing.is_empty() {
        return Ok(PublicationOutcome::default());
    }
    if !policy.add_missing_tables {
        return Err(missing_tables_error(name, &missing).into());
    }
    add_tables(client, name, &publication, &missing).await?;
    Ok(PublicationOutcome {
        created: false,
        added: missing,
    })
}

/// Check (without changing anything) that `name` exists and publishes all `tables`.
pub async fn check_publication(client: &Client, name: &str, tables: &[TableRef]) -> Result<()> {
    let Some(publication) = read_publication(client, name).await? else {
        return Err(PreflightError::PublicationMissing {
            publication: name.to_string(),
        }
        .into());
    };
    if publication.all_tables {
        return Ok(());
    }
    let missing = missing_tables(client, name, tables).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing_tables_error(name, &missing).into())
    }
}

fn missing_tables_error(name: &str, missing: &[TableRef]) -> PreflightError {
    PreflightError::PublicationMissingTables {
        publication: name.to_string(),
        tables: missing.iter().map(TableRef::to_string).collect(),
    }
}

async fn read_publication(client: &Client, name: &str) -> Result<Option<PublicationRow>> {
    let row = client
        .query_opt(
            "SELECT pg_get_userbyid(pubowner)::text, puballtables FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(ReplicationError::query(format!("reading publication {name:?}")))?;
    Ok(row.map(|r| PublicationRow {
        owner: r.get(0),
        all_tables: r.get(1),
    }))
}

/// Mapped tables the publication does not publish.
async fn missing_tables(client: &Client, name: &str, tables: &[TableRef]) -> Result<Vec<TableRef>> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(ReplicationError::query(format!("listing tables of publication {name:?}")))?;
    let published: Vec<TableRef> = rows
        .iter()
        .map(|r| TableRef::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    Ok(tables
        .iter()
        .filter(|t| !published.contains(t))
        .cloned()
        .collect())
}

/// Every mapped table must exist and be visible.
pub async fn check_tables_exist(client: &Client, tables: &[TableRef]) -> Result<()> {
    for table in tables {
        let row = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table.quoted()])
            .await
            .map_err(ReplicationError::query(format!("looking up table {table}")))?;
        if !row.get::<_, bool>(0) {
            return Err(PreflightError::TableNotFound {
                table: table.to_string(),
            }
            .into());
        }
    }
    Ok(())
}

fn table_list(tables: &[TableRef]) -> String {
    tables
        .iter()
        .map(TableRef::quoted)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn create_publication(client: &Client, name: &str, tables: &[TableRef]) -> Result<()> {
    let sql = format!(
        "CREATE PUBLICATION {} FOR TABLE {}",
        escape_identifier(name),
        table_list(tables)
    );
    match client.batch_execute(&sql).await {
        Ok(()) => {
            info!(tables = tables.len(), "created publication");
            Ok(())
        }
        Err(e) => {
            let reason = server_error_of(&e)
                .map(|s| s.message)
                .unwrap_or_else(|| e.to_string());
            let permission = e.code().map(|c| c.code() == "42501").unwrap_or(false);
            if permission {
                Err(PreflightError::CannotCreatePublication {
                    publication: name.to_string(),
                    role: current_user(client).await?,
                    tables: tables.iter().map(TableRef::to_string).collect(),
                    reason,
                }
                .into())
            } else {
                Err(ReplicationError::query(format!(
                    "creating publication {name:?}"
                ))(e))
            }
        }
    }
}

async fn add_tables(
    client: &Client,
    name: &str,
    publication: &PublicationRow,
    missing: &[TableRef],
) -> Result<()> {
    let sql = format!(
        "ALTER PUBLICATION {} ADD TABLE {}",
        escape_identifier(name),
        table_list(missing)
    );
    match client.batch_execute(&sql).await {
        Ok(()) => {
            info!(added = missing.len(), "added tables to publication");
            Ok(())
        }
        Err(e) if e.code().map(|c| c.code() == "42501").unwrap_or(false) => {
            Err(PreflightError::PublicationNotOwned {
                publication: name.to_string(),
                owner: publication.owner.clone(),
                role: current_user(client).await?,
                missing: missing.iter().map(TableRef::to_string).collect(),
            }
            .into())
        }
        Err(e) => Err(ReplicationError::query(format!(
            "adding tables to publication {name:?}"
        ))(e)),
    }
}

pub(crate) async fn current_user(client: &Client) -> Result<String> {
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(ReplicationError::query("reading current_user"))?;
    Ok(row.get(0))
}
