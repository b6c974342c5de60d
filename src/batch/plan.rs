//! Cutting a drained epoch into ordered flush steps.

use std::collections::BTreeMap;

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

/// One flush step: one object, one kind, at most `max_rows` changes.
#[derive(Debug)]
pub struct Step<C> {
    pub object: String,
    pub kind: StepKind,
    pub changes: Vec<C>,
}

/// Order the drained changes: upserts parents-first (by `order`, objects not listed last,
/// alphabetically), then deletes children-first; each split into chunks of `max_rows`.
pub fn plan_steps<C>(
    mut drained: BTreeMap<String, (Vec<C>, Vec<C>)>,
    order: &[String],
    max_rows: usize,
) -> Vec<Step<C>> {
    let max_rows = max_rows.max(1);
    let mut objects: Vec<String> = order
        .iter()
        .filter(|o| drained.contains_key(*o))
        .cloned()
        .collect();
    for name in drained.keys() {
        if !objects.contains(name) {
            objects.push(name.clone());
        }
    }
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for object in &objects {
        if let Some((ups, dels)) = drained.remove(object) {
            upserts.extend(chunk(object, StepKind::Upsert, ups, max_rows));
            deletes.push(chunk(object, StepKind::Delete, dels, max_rows));
        }
    }
    deletes.reverse();
    upserts.extend(deletes.into_iter().flatten());
    upserts
}

fn chunk<C>(object: &str, kind: StepKind, mut changes: Vec<C>, max_rows: usize) -> Vec<Step<C>> {
    let mut steps = Vec::new();
    while !changes.is_empty() {
        let rest = changes.split_off(changes.len().min(max_rows));
        steps.push(Step {
            object: object.to_string(),
            kind,
            changes,
        });
        changes = rest;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_first_for_upserts_children_first_for_deletes() {
        let mut d = BTreeMap::new();
        d.insert("Contact".to_string(), (vec![1, 2, 3], vec![4]));
        d.insert("Account".to_string(), (vec![5], vec![6]));
        d.insert("Zed__c".to_string(), (vec![7], vec![]));
        let steps = plan_steps(d, &["Account".into(), "Contact".into()], 2);
        let shape: Vec<(String, StepKind, usize)> = steps
            .iter()
            .map(|s| (s.object.clone(), s.kind, s.changes.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("Account".into(), StepKind::Upsert, 1),
                ("Contact".into(), StepKind::Upsert, 2),
                ("Contact".into(), StepKind::Upsert, 1),
                ("Zed__c".into(), StepKind::Upsert, 1),
                ("Contact".into(), StepKind::Delete, 1),
                ("Account".into(), StepKind::Delete, 1),
            ]
        );
    }
}
