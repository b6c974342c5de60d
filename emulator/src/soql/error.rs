//! [`SoqlError`]: Salesforce's error codes and message shapes for a failed query.

/// A query that Salesforce would refuse, with its `errorCode` and `message`.
///
/// Positional errors carry Salesforce's prefix: a newline, the echoed line of the query, a caret
/// under the offending column, and `ERROR at Row:R:Column:C`, then the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, `INVALID_QUERY_FILTER_OPERATOR` or
    /// `NUMBER_OUTSIDE_VALID_RANGE`.
    pub code: &'static str,
    /// The message, exactly as the REST error body's `message` should read.
    pub message: String,
}

/// `errorCode` for syntax errors.
pub const MALFORMED_QUERY: &str = "MALFORMED_QUERY";
/// `errorCode` for unknown fields, unknown relationships and mistyped filter values.
pub const INVALID_FIELD: &str = "INVALID_FIELD";
/// `errorCode` for an unknown sObject type.
pub const INVALID_TYPE: &str = "INVALID_TYPE";
/// `errorCode` for an operator that does not apply to a field, or a malformed id value.
pub const INVALID_QUERY_FILTER_OPERATOR: &str = "INVALID_QUERY_FILTER_OPERATOR";
/// `errorCode` for an OFFSET beyond 2,000.
pub const NUMBER_OUTSIDE_VALID_RANGE: &str = "NUMBER_OUTSIDE_VALID_RANGE";

impl SoqlError {
    /// An error without a position prefix.
    pub(crate) fn plain(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An error pointing at byte offset `pos` of `soql`.
    pub(crate) fn at(code: &'static str, soql: &str, pos: usize, reason: &str) -> Self {
        Self::plain(code, format!("{}{reason}", position_prefix(soql, pos)))
    }

    /// `unexpected token: 'TOKEN'` at byte offset `pos`.
    pub(crate) fn unexpected(soql: &str, pos: usize, token: &str) -> Self {
        Self::at(
            MALFORMED_QUERY,
            soql,
            pos,
            &format!("unexpected token: '{token}'"),
        )
    }

    /// `No such column 'FIELD' on entity 'OBJECT'. …` at byte offset `pos`.
    pub(crate) fn no_such_column(soql: &str, pos: usize, field: &str, object: &str) -> Self {
        let reason = format!(
            "No such column '{field}' on entity '{object}'. If you are attempting to use a \
             custom field, be sure to append the '__c' after the custom field name. Please \
             reference your WSDL or the describe call for the appropriate names."
        );
        Self::at(INVALID_FIELD, soql, pos, &reason)
    }

    /// `Didn't understand relationship 'NAME' in field path. …` at byte offset `pos`.
    pub(crate) fn bad_relationship(soql: &str, pos: usize, relationship: &str) -> Self {
        let reason = format!(
            "Didn't understand relationship '{relationship}' in field path. If you are \
             attempting to use a custom relationship, be sure to append the '__r' after the \
             custom relationship name. Please reference your WSDL or the describe call for the \
             appropriate names."
        );
        Self::at(INVALID_FIELD, soql, pos, &reason)
    }

    /// `sObject type 'NAME' is not supported. …` at byte offset `pos`.
    pub(crate) fn unknown_object(soql: &str, pos: usize, object: &str) -> Self {
        let reason = format!(
            "sObject type '{object}' is not supported. If you are attempting to use a custom \
             object, be sure to append the '__c' after the entity name. Please reference your \
             WSDL or the describe call for the appropriate names."
        );
        Self::at(INVALID_TYPE, soql, pos, &reason)
    }
}

/// The `\n<line>\n<caret>\nERROR at Row:R:Column:C\n` prefix for byte offset `pos` of `soql`.
///
/// Salesforce echoes a window of the query; this echoes the whole line holding `pos`. Row and
/// column are 1-based and count characters, not bytes.
fn position_prefix(soql: &str, pos: usize) -> String {
    let pos = floor_char_boundary(soql, pos.min(soql.len()));
    let line_start = soql[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_end = soql[pos..].find('\n').map_or(soql.len(), |i| pos + i);
    let row = soql[..pos].matches('\n').count() + 1;
    let column = soql[line_start..pos].chars().count() + 1;
    let line = soql[line_start..line_end].trim_end_matches('\r');
    let caret = " ".repeat(column - 1);
    format!("\n{line}\n{caret}^\nERROR at Row:{row}:Column:{column}\n")
}

/// The largest char boundary at or below `pos`.
fn floor_char_boundary(s: &str, mut pos: usize) -> usize {
    while pos > 0 && !s.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_points_at_column() {
        let e = SoqlError::unexpected("SELECT Id FRM Account", 10, "FRM");
        assert_eq!(
            e.message,
            "\nSELECT Id FRM Account\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FRM'"
        );
        assert_eq!(e.code, MALFORMED_QUERY);
    }

    #[test]
    fn prefix_counts_rows_and_chars() {
        let e = SoqlError::unexpected("SELECT Id\nFROM Ä X", 18, "X");
        assert!(e
            .message
            .starts_with("\nFROM Ä X\n       ^\nERROR at Row:2:Column:8\n"));
    }

    #[test]
    fn prefix_survives_odd_offsets() {
        let e = SoqlError::unexpected("Ä", 1, "<EOF>");
        assert!(e.message.contains("Column:1"));
        let e = SoqlError::unexpected("", 5, "<EOF>");
        assert!(e.message.contains("Row:1:Column:1"));
    }
}
