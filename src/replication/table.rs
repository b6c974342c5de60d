//! Table names as the caller maps them: `schema.table`, quoted safely for SQL.

use std::fmt;

use postgres_protocol::escape::escape_identifier;

/// A table by schema and name (unquoted, case as stored in the catalog).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> TableRef {
        TableRef {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `schema.table`, or `table` in schema `public`.
    pub fn parse(qualified: &str) -> TableRef {
        match qualified.split_once('.') {
            Some((schema, name)) => TableRef::new(schema, name),
            None => TableRef::new("public", qualified),
        }
    }

    /// `"schema"."table"`, safe to splice into SQL.
    pub fn quoted(&self) -> String {
        format!(
            "{}.{}",
            escape_identifier(&self.schema),
            escape_identifier(&self.name)
        )
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_quotes() {
        assert_eq!(TableRef::parse("t"), TableRef::new("public", "t"));
        let t = TableRef::parse("Sales.Order\"s");
        assert_eq!(t.quoted(), "\"Sales\".\"Order\"\"s\"");
        assert_eq!(t.to_string(), "Sales.Order\"s");
    }
}
