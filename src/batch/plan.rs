//! Cutting a drained epoch into ordered flush steps.
//!
//! Order: upserts parents-first, then deletes children-first (objects not in the order last, alphabetically). Each step holds
//! one object and one key field, at most `max_rows` changes and roughly at most
//! `max_bytes` of payload; upserts whose values Bulk CSV cannot carry get steps of their own
//! marked [`Step::json_only`].

use super::coalesce::{Coalesce, Drained, Group, GroupChanges};

/// Whether a step upserts or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Upsert,
    Delete,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Upsert => "upsert",
            StepKind::Delete => "delete",
        }
    }
}

/// How large a step may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    pub max_rows: usize,
    /// Payload bytes (as [`Coalesce::approx_bytes`] counts them); a single change larger
    /// than this still gets a step of its own.
    pub max_bytes: usize,
}

impl StepLimits {
    /// Limits by row count only.
    pub fn rows(max_rows: usize) -> Self {
        StepLimits {
            max_rows,
            max_bytes: usize::MAX,
        }
    }
}

/// One flush step: one object and key field, one kind.
#[derive(Debug)]
pub struct Step<C> {
    pub object: String,
    /// The external id field every change of the step is keyed by.
    pub key_field: String,
    pub kind: StepKind,
    /// The changes must go through a JSON path (sObject Collections), not Bulk CSV.
    pub json_only: bool,
    pub changes: Vec<C>,
}

/// Order the drained changes into steps (see the module doc).
pub fn plan_steps<C: Coalesce>(
    drained: Drained<C>,
    order: &[String],
    limits: StepLimits,
) -> Vec<Step<C>> {
    let groups = ordered(drained, order);
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for (group, changes) in groups {
        let GroupChanges {
            upserts: ups,
            deletes: dels,
        } = changes;
        let (json, csv): (Vec<C>, Vec<C>) = ups.into_iter().partition(|c| c.needs_json());
        upserts.extend(chunk(&group, StepKind::Upsert, false, csv, limits));
        upserts.extend(chunk(&group, StepKind::Upsert, true, json, limits));
        deletes.push(chunk(&group, StepKind::Delete, false, dels, limits));
    }
    deletes.reverse();
    let mut steps = upserts;
    steps.extend(deletes.into_iter().flatten());
    steps
}

/// Groups parents-first: by the position of their object in `order`, unknown objects last
/// (alphabetically), then by key field.
fn ordered<C>(drained: Drained<C>, order: &[String]) -> Vec<(Group, GroupChanges<C>)> {
    let mut groups: Vec<(Group, GroupChanges<C>)> = drained.into_iter().collect();
    groups.sort_by(|(a, _), (b, _)| {
        let rank = |g: &Group| {
            order
                .iter()
                .position(|o| *o == g.object)
                .unwrap_or(usize::MAX)
        };
        rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
    });
    groups
}

