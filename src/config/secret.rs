//! Secret references: `env:NAME` or `file:/path`, never the secret itself in the config.
//!
//! A [`Secret`] is parsed from the TOML as a [`SecretRef`] and resolved once at load time
//! into a [`secrecy::SecretString`]. `Debug` shows only the reference; no error message
//! ever contains a resolved value.

use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`: the value of environment variable `NAME`.
    Env(String),
    /// `file:/path`: the file's contents with one trailing newline (`\n` or `\r\n`) removed.
    File(String),
    /// The value written in the config itself: allowed only where the key says so (a
    /// database URL without a password). Never displayed.
    Inline,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
            SecretRef::Inline => write!(f, "(inline value)"),
        }
    }
}

/// Message for a value that is not a reference. Must not echo the value.
pub(crate) const INLINE_SECRET: &str = "inline secrets are not allowed: write `env:NAME` to \
     read an environment variable or `file:/path` to read a file";

impl TryFrom<String> for SecretRef {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("env:") {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err("`env:` must be followed by an environment variable name".into());
            }
            Ok(SecretRef::Env(name.to_string()))
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` must be followed by a file path".into());
            }
            Ok(SecretRef::File(path.to_string()))
        } else {
            Err(INLINE_SECRET.into())
        }
    }
}

/// Turns references into values. The default reads the process environment and files;
/// tests and dry runs substitute their own.
pub trait SecretResolver {
    /// The secret's value, or why it could not be read (without the value).
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, String>;
}

/// Reads `env:` from the process environment and `file:` from the filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvAndFiles;

impl SecretResolver for EnvAndFiles {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretString, String> {
        match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) => Ok(SecretString::from(v)),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {name} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {name} is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(SecretString::from(trim_newline(text))),
                Err(e) => Err(format!("cannot read {path}: {}", e.kind())),
            },
            SecretRef::Inline => Err("an inline value has no reference to resolve".into()),
        }
    }
}

/// Remove one trailing `\n` or `\r\n`.
fn trim_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// A secret from the config: its reference, and its value once resolved.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Secret {
    reference: SecretRef,
    value: Option<SecretString>,
}

/// Asked for a secret that was never resolved (the config was not loaded through
/// [`crate::config::Config::load`] or [`crate::config::Config::from_toml`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {reference} was not resolved")]
pub struct UnresolvedSecret {
    pub reference: String,
}

impl Secret {
    /// An unresolved secret for `reference`.
    pub fn new(reference: SecretRef) -> Self {
        Secret {
            reference,
            value: None,
        }
    }

    /// A value written inline in the config (already resolved).
    pub fn inline(value: String) -> Self {
        Secret {
            reference: SecretRef::Inline,
            value: Some(SecretString::from(value)),
        }
    }

    /// Where the secret comes from.
    pub fn reference(&self) -> &SecretRef {
        &self.reference
    }

    /// The resolved value. Use `secrecy::ExposeSecret` at the last moment.
    pub fn value(&self) -> Result<&SecretString, UnresolvedSecret> {
        self.value.as_ref().ok_or_else(|| UnresolvedSecret {
            reference: self.reference.to_string(),
        })
    }

    /// Resolve with `resolver`; the error is the resolver's reason.
    pub(crate) fn resolve(&mut self, resolver: &dyn SecretResolver) -> Result<(), String> {
        if self.reference == SecretRef::Inline {
            return Ok(());
        }
        self.value = Some(resolver.resolve(&self.reference)?);
        Ok(())
    }
}

impl TryFrom<String> for Secret {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        SecretRef::try_from(text).map(Secret::new)
    }
}

/// Serde `deserialize_with` for keys that may be written inline or by reference: a string
/// starting with `env:` or `file:` is a reference, anything else an inline value (which
/// [`crate::config`]'s static checks then judge, e.g. a database URL must hold no password).
pub(crate) fn inline_or_reference<'de, D>(d: D) -> Result<Secret, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    if text.starts_with("env:") || text.starts_with("file:") {
        Secret::try_from(text).map_err(serde::de::Error::custom)
    } else {
        Ok(Secret::inline(text))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.value.is_some() {
            "resolved"
        } else {
            "unresolved"
        };
        write!(f, "Secret({}, {state})", self.reference)
    }
}

impl PartialEq for Secret {
    /// Secrets compare by reference only.
    fn eq(&self, other: &Self) -> bool {
        self.reference == other.reference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_one_trailing_newline_only() {
        assert_eq!(trim_newline("abc\n".into()), "abc");
        assert_eq!(trim_newline("abc\r\n".into()), "abc");
        assert_eq!(trim_newline("abc\n\n".into()), "abc\n");
        assert_eq!(trim_newline("abc".into()), "abc");
    }

    #[test]
    fn inline_value_is_rejected_without_echo() {
        let err = SecretRef::try_from("hunter2".to_string()).unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(err.contains("env:"));
    }
}
