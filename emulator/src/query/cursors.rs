//! Query cursors behind `nextRecordsUrl`: the full result of a query, materialized once and
//! served page by page, expiring after 15 minutes without use. At most [`MAX_CURSORS`] stay
//! open; opening one more evicts the least recently used (Salesforce caps open cursors per
//! user in the same spirit).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

use crate::soql::Record;

/// Inactivity after which a cursor is gone.
pub const CURSOR_TTL_MINUTES: i64 = 15;
/// Open cursors kept at most.
pub const MAX_CURSORS: usize = 64;

/// One open cursor.
#[derive(Debug)]
pub struct Cursor {
    /// Every result row, in REST shape.
    pub records: Arc<Vec<Record>>,
    /// Page size chosen by the first request.
    pub batch_size: usize,
    /// Last time a page was read.
    pub last_used: DateTime<Utc>,
}

/// Where a followed locator points.
#[derive(Debug, Clone)]
pub struct Position {
    /// Every row of the cursor.
    pub records: Arc<Vec<Record>>,
    /// Offset of the requested page.
    pub offset: usize,
    /// Page size.
    pub batch_size: usize,
    /// Cursor id.
    pub id: String,
}

/// The open cursors of one emulator.
#[derive(Debug, Default)]
pub struct Cursors {
    open: Mutex<HashMap<String, Cursor>>,
}

/// Why a locator cannot be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid query locator")]
pub struct InvalidLocator;

impl Cursors {
    /// Opens a cursor under `id`, evicting expired ones and, past the cap, the least recently
    /// used.
    pub fn open(
        &self,
        id: String,
        records: Arc<Vec<Record>>,
        batch_size: usize,
        now: DateTime<Utc>,
    ) {
        let mut open = self.open.lock();
        open.retain(|_, c| !expired(c, now));
        while open.len() >= MAX_CURSORS {
            let oldest = open
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => open.remove(&k),
                None => break,
            };
        }
        open.insert(
            id,
            Cursor {
                records,
                batch_size,
                last_used: now,
            },
        );
    }

    /// The rows behind locator `{cursorId}-{offset}` and the page size, touching the cursor.
    pub fn follow(&self, locator: &str, now: DateTime<Utc>) -> Result<Position, InvalidLocator> {
        let (id, offset) = locator.rsplit_once('-').ok_or(InvalidLocator)?;
        let offset: usize = offset.parse().map_err(|_| InvalidLocator)?;
        let mut open = self.open.lock();
        let cursor = open.get_mut(id).ok_or(InvalidLocator)?;
        if expired(cursor, now) {
            open.remove(id);
            return Err(InvalidLocator);
        }
        if offset > cursor.records.len() {
            return Err(InvalidLocator);
        }
        cursor.last_used = now;
        Ok(Position {
            records: cursor.records.clone(),
            offset,
            batch_size: cursor.batch_size,
            id: id.to_string(),
        })
    }

    /// How many cursors are open.
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    /// Whether no cursor is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `c` has been idle too long.
fn expired(c: &Cursor, now: DateTime<Utc>) -> bool {
    now - c.last_used > Duration::minutes(CURSOR_TTL_MINUTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_expire_and_are_bounded() {
        let c = Cursors::default();
        let t0 = Utc::now();
        c.open("a".into(), Arc::new(vec![Record::new(); 3]), 200, t0);
        assert!(c.follow("a-2", t0).is_ok());
        assert!(c.follow("a-4", t0).is_err());
        assert!(c.follow("a-x", t0).is_err());
        assert!(c.follow("a-1", t0 + Duration::minutes(16)).is_err());
        for i in 0..(MAX_CURSORS + 5) {
            c.open(format!("c{i}"), Arc::new(Vec::new()), 200, t0);
        }
        assert_eq!(c.len(), MAX_CURSORS);
    }
}
