//! What the decoder knows about the database's own (non-built-in) types.
//!
//! pgoutput sends a Type message for each non-built-in column type before the Relation
//! that uses it, but that message carries only the OID, namespace and name: it does not
//! say "enum". So enums are registered by the caller (the replication layer can read
//! `SELECT oid, typarray FROM pg_type WHERE typtype = 'e'`), and produce [`Value::Enum`].
//! Domains are seen through automatically: their Type message names the base type, and
//! when that is a built-in `pg_catalog` type the domain's values parse as the base type.

use std::collections::{HashMap, HashSet};

use super::value::{self, parse_array, parse_with, Value, ValueError};

/// Postgres assigns OIDs from here up to user-created objects.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// Enum OIDs, domain aliases and type names, consulted when parsing column text.
#[derive(Debug, Clone, Default)]
pub struct TypeRegistry {
    enums: HashSet<u32>,
    /// enum array OID → enum OID
    enum_arrays: HashMap<u32, u32>,
    /// domain OID → built-in base type OID
    aliases: HashMap<u32, u32>,
    names: HashMap<u32, (String, String)>,
}

impl TypeRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare `oid` an enum type (and `array_oid`, its `pg_type.typarray`, an array of
    /// it), so its values become [`Value::Enum`].
    pub fn register_enum(&mut self, oid: u32, array_oid: Option<u32>) {
        self.enums.insert(oid);
        if let Some(a) = array_oid.filter(|&a| a != 0) {
            self.enum_arrays.insert(a, oid);
        }
    }

    pub fn is_enum(&self, oid: u32) -> bool {
        self.enums.contains(&oid)
    }

    /// Record a Type message. A domain over a built-in type becomes an alias of it.
    pub fn learn_type(&mut self, oid: u32, schema: &str, name: &str) {
        if schema == "pg_catalog" {
            if let Some(base) = value::builtin_oid_by_name(name) {
                self.aliases.insert(oid, base);
            }
        }
        self.names
            .insert(oid, (schema.to_string(), name.to_string()));
    }

    /// `(schema, name)` from the last Type message for `oid`.
    pub fn type_name(&self, oid: u32) -> Option<(&str, &str)> {
        self.names.get(&oid).map(|(s, n)| (s.as_str(), n.as_str()))
    }

    /// Like [`value::parse_text`], also knowing registered enums and learned domains.
    pub fn parse_text(&self, type_oid: u32, text: &str) -> Result<Value, ValueError> {
        let element = |oid: u32, t: &str| self.parse_text(oid, t);
        // Built-in types (OIDs below FirstNormalObjectId) are never enums or domains.
        if type_oid < FIRST_NORMAL_OBJECT_ID {
            return parse_with(type_oid, text, &element);
        }
        if self.enums.contains(&type_oid) {
            return Ok(Value::Enum {
                type_oid,
                label: text.to_string(),
            });
        }
        if let Some(&elem) = self.enum_arrays.get(&type_oid) {
            return parse_array(type_oid, elem, text, &element);
        }
        if let Some(&base) = self.aliases.get(&type_oid) {
            return match parse_with(base, text, &element)? {
                // Keep the domain's own OID on values we could not type.
                Value::Other { text, .. } => Ok(Value::Other { type_oid, text }),
                v => Ok(v),
            };
        }
        parse_with(type_oid, text, &element)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgoutput::value::Array;

    #[test]
    fn enums_and_enum_arrays() {
        let mut t = TypeRegistry::new();
        assert_eq!(
            t.parse_text(50000, "happy").unwrap(),
            Value::Other {
                type_oid: 50000,
                text: "happy".into()
            }
        );
        t.register_enum(50000, Some(49999));
        assert_eq!(
            t.parse_text(50000, "happy").unwrap(),
            Value::Enum {
                type_oid: 50000,
                label: "happy".into()
            }
        );
        assert_eq!(
            t.parse_text(49999, "{happy,NULL}").unwrap(),
            Value::Array(Array {
                element_oid: 50000,
                dims: vec![2],
                elements: vec![
                    Value::Enum {
                        type_oid: 50000,
                        label: "happy".into()
                    },
                    Value::Null
                ]
            })
        );
    }

    #[test]
    fn domains_parse_as_their_base_type() {
        let mut t = TypeRegistry::new();
        t.learn_type(60000, "pg_catalog", "int4");
        assert_eq!(t.parse_text(60000, "7").unwrap(), Value::Int4(7));
        assert!(t.parse_text(60000, "x").is_err());
        t.learn_type(60001, "public", "int4");
        assert!(matches!(
            t.parse_text(60001, "7").unwrap(),
            Value::Other { .. }
        ));
        assert_eq!(t.type_name(60001), Some(("public", "int4")));
    }
}