fn chunk<C: Coalesce>(
    group: &Group,
    kind: StepKind,
    json_only: bool,
    changes: Vec<C>,
    limits: StepLimits,
) -> Vec<Step<C>> {
    let max_rows = limits.max_rows.max(1);
    let mut steps = Vec::new();
    let mut current: Vec<C> = Vec::new();
    let mut bytes = 0usize;
    for c in changes {
        let size = c.approx_bytes();
        if !current.is_empty()
            && (current.len() >= max_rows || bytes.saturating_add(size) > limits.max_bytes)
        {
            steps.push(step(group, kind, json_only, std::mem::take(&mut current)));
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        current.push(c);
    }
    if !current.is_empty() {
        steps.push(step(group, kind, json_only, current));
    }
    steps
}

fn step<C>(group: &Group, kind: StepKind, json_only: bool, changes: Vec<C>) -> Step<C> {
    Step {
        object: group.object.clone(),
        key_field: group.key_field.clone(),
        kind,
        json_only,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Epoch;
    use super::*;

    #[derive(Debug)]
    struct T {
        obj: &'static str,
        field: &'static str,
        key: String,
        del: bool,
        bytes: usize,
        na: bool,
    }

    impl Coalesce for T {
        fn object(&self) -> &str {
            self.obj
        }
        fn key_field(&self) -> &str {
            self.field
        }
        fn key(&self) -> &str {
            &self.key
        }
        fn is_delete(&self) -> bool {
            self.del
        }
        fn absorb_older(&mut self, _older: Self) {}
        fn approx_bytes(&self) -> usize {
            self.bytes
        }
        fn needs_json(&self) -> bool {
            self.na
        }
    }

    fn t(obj: &'static str, key: u32, del: bool) -> T {
        T {
            obj,
            field: "Ext__c",
            key: key.to_string(),
            del,
            bytes: 10,
            na: false,
        }
    }

    fn shape(steps: &[Step<T>]) -> Vec<(&str, &str, StepKind, bool, usize)> {
        steps
            .iter()
            .map(|s| {
                (
                    s.object.as_str(),
                    s.key_field.as_str(),
                    s.kind,
                    s.json_only,
                    s.changes.len(),
                )
            })
            .collect()
    }

    #[test]
    fn parents_first_for_upserts_children_first_for_deletes() {
        let mut e = Epoch::new();
        for (obj, key, del) in [
            ("Contact", 1, false),
            ("Contact", 2, false),
            ("Contact", 3, false),
            ("Contact", 4, true),
            ("Account", 5, false),
            ("Account", 6, true),
            ("Zed__c", 7, false),
        ] {
            e.push(t(obj, key, del));
        }
        let order = ["Account".to_string(), "Contact".to_string()];
        let steps = plan_steps(e.drain(), &order, StepLimits::rows(2));
        use StepKind::*;
        assert_eq!(
            shape(&steps),
            vec![
                ("Account", "Ext__c", Upsert, false, 1),
                ("Contact", "Ext__c", Upsert, false, 2),
                ("Contact", "Ext__c", Upsert, false, 1),
                ("Zed__c", "Ext__c", Upsert, false, 1),
                ("Contact", "Ext__c", Delete, false, 1),
                ("Account", "Ext__c", Delete, false, 1),
            ]
        );
    }

    #[test]
    fn two_key_fields_on_one_object_never_share_a_step_or_a_key() {
        let mut e = Epoch::new();
        e.push(t("Contact", 1, false));
        e.push(T {
            field: "Email",
            ..t("Contact", 1, false)
        });
        let steps = plan_steps(e.drain(), &[], StepLimits::rows(100));
        use StepKind::*;
        assert_eq!(
            shape(&steps),
            vec![
                ("Contact", "Email", Upsert, false, 1),
                ("Contact", "Ext__c", Upsert, false, 1),
            ]
        );
    }

    #[test]
    fn steps_are_cut_by_bytes_too() {
        let mut e = Epoch::new();
        for key in 0..10 {
            e.push(T {
                bytes: 40,
                ..t("Account", key, false)
            });
        }
        e.push(T {
            bytes: 500,
            ..t("Account", 99, false)
        });
        let limits = StepLimits {
            max_rows: 1000,
            max_bytes: 100,
        };
        let sizes: Vec<usize> = plan_steps(e.drain(), &[], limits)
            .iter()
            .map(|s| s.changes.len())
            .collect();
        // 2 × 40 fit in 100; the oversized change still gets a step of its own.
        assert_eq!(sizes, vec![2, 2, 2, 2, 2, 1]);
    }

    #[test]
    fn values_bulk_cannot_carry_go_to_a_json_step() {
        let mut e = Epoch::new();
        e.push(t("Account", 1, false));
        e.push(T {
            na: true,
            ..t("Account", 2, false)
        });
        let steps = plan_steps(e.drain(), &[], StepLimits::rows(100));
        use StepKind::*;
        assert_eq!(
            shape(&steps),
            vec![
                ("Account", "Ext__c", Upsert, false, 1),
                ("Account", "Ext__c", Upsert, true, 1),
            ]
        );
    }
}
