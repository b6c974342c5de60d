//! Checks run before replicating, so misconfigurations fail early with a fix in the message.
//!
//! [`preflight`] collects every problem it finds (not just the first) into
//! [`PreflightErrors`]: server version, `wal_level`, the REPLICATION attribute, each
//! mapped table's replica identity, the publication (exists, publishes every mapped
//! table, or can be created/extended by us), and the slot (usable, not in use by another
//! process, not invalidated) or, when it must be created, a free slot.

use tokio_postgres::Client;
use tracing::instrument;

use super::error::{PreflightError, PreflightErrors, ReplicationError, Result};
use super::publication::current_user;
use super::slot::{check_slot_usable, read_slot, server_version_num};
use super::table::TableRef;

/// What the pipeline is about to use.
#[derive(Debug, Clone)]
pub struct PreflightSpec {
    pub slot: String,
    pub publication: String,
    pub tables: Vec<TableRef>,
    /// pgforce may create the publication / add tables to it.
    pub manage_publication: bool,
}

/// Run all checks; `Err(ReplicationError::PreflightMany)` lists every problem found.
#[instrument(skip_all, fields(slot = %spec.slot, publication = %spec.publication))]
pub async fn preflight(client: &Client, spec: &PreflightSpec) -> Result<()> {
    let mut problems = Vec::new();
    let version = server_version_num(client).await?;
    if version < 140000 {
        problems.push(PreflightError::UnsupportedServerVersion {
            version: version.to_string(),
        });
        return Err(PreflightErrors(problems).into());
    }
    problems.extend(check_wal_level(client).await?);
    problems.extend(check_replication_role(client).await?);
    let existing = check_tables(client, &spec.tables).await?;
    problems.extend(existing.1);
    problems.extend(check_publication_access(client, spec, &existing.0).await?);
    problems.extend(check_slot(client, &spec.slot).await?);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PreflightErrors(problems).into())
    }
}

async fn setting(client: &Client, name: &str) -> Result<String> {
    let row = client
        .query_one("SELECT current_setting($1)", &[&name])
        .await
        .map_err(ReplicationError::query(format!("reading setting {name}")))?;
    Ok(row.get(0))
}

/// `wal_level` must be `logical`.
pub async fn check_wal_level(client: &Client) -> Result<Option<PreflightError>> {
    let actual = setting(client, "wal_level").await?;
    Ok((actual != "logical").then_some(PreflightError::WalLevelNotLogical { actual }))
}

/// The role must be a superuser or have REPLICATION.
pub async fn check_replication_role(client: &Client) -> Result<Option<PreflightError>> {
    let row = client
        .query_one(
            "SELECT rolname::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(ReplicationError::query("reading the role's attributes"))?;
    let (role, ok): (String, bool) = (row.get(0), row.get(1));
    Ok((!ok).then_some(PreflightError::MissingReplicationPrivilege { role }))
}

/// Each table must exist and identify its rows (primary key, replica identity index, or
/// FULL). Returns the tables that exist and the problems found.
pub async fn check_tables(
    client: &Client,
    tables: &[TableRef],
) -> Result<(Vec<TableRef>, Vec<PreflightError>)> {
    let mut existing = Vec::new();
    let mut problems = Vec::new();
    for table in tables {
        let row = client
            .query_opt(
                "SELECT c.relreplident::text,
                        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)
                   FROM pg_class c WHERE c.oid = to_regclass($1)",
                &[&table.quoted()],
            )
            .await
            .map_err(ReplicationError::query(format!("reading replica identity of {table}")))?;
        let Some(row) = row else {
            problems.push(PreflightError::TableNotFound {
                table: table.to_string(),
            });
            continue;
        };
        existing.push(table.clone());
        let (ident, has_pk, has_ident_index): (String, bool, bool) =
            (row.get(0), row.get(1), row.get(2));
        let identity = match ident.as_str() {
            "d" if !has_pk => Some("DEFAULT, but there is no primary key"),
            "n" => Some("NOTHING"),
            "i" if !has_ident_index => Some("USING INDEX, but the index is gone"),
            _ => None,
        };
        if let Some(identity) = identity {
            problems.push(PreflightError::NoReplicaIdentity {
                table: table.to_string(),
                identity: identity.to_string(),
            });
        }
    }
    Ok((existing, problems))
}

