//! [`Epoch`]: the changes gathered since the last flush, coalesced per object, key field
//! and key.
//!
//! Guarantees: a key appears at most once in an epoch (per object and key field). A delete
//! followed by a re-insert of the same key in one epoch becomes one upsert of the existing
//! record, on purpose: deleting and recreating it in Salesforce would lose what hangs off
//! the record there (its Id, activity history, owner, and child records Salesforce
//! cascade-deletes with it), which an ORM's "delete and insert again" never means. Fields
//! pgforce does not map keep their Salesforce values. Across epochs the delete has already
//! landed, and the re-insert creates a new record.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::lsn::Lsn;

/// What the batcher needs from a change.
pub trait Coalesce: Sized {
    /// The Salesforce object the change goes to.
    fn object(&self) -> &str;
    /// The field the key is a value of (the external id field). Two mappings onto one
    /// object with different external id fields never share keys.
    fn key_field(&self) -> &str;
    /// The external id (the key within the object and key field).
    fn key(&self) -> &str;
    fn is_delete(&self) -> bool;
    /// Fold an older change of the same key into this newer one (e.g. fill fields this one
    /// left unchanged from the older upsert). Only called when neither is a delete.
    fn absorb_older(&mut self, older: Self);
    /// Rough size in bytes once serialized, for the byte threshold.
    fn approx_bytes(&self) -> usize;
    /// The change holds a value the Bulk API's CSV cannot carry (a text of exactly `#N/A`,
    /// which Bulk reads as NULL), so it must go through sObject Collections (JSON).
    fn needs_json(&self) -> bool {
        false
    }
}

/// Where a change is batched: one object and the key field its keys belong to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    pub object: String,
    pub key_field: String,
}

/// One group's coalesced changes, in first-seen key order.
#[derive(Debug)]
pub struct GroupChanges<C> {
    pub upserts: Vec<C>,
    pub deletes: Vec<C>,
}

impl<C> Default for GroupChanges<C> {
    fn default() -> Self {
        GroupChanges {
            upserts: Vec::new(),
            deletes: Vec::new(),
        }
    }
}

impl<C> GroupChanges<C> {
    /// Changes held (each has an outcome of its own).
    pub fn len(&self) -> usize {
        self.upserts.len() + self.deletes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A drained epoch.
pub type Drained<C> = BTreeMap<Group, GroupChanges<C>>;

/// When an epoch is flushed: at a commit once it is due; inside a transaction only when it
/// reaches the size limits (the pipeline then finishes the part before the transaction).
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_rows: 10_000,
            max_bytes: 90 * 1024 * 1024,
            max_age: Duration::from_millis(1000),
        }
    }
}

/// Changes since the last flush: per group, per key, in first-seen key order.
#[derive(Debug)]
pub struct Epoch<C> {
    /// One entry per group, in first-seen order (an epoch holds a handful; found by a
    /// scan that allocates nothing).
    objects: Vec<(Group, ObjectChanges<C>)>,
    rows: usize,
    bytes: usize,
    started: Option<Instant>,
    /// End LSN of the last commit folded in.
    end_lsn: Lsn,
    /// Commit time of the oldest transaction in the epoch (for commit → applied latency).
    first_commit: Option<chrono::DateTime<chrono::Utc>>,
}

/// One group's changes: one slot per key, in first-seen key order; a newer change of a
/// key replaces its slot's change in place.
#[derive(Debug)]
struct ObjectChanges<C> {
    /// Key → its slot.
    index: HashMap<String, usize>,
    slots: Vec<C>,
}

impl<C> Default for ObjectChanges<C> {
    fn default() -> Self {
        ObjectChanges {
            index: HashMap::new(),
            slots: Vec::new(),
        }
    }
}

impl<C: Coalesce> Default for Epoch<C> {
    fn default() -> Self {
        Epoch {
            objects: Vec::new(),
            rows: 0,
            bytes: 0,
            started: None,
            end_lsn: Lsn::ZERO,
            first_commit: None,
        }
    }
}

