//! Dependency resolution: a pure function from plugin manifests to a start order, or every problem found.
//!
//! Edges come from three places: `dependencies` (by plugin id and semver range), `requires`
//! (a required service orders the plugin after the plugin that `provides` it) and
//! `optional_requires` (the same ordering when a provider is present, nothing otherwise);
//! `lazy_requires` (services looked up only at request time) adds none, so it never makes a
//! cycle. The order is a topological sort that keeps registration order among plugins that are
//! free to go, so the same input always gives the same order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use objectos_spec::PluginManifest;
use objectos_spec::event::validate_event_name;
use semver::{Version, VersionReq};

use crate::error::KernelError;

/// Why one plugin must start after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    /// A `dependencies` entry with its range.
    Plugin { range: String, optional: bool },
    /// A `requires` entry satisfied by the other plugin's `provides`.
    Service { name: String },
    /// An `optional_requires` entry satisfied by the other plugin's `provides`: it orders the
    /// start but a failure of the provider skips nobody.
    OptionalService { name: String },
}

/// One "starts after" relation of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Index (in the input list) of the plugin depended on.
    pub on: usize,
    pub kind: EdgeKind,
}

impl Edge {
    /// True when a failure of the plugin depended on must skip the dependent.
    pub fn is_hard(&self) -> bool {
        !matches!(
            self.kind,
            EdgeKind::Plugin { optional: true, .. } | EdgeKind::OptionalService { .. }
        )
    }
}

/// The result of resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPlan {
    /// Indices into the input list, in start order.
    pub order: Vec<usize>,
    /// For each input index, what it starts after.
    pub edges: Vec<Vec<Edge>>,
}

