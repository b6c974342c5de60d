//! Maps byte spans in the TOML text to key paths (`pipelines[0].mappings[1].table`) and back.
//!
//! `toml`'s deserializer reports errors with a byte span but without array indices in the
//! key path. We parse the document once more into toml's spanned `DeTable` and index every
//! key and value by span, so a span becomes the path of the innermost entry holding it and
//! a path (from the semantic checks) becomes a line and column.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::Location;

/// Every key path in a document with its key span (if any) and its value span.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    entries: Vec<Entry>,
    line_starts: Vec<usize>,
}

/// One key path: where its key and its value are.
#[derive(Debug)]
struct Entry {
    path: String,
    key: Option<Range<usize>>,
    value: Range<usize>,
    /// The value, when it is a string.
    text: Option<String>,
}

impl SourceMap {
    /// Index `text`. A document that does not parse gives an empty map (the syntax error
    /// is reported by the deserializer with its own location).
    pub(crate) fn new(text: &str) -> Self {
        let mut map = SourceMap {
            entries: Vec::new(),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        };
        if let Ok(root) = DeTable::parse(text) {
            map.add_table("", root.get_ref());
        }
        map
    }

    /// Record every entry of a table under `prefix`; returns the union span of the table.
    fn add_table(&mut self, prefix: &str, table: &DeTable<'_>) -> Option<Range<usize>> {
        let mut union: Option<Range<usize>> = None;
        for (key, value) in table.iter() {
            let path = join_key(prefix, key.get_ref());
            let key_span = key.span();
            let value_span = self.add_value(&path, value);
            let whole = merge(Some(key_span.clone()), Some(value_span.clone()));
            self.entries.push(Entry {
                path,
                key: Some(key_span),
                value: value_span,
                text: value.get_ref().as_str().map(str::to_string),
            });
            union = merge(union, whole);
        }
        union
    }

    /// Record the children of a value under `path`; returns the value's (union) span.
    fn add_value(&mut self, path: &str, value: &Spanned<DeValue<'_>>) -> Range<usize> {
        let own = value.span();
        match value.get_ref() {
            DeValue::Table(t) => merge(Some(own.clone()), self.add_table(path, t)).unwrap_or(own),
            DeValue::Array(items) => {
                let mut union = own;
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    let span = self.add_value(&item_path, item);
                    self.entries.push(Entry {
                        path: item_path,
                        key: None,
                        value: span.clone(),
                        text: item.get_ref().as_str().map(str::to_string),
                    });
                    union = merge(Some(union), Some(span)).unwrap_or_default();
                }
                union
            }
            _ => own,
        }
    }

    /// The path of the innermost entry whose key or value contains `span`.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> Option<&str> {
        if let Some(e) = self.entries.iter().find(|e| e.key.as_ref() == Some(span)) {
            return Some(&e.path);
        }
        self.entries
            .iter()
            .filter(|e| {
                contains(&e.value, span) || e.key.as_ref().is_some_and(|k| contains(k, span))
            })
            .min_by_key(|e| e.value.len())
            .map(|e| e.path.as_str())
    }

    /// Direct children of `path` whose value is a string, with their paths.
    pub(crate) fn string_children(&self, path: &str) -> Vec<(&str, &str)> {
        self.entries
            .iter()
            .filter(|e| parent_path(&e.path) == Some(path))
            .filter_map(|e| Some((e.path.as_str(), e.text.as_deref()?)))
            .collect()
    }

    /// Where the value of `path` starts, or of its nearest existing ancestor.
    pub(crate) fn location_of(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == p) {
                let start = e.key.as_ref().map_or(e.value.start, |k| k.start);
                return Some(self.location(start));
            }
            p = parent_path(p)?;
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub(crate) fn location(&self, offset: usize) -> Location {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        Location {
            line,
            column: offset - self.line_starts[line - 1] + 1,
        }
    }
}

/// `prefix.key`, quoting keys that are not bare TOML keys.
fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The path one level up: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → none.
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    if let Some(stripped) = path.strip_suffix(']') {
        return stripped.rfind('[').map(|i| &path[..i]);
    }
    path.rfind('.').map(|i| &path[..i])
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn merge(a: Option<Range<usize>>, b: Option<Range<usize>>) -> Option<Range<usize>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.start.min(b.start)..a.end.max(b.end)),
        (a, None) => a,
        (None, b) => b,
    }
}