/// The publication must publish every table, or we must be able to make it so.
async fn check_publication_access(
    client: &Client,
    spec: &PreflightSpec,
    tables: &[TableRef],
) -> Result<Option<PreflightError>> {
    let publication = &spec.publication;
    let row = client
        .query_opt(
            "SELECT pg_get_userbyid(pubowner)::text, puballtables, pubowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
               FROM pg_publication WHERE pubname = $1",
            &[publication],
        )
        .await
        .map_err(ReplicationError::query(format!("reading publication {publication:?}")))?;
    let is_super = is_superuser(client).await?;
    let role = current_user(client).await?;
    let Some(row) = row else {
        if !spec.manage_publication {
            return Ok(Some(PreflightError::PublicationMissing {
                publication: publication.clone(),
            }));
        }
        return check_can_create(client, spec, tables, &role, is_super).await;
    };
    let (owner, all_tables, owned): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if all_tables {
        return Ok(None);
    }
    let published = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[publication],
        )
        .await
        .map_err(ReplicationError::query(format!("listing publication {publication:?}")))?;
    let published: Vec<TableRef> = published
        .iter()
        .map(|r| TableRef::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let missing: Vec<String> = tables
        .iter()
        .filter(|t| !published.contains(t))
        .map(TableRef::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    if !spec.manage_publication {
        return Ok(Some(PreflightError::PublicationMissingTables {
            publication: publication.clone(),
            tables: missing,
        }));
    }
    if !owned && !is_super {
        return Ok(Some(PreflightError::PublicationNotOwned {
            publication: publication.clone(),
            owner,
            role,
            missing,
        }));
    }
    Ok(None)
}

/// Creating a publication FOR TABLE needs CREATE on the database and ownership of the tables.
async fn check_can_create(
    client: &Client,
    spec: &PreflightSpec,
    tables: &[TableRef],
    role: &str,
    is_super: bool,
) -> Result<Option<PreflightError>> {
    if is_super {
        return Ok(None);
    }
    let row = client
        .query_one(
            "SELECT has_database_privilege(current_database(), 'CREATE')",
            &[],
        )
        .await
        .map_err(ReplicationError::query("checking CREATE on the database"))?;
    let mut reasons = Vec::new();
    if !row.get::<_, bool>(0) {
        reasons.push(format!(
            "role lacks CREATE on the database (`GRANT CREATE ON DATABASE ... TO {role}`)"
        ));
    }
    for table in tables {
        let row = client
            .query_one(
                "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)",
                &[&table.quoted()],
            )
            .await
            .map_err(ReplicationError::query(format!(
                "checking ownership of {table}"
            )))?;
        if !row.get::<_, bool>(0) {
            reasons.push(format!("role does not own {table}"));
        }
    }
    if reasons.is_empty() {
        return Ok(None);
    }
    Ok(Some(PreflightError::CannotCreatePublication {
        publication: spec.publication.clone(),
        role: role.to_string(),
        tables: tables.iter().map(TableRef::to_string).collect(),
        reason: reasons.join("; "),
    }))
}

async fn is_superuser(client: &Client) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(ReplicationError::query("reading rolsuper"))?;
    Ok(row.get(0))
}

/// An existing slot must be usable; a missing one needs a free slot.
pub async fn check_slot(client: &Client, slot: &str) -> Result<Option<PreflightError>> {
    if let Some(info) = read_slot(client, slot).await? {
        return Ok(check_slot_usable(&info).err());
    }
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_replication_slots), current_setting('max_replication_slots')::bigint",
            &[],
        )
        .await
        .map_err(ReplicationError::query("counting replication slots"))?;
    let (used, max): (i64, i64) = (row.get(0), row.get(1));
    Ok((used >= max).then_some(PreflightError::SlotsExhausted { max }))
}
