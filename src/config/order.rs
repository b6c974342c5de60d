//! Object dependency order from lookups: parents before children, for the batcher (and
//! for the config check that rejects lookup cycles).
//!
//! Only lookups with `parent_synced = true` count (a parent maintained elsewhere needs no
//! ordering). A self-lookup (Account → parent Account) is a cycle too: ordering records
//! within one object is not supported, so it is reported rather than silently ignored.

use std::collections::{BTreeMap, BTreeSet};

use super::PipelineConfig;

/// Lookups form a cycle, so no parents-first order exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lookup cycle between objects: {}", .cycle.join(" → "))]
pub struct CycleError {
    /// The objects on the cycle, child first, ending with the first one again
    /// (`["A", "B", "A"]`: A looks up B, B looks up A).
    pub cycle: Vec<String>,
}

/// Every object the pipeline writes or references as a synced parent, parents first;
/// objects without dependencies between them in name order.
pub fn object_order(pipeline: &PipelineConfig) -> Result<Vec<String>, CycleError> {
    let graph = dependency_graph(pipeline);
    let mut order = Vec::new();
    let mut state: BTreeMap<&str, Mark> = BTreeMap::new();
    for node in graph.keys() {
        visit(node, &graph, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Child object → the parent objects it looks up.
fn dependency_graph(pipeline: &PipelineConfig) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &pipeline.mappings {
        let parents = graph.entry(m.object.clone()).or_default();
        for l in m.lookups.iter().filter(|l| l.parent_synced) {
            parents.insert(l.object.clone());
        }
        for l in m.lookups.iter().filter(|l| l.parent_synced) {
            graph.entry(l.object.clone()).or_default();
        }
    }
    graph
}

/// DFS colouring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    InProgress,
    Done,
}

/// Post-order DFS: a node is emitted after all its parents.
fn visit<'g>(
    node: &'g str,
    graph: &'g BTreeMap<String, BTreeSet<String>>,
    state: &mut BTreeMap<&'g str, Mark>,
    stack: &mut Vec<&'g str>,
    order: &mut Vec<String>,
) -> Result<(), CycleError> {
    match state.get(node) {
        Some(Mark::Done) => return Ok(()),
        Some(Mark::InProgress) => {
            let start = stack.iter().position(|n| *n == node).unwrap_or(0);
            let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Err(CycleError { cycle });
        }
        None => {}
    }
    state.insert(node, Mark::InProgress);
    stack.push(node);
    for parent in graph.get(node).into_iter().flatten() {
        visit(parent, graph, state, stack, order)?;
    }
    stack.pop();
    state.insert(node, Mark::Done);
    order.push(node.to_string());
    Ok(())
}
