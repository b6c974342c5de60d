//! The database's own types as the decoder must know them, read from the catalog once:
//! enums (and their array types) and domains over built-in types.
//!
//! One registry serves the backfill and the stream alike, so a row typed while backfilling
//! becomes exactly the values the same row becomes when it arrives through the slot. For a
//! domain it records what pgoutput's Type message says: the base type after resolving
//! domains over domains (`getBaseType`), aliased only when that base is a `pg_catalog`
//! type.

use tokio_postgres::GenericClient;

use super::error::ReplicationError;
use crate::pgoutput::types::TypeRegistry;

/// Enums, enum arrays and domains of the connected database.
pub async fn load_types<C: GenericClient>(client: &C) -> Result<TypeRegistry, ReplicationError> {
    let mut types = TypeRegistry::new();
    let q = |what: &str| ReplicationError::query(format!("reading {what}"));
    let enums = client
        .query("SELECT oid, typarray FROM pg_type WHERE typtype = 'e'", &[])
        .await
        .map_err(q("enum types"))?;
    for r in enums {
        let array: u32 = r.get(1);
        types.register_enum(r.get(0), (array != 0).then_some(array));
    }
    let domains = client
        .query(
            "WITH RECURSIVE d(oid, base) AS (
                 SELECT oid, typbasetype FROM pg_type WHERE typtype = 'd'
                 UNION ALL
                 SELECT d.oid, t.typbasetype FROM d JOIN pg_type t ON t.oid = d.base
                  WHERE t.typtype = 'd')
             SELECT d.oid, n.nspname::text, t.typname::text
               FROM d JOIN pg_type t ON t.oid = d.base
               JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE t.typtype <> 'd'",
            &[],
        )
        .await
        .map_err(q("domain types"))?;
    for r in domains {
        let (schema, name): (String, String) = (r.get(1), r.get(2));
        types.learn_type(r.get(0), &schema, &name);
    }
    Ok(types)
}
