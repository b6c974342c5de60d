//! Saving and loading the store to a JSON Lines file, so demo data survives restarts.
//!
//! Line 1: `{"pgforceEmulatorSnapshot": 1}`; then one line per record
//! `{"type": "Account", "record": {...}}` (soft-deleted ones included) and one per delete-log
//! entry `{"type": "Account", "deleted": "001…", "at": "2024-…+0000"}`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;

use serde_json::{json, Value};

use super::ids::Id;
use super::store::Store;
use super::validation::{format_datetime, parse_datetime};

/// Snapshot I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot file {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line is not valid JSON of the documented shape.
    #[error("snapshot file {path}, line {line}: {message}")]
    Format {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Writes every record and delete-log entry to `path` (via a temporary file, then rename).
pub fn save(store: &Store, path: &Path) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
    writeln!(w, "{}", json!({"pgforceEmulatorSnapshot": 1})).map_err(io)?;
    for object in store.schema().objects() {
        let mut err = None;
        let _ = store.scan(&object.name, true, |r| {
            let line = json!({"type": object.name, "record": &**r});
            match writeln!(w, "{line}") {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    err = Some(e);
                    ControlFlow::Break(())
                }
            }
        });
        if let Some(e) = err {
            return Err(io(e));
        }
        for d in store.deletions(&object.name).unwrap_or_default() {
            let line = json!({"type": object.name, "deleted": d.id, "at": format_datetime(d.deleted_date)});
            writeln!(w, "{line}").map_err(io)?;
        }
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Loads a snapshot into `store`; returns the number of records loaded.
pub fn load(store: &Store, path: &Path) -> Result<usize, SnapshotError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| SnapshotError::Io {
        path: name.clone(),
        source,
    })?;
    let mut records = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| SnapshotError::Io {
            path: name.clone(),
            source,
        })?;
        let bad = |message: String| SnapshotError::Format {
            path: name.clone(),
            line: i + 1,
            message,
        };
        if i == 0 || line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let object = v.get("type").and_then(Value::as_str).unwrap_or_default();
        if let Some(Value::Object(r)) = v.get("record") {
            store
                .put_raw(object, r.clone())
                .map_err(|e| bad(e.message))?;
            records += 1;
        } else if let Some(id) = v.get("deleted").and_then(Value::as_str) {
            let id = Id::parse(id).map_err(|e| bad(e.to_string()))?;
            let at = v
                .get("at")
                .and_then(Value::as_str)
                .and_then(parse_datetime)
                .ok_or_else(|| bad("bad deletion time".to_string()))?;
            store
                .put_deletion(object, id, at)
                .map_err(|e| bad(e.message))?;
        } else {
            return Err(bad("expected a record or a deletion".to_string()));
        }
    }
    Ok(records)
}