/// Resolves manifests into a start order, collecting every problem.
///
/// Errors: [`KernelError::Resolution`] whose `problems` are `DuplicatePlugin`, `MissingDependency`,
/// `VersionMismatch`, `Cycle`, `InvalidVersion`, `InvalidRange`, `InvalidManifest`,
/// `MissingService` and `DuplicateService`.
pub fn resolve(manifests: &[&PluginManifest]) -> Result<ResolvedPlan, KernelError> {
    let mut problems = Vec::new();
    let n = manifests.len();

    // The first registration of an id wins; later ones are reported and left out of the graph.
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(n);
    let mut active = vec![true; n];
    let mut reported_dup = HashSet::new();
    for (i, m) in manifests.iter().enumerate() {
        if by_id.contains_key(m.id) {
            active[i] = false;
            if reported_dup.insert(m.id) {
                problems.push(KernelError::DuplicatePlugin {
                    id: m.id.to_owned(),
                });
            }
        } else {
            by_id.insert(m.id, i);
        }
    }

    let mut versions: Vec<Option<Version>> = Vec::with_capacity(n);
    for (i, m) in manifests.iter().enumerate() {
        if active[i] {
            check_manifest(m, &mut problems);
        }
        match Version::parse(m.version) {
            Ok(v) => versions.push(Some(v)),
            Err(e) => {
                if active[i] {
                    problems.push(KernelError::InvalidVersion {
                        plugin: m.id.to_owned(),
                        version: m.version.to_owned(),
                        reason: e.to_string(),
                    });
                }
                versions.push(None);
            }
        }
    }

    // Service providers: one per service name.
    let mut providers: HashMap<&str, usize> = HashMap::new();
    for (i, m) in manifests.iter().enumerate().filter(|(i, _)| active[*i]) {
        for service in m.provides {
            match providers.get(service) {
                Some(&first) if first != i => problems.push(KernelError::DuplicateService {
                    service: (*service).to_owned(),
                    first: manifests[first].id.to_owned(),
                    second: m.id.to_owned(),
                }),
                Some(_) => {}
                None => {
                    providers.insert(service, i);
                }
            }
        }
    }

    let mut edges: Vec<Vec<Edge>> = vec![Vec::new(); n];
    for (i, m) in manifests.iter().enumerate().filter(|(i, _)| active[*i]) {
        for dep in m.dependencies {
            let req = match VersionReq::parse(dep.version) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(KernelError::InvalidRange {
                        plugin: m.id.to_owned(),
                        dependency: dep.id.to_owned(),
                        range: dep.version.to_owned(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let Some(&target) = by_id.get(dep.id) else {
                if !dep.optional {
                    problems.push(KernelError::MissingDependency {
                        plugin: m.id.to_owned(),
                        dependency: dep.id.to_owned(),
                        range: dep.version.to_owned(),
                    });
                }
                continue;
            };
            if let Some(found) = &versions[target]
                && !req.matches(found)
            {
                problems.push(KernelError::VersionMismatch {
                    plugin: m.id.to_owned(),
                    dependency: dep.id.to_owned(),
                    required: dep.version.to_owned(),
                    found: found.to_string(),
                });
            }
            edges[i].push(Edge {
                on: target,
                kind: EdgeKind::Plugin {
                    range: dep.version.to_owned(),
                    optional: dep.optional,
                },
            });
        }
        for service in m.requires {
            match providers.get(service) {
                // A plugin may require a service it provides itself; that adds no edge.
                Some(&p) if p == i => {}
                Some(&p) => {
                    if !edges[i].iter().any(|e| e.on == p) {
                        edges[i].push(Edge {
                            on: p,
                            kind: EdgeKind::Service {
                                name: (*service).to_owned(),
                            },
                        });
                    }
                }
                None => problems.push(KernelError::MissingService {
                    plugin: m.id.to_owned(),
                    service: (*service).to_owned(),
                }),
            }
        }
        // An optional service orders the start when someone provides it; absence is no problem.
        for service in m.optional_requires {
            if let Some(&p) = providers.get(service)
                && p != i
                && !edges[i].iter().any(|e| e.on == p)
            {
                edges[i].push(Edge {
                    on: p,
                    kind: EdgeKind::OptionalService {
                        name: (*service).to_owned(),
                    },
                });
            }
        }
    }

    let order = topo_sort(&active, &edges);
    let placed = order.len();
    let expected = active.iter().filter(|a| **a).count();
    if placed < expected {
        let mut in_order = vec![false; n];
        for &i in &order {
            in_order[i] = true;
        }
        for cycle in find_cycles(&active, &in_order, &edges) {
            problems.push(KernelError::Cycle {
                path: cycle.iter().map(|&i| manifests[i].id.to_owned()).collect(),
            });
        }
    }

    if problems.is_empty() {
        Ok(ResolvedPlan { order, edges })
    } else {
        Err(KernelError::Resolution { problems })
    }
}

/// Checks the id and the event patterns of one manifest.
fn check_manifest(m: &PluginManifest, problems: &mut Vec<KernelError>) {
    let id_ok = !m.id.is_empty()
        && m.id.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        });
    if !id_ok {
        problems.push(KernelError::InvalidManifest {
            plugin: m.id.to_owned(),
            field: "id",
            value: m.id.to_owned(),
            reason: "an id is dot-separated lowercase segments of letters, digits, `-` or `_`, such as `com.objectos.audit`".to_owned(),
        });
    }
    for (field, list) in [("emits", m.emits), ("subscribes", m.subscribes)] {
        for pattern in list {
            if let Err(reason) = validate_event_name(pattern, true) {
                problems.push(KernelError::InvalidManifest {
                    plugin: m.id.to_owned(),
                    field,
                    value: (*pattern).to_owned(),
                    reason,
                });
            }
        }
    }
}

/// Kahn's algorithm with the smallest registration index first among ready plugins.
fn topo_sort(active: &[bool], edges: &[Vec<Edge>]) -> Vec<usize> {
    let n = active.len();
    let mut indegree = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, list) in edges.iter().enumerate() {
        for e in list {
            indegree[i] += 1;
            dependents[e.on].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&i| active[i] && indegree[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

/// Finds the distinct cycles among the plugins that could not be ordered.
///
/// Each cycle is reported once, rotated to start at its lowest registration index, and closed by
/// repeating its first plugin (`a -> b -> a`).
fn find_cycles(active: &[bool], placed: &[bool], edges: &[Vec<Edge>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let n = active.len();
    let mut mark = vec![Mark::New; n];
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut cycles = Vec::new();

    for root in 0..n {
        if !active[root] || placed[root] || mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: a stack of (node, next edge index) so deep graphs cannot overflow.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(edge) = edges[node].get(*next) {
                *next += 1;
                let to = edge.on;
                if placed[to] {
                    continue;
                }
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::OnStack;
                        stack.push((to, 0));
                    }
                    Mark::OnStack => {
                        let start = stack.iter().position(|(k, _)| *k == to).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|(k, _)| *k).collect();
                        let min_pos = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, k)| **k)
                            .map_or(0, |(p, _)| p);
                        cycle.rotate_left(min_pos);
                        if seen.insert(cycle.clone()) {
                            let first = cycle[0];
                            cycle.push(first);
                            cycles.push(cycle);
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    cycles
}
