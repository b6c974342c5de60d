//! Config loading errors: every problem names the TOML key path it is about.

use std::fmt;

/// A line and column in the config file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem with the config, tied to the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// TOML key path, e.g. `pipelines[0].mappings[2].external_id.field`; empty for the
    /// document as a whole (a syntax error before any key).
    pub key: String,
    /// What is wrong and, where it helps, what to do about it.
    pub message: String,
    /// Where in the file, when known.
    pub location: Option<Location>,
}

impl KeyError {
    /// An error about `key` without a known location (filled in by the loader).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        KeyError {
            key: key.into(),
            message: message.into(),
            location: None,
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() {
            "(document)"
        } else {
            &self.key
        };
        write!(f, "{key}: {}", self.message)?;
        if let Some(loc) = self.location {
            write!(f, " (line {}, column {})", loc.line, loc.column)?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded. Never contains a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid config; one entry per problem.
    #[error("{}", render_list(.0))]
    Invalid(Vec<KeyError>),
}

impl ConfigError {
    /// The individual problems (empty for a read error).
    pub fn errors(&self) -> &[KeyError] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(errors) => errors,
        }
    }
}

/// One problem per line, prefixed with a count when there are several.
fn render_list(errors: &[KeyError]) -> String {
    match errors {
        [one] => format!("invalid config: {one}"),
        many => {
            let mut out = format!("invalid config ({} problems):", many.len());
            for e in many {
                out.push_str("\n  - ");
                out.push_str(&e.to_string());
            }
            out
        }
    }
}