impl<C: Coalesce> Epoch<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The position of `change`'s group in `objects` (created when new).
    fn group_of(&mut self, change: &C) -> usize {
        let found = self
            .objects
            .iter()
            .position(|(g, _)| g.object == change.object() && g.key_field == change.key_field());
        found.unwrap_or_else(|| {
            let group = Group {
                object: change.object().to_string(),
                key_field: change.key_field().to_string(),
            };
            self.objects.push((group, ObjectChanges::default()));
            self.objects.len() - 1
        })
    }

    /// Add a change, coalescing it with an earlier change of the same key: the newer
    /// upsert absorbs an older upsert; a delete supersedes everything before it; an upsert
    /// after a delete replaces it (see the module doc).
    pub fn push(&mut self, change: C) {
        self.started.get_or_insert_with(Instant::now);
        let g = self.group_of(&change);
        let object = &mut self.objects[g].1;
        match object.index.get(change.key()) {
            Some(&i) => {
                let slot = &mut object.slots[i];
                let older = std::mem::replace(slot, change);
                let older_bytes = older.approx_bytes();
                if !slot.is_delete() && !older.is_delete() {
                    slot.absorb_older(older);
                }
                self.bytes = self.bytes.saturating_sub(older_bytes) + slot.approx_bytes();
            }
            None => {
                self.bytes += change.approx_bytes();
                self.rows += 1;
                object
                    .index
                    .insert(change.key().to_string(), object.slots.len());
                object.slots.push(change);
            }
        }
    }

    /// Apply `f` to the held change of `key` (of any key field) of `object`, if any.
    pub fn update_key(&mut self, object: &str, key: &str, mut f: impl FnMut(&mut C)) {
        for (group, oc) in self.objects.iter_mut() {
            if group.object == object {
                if let Some(&i) = oc.index.get(key) {
                    f(&mut oc.slots[i]);
                }
            }
        }
    }

    /// Apply `f` to every held upsert (not to deletes).
    pub fn for_each_upsert_mut(&mut self, mut f: impl FnMut(&mut C)) {
        for (_, oc) in self.objects.iter_mut() {
            oc.slots
                .iter_mut()
                .filter(|c| !c.is_delete())
                .for_each(&mut f);
        }
    }

    /// Note that a transaction committed; the epoch may now be cut here.
    pub fn commit(&mut self, end_lsn: Lsn, commit_time: chrono::DateTime<chrono::Utc>) {
        self.end_lsn = self.end_lsn.max(end_lsn);
        if self.rows > 0 {
            self.first_commit.get_or_insert(commit_time);
        }
    }

    /// Changes held after coalescing (distinct keys).
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    pub fn first_commit(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.first_commit
    }

    /// Should the epoch be flushed at this commit?
    pub fn due(&self, policy: &FlushPolicy) -> bool {
        if self.rows == 0 {
            return false;
        }
        self.rows >= policy.max_rows
            || self.bytes >= policy.max_bytes
            || self.started.is_some_and(|t| t.elapsed() >= policy.max_age)
    }

    /// Take the coalesced changes: per group, upserts and deletes in first-seen order.
    pub fn drain(&mut self) -> Drained<C> {
        let objects = std::mem::take(&mut self.objects);
        self.rows = 0;
        self.bytes = 0;
        self.started = None;
        self.first_commit = None;
        objects
            .into_iter()
            .map(|(group, oc)| {
                let (deletes, upserts) = oc.slots.into_iter().partition(|c| c.is_delete());
                (group, GroupChanges { upserts, deletes })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct T {
        obj: &'static str,
        key: &'static str,
        del: bool,
        fields: Vec<(&'static str, Option<&'static str>)>,
    }

    impl Coalesce for T {
        fn object(&self) -> &str {
            self.obj
        }
        fn key_field(&self) -> &str {
            "Ext__c"
        }
        fn key(&self) -> &str {
            self.key
        }
        fn is_delete(&self) -> bool {
            self.del
        }
        fn absorb_older(&mut self, older: Self) {
            for (f, v) in older.fields {
                if let Some(slot) = self.fields.iter_mut().find(|(n, _)| *n == f) {
                    if slot.1.is_none() {
                        slot.1 = v;
                    }
                }
            }
        }
        fn approx_bytes(&self) -> usize {
            10
        }
    }

    fn up(key: &'static str, fields: Vec<(&'static str, Option<&'static str>)>) -> T {
        T {
            obj: "Account",
            key,
            del: false,
            fields,
        }
    }
    fn del(key: &'static str) -> T {
        T {
            obj: "Account",
            key,
            del: true,
            fields: vec![],
        }
    }

    #[test]
    fn latest_change_of_a_key_wins_and_keeps_unchanged_fields() {
        let mut e = Epoch::new();
        e.push(up("1", vec![("Name", Some("a")), ("Big", Some("blob"))]));
        e.push(up("1", vec![("Name", Some("b")), ("Big", None)]));
        e.push(up("2", vec![("Name", Some("c"))]));
        assert_eq!(e.rows(), 2);
        let out = e.drain();
        let g = &out[&account()];
        let (ups, dels) = (&g.upserts, &g.deletes);
        assert!(dels.is_empty());
        assert_eq!(
            ups[0].fields,
            vec![("Name", Some("b")), ("Big", Some("blob"))]
        );
        assert_eq!(ups[1].key, "2");
        assert!(e.is_empty());
    }

    fn account() -> Group {
        Group {
            object: "Account".into(),
            key_field: "Ext__c".into(),
        }
    }

    #[test]
    fn delete_supersedes_and_reinsert_keeps_the_record() {
        let mut e = Epoch::new();
        e.push(up("1", vec![("Name", Some("a"))]));
        e.push(del("1"));
        e.push(up("2", vec![("Name", Some("x")), ("Big", Some("old"))]));
        e.push(del("2"));
        e.push(up("2", vec![("Name", Some("y")), ("Big", None)]));
        assert_eq!(e.rows(), 2);
        let out = e.drain();
        let g = &out[&account()];
        assert_eq!(g.deletes.len(), 1);
        assert_eq!(g.deletes[0].key, "1");
        // The re-insert is one upsert of the existing record; it does not take values
        // from before the delete.
        assert_eq!(g.upserts.len(), 1);
        assert_eq!(
            g.upserts[0].fields,
            vec![("Name", Some("y")), ("Big", None)]
        );
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn a_key_keeps_its_first_seen_place_however_often_it_changes() {
        let mut e = Epoch::new();
        for key in ["1", "2", "1", "3", "2", "1"] {
            e.push(up(key, vec![("Name", Some(key))]));
        }
        e.push(T {
            obj: "Contact",
            ..up("1", vec![])
        });
        assert_eq!(e.rows(), 4);
        let mut seen = 0;
        e.update_key("Account", "2", |_| seen += 1);
        assert_eq!(seen, 1);
        let out = e.drain();
        let keys: Vec<_> = out[&account()].upserts.iter().map(|c| c.key).collect();
        assert_eq!(keys, ["1", "2", "3"]);
        assert_eq!(out.len(), 2, "Account and Contact");
        assert!(e.is_empty() && e.drain().is_empty());
    }

    #[test]
    fn due_by_rows_and_age() {
        let mut e = Epoch::new();
        let p = FlushPolicy {
            max_rows: 2,
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(3600),
        };
        assert!(!e.due(&p));
        e.push(up("1", vec![]));
        assert!(!e.due(&p));
        e.push(up("2", vec![]));
        assert!(e.due(&p));
        let mut e2 = Epoch::new();
        e2.push(up("1", vec![]));
        let p0 = FlushPolicy {
            max_age: Duration::ZERO,
            ..p
        };
        assert!(e2.due(&p0));
    }
}
