//! Searching: the greedy descent through the upper levels, the best-first search on
//! layer 0 and the exact scan over the graph's nodes.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashSet;

use super::{Current, Hnsw, SearchOptions};
use crate::error::{Error, Result};
use crate::exact::{Filter, Neighbour, PARALLEL_EXACT_MIN_LEN, Resolved, Scored, TopK};
use crate::graph::{Graph, Visited};
use crate::source::VectorSource;

use super::scorer::{Scorer, Vectors};

impl Hnsw {
    /// The `k` nearest live ids with the default `ef`.
    pub fn search<S: VectorSource + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<Neighbour>> {
        self.search_with(source, query, k, &SearchOptions::default())
    }

    /// The `k` nearest live ids, with options.
    ///
    /// With a filter, the search estimates how many ids pass it (by sampling); when that is
    /// at most [`FILTER_EXACT_MAX`](super::FILTER_EXACT_MAX) it scans them exactly,
    /// otherwise it walks the graph with `ef` widened by the inverse of the pass rate, and
    /// falls back to an exact scan if the walk finds fewer than `k`.
    pub fn search_with<S: VectorSource + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        k: usize,
        options: &SearchOptions<'_>,
    ) -> Result<Vec<Neighbour>> {
        self.check_query(source, query)?;
        let ef = options.ef.unwrap_or(self.params.ef_search).max(k).max(1);
        let scorer = Vectors::new(source, self.metric, query);
        let run = Search {
            scorer: &scorer,
            k,
            ef,
            live: self.len(),
        };
        self.run(&run, options.filter.as_ref())
    }

    /// Runs a planned search on the current graph (frozen bytes or the live copy).
    pub(super) fn run<Sc: Scorer>(
        &self,
        run: &Search<'_, Sc>,
        filter: Option<&Filter<'_>>,
    ) -> Result<Vec<Neighbour>> {
        match self.current()? {
            Current::Frozen(view) => Ok(run.run(&view, filter, |ids| {
                ids.iter().filter_map(|&id| view.find(id)).collect()
            })),
            Current::Live(graph) => {
                let view = graph.view();
                Ok(run.run(&view, filter, |ids| {
                    let registry = graph.registry.read();
                    ids.iter()
                        .filter_map(|id| registry.id_map.get(id).copied())
                        .collect()
                }))
            }
        }
    }

    /// Exact top-`k` over every live id (the ground truth for recall).
    pub fn exact_search<S: VectorSource + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
        k: usize,
        filter: Option<&Filter<'_>>,
    ) -> Result<Vec<Neighbour>> {
        self.check_query(source, query)?;
        let scorer = Vectors::new(source, self.metric, query);
        let run = Search {
            scorer: &scorer,
            k,
            ef: k,
            live: self.len(),
        };
        let resolved = Resolved::new(filter);
        match self.current()? {
            Current::Frozen(view) => Ok(run.exact_nodes(&view, &resolved)),
            Current::Live(graph) => Ok(run.exact_nodes(&graph.view(), &resolved)),
        }
    }
}

impl Hnsw {
    /// The source and the query both have the index's dimension.
    pub(super) fn check_query<S: VectorSource + ?Sized>(
        &self,
        source: &S,
        query: &[f32],
    ) -> Result<()> {
        self.check_source(source)?;
        if query.len() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: query.len(),
            });
        }
        Ok(())
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}

/// Runs `f` with this thread's visited marks (a fresh set if they are already in use, e.g.
/// when a filter predicate itself searches).
pub(super) fn with_visited<R>(node_count: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
    VISITED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut visited) => {
            visited.reset(node_count);
            f(&mut visited)
        }
        Err(_) => {
            let mut visited = Visited::default();
            visited.reset(node_count);
            f(&mut visited)
        }
    })
}

#[inline]
pub(super) fn node_distance<G: Graph, Sc: Scorer>(graph: &G, scorer: &Sc, node: u32) -> f32 {
    scorer.distance_to(graph.id(node))
}

/// The greedy descent from `entry` (on `top_level`) through every level above `stop_above`:
/// the closest node it finds, scored, to start the next level's search from.
pub(super) fn descend<G: Graph, Sc: Scorer>(
    graph: &G,
    scorer: &Sc,
    (entry, top_level): (u32, usize),
    stop_above: usize,
) -> Scored<u32> {
    let mut current = Scored {
        distance: node_distance(graph, scorer, entry),
        key: entry,
    };
    for level in (stop_above + 1..=top_level).rev() {
        current = greedy(graph, scorer, level, current);
    }
    current
}

/// Greedy descent on one level: moves to the closest neighbour until none is closer.
/// Tombstones are walked through, never read: their vectors may be gone from the source
/// (the `VectorSource` contract covers live ids only), but their links still lead on, and
/// until the indexer repairs around them they may be the only way across.
pub(super) fn greedy<G: Graph, Sc: Scorer>(
    graph: &G,
    scorer: &Sc,
    level: usize,
    start: Scored<u32>,
) -> Scored<u32> {
    let mut best = start;
    let mut through: Vec<u32> = Vec::new();
    let mut crossed: Vec<u32> = Vec::new();
    loop {
        let from = best.key;
        let mut consider = |n: u32, through: &mut Vec<u32>| {
            if graph.is_deleted(n) {
                // Bounded: a step crosses at most GREEDY_TOMBSTONES_MAX tombstones.
                if crossed.len() < GREEDY_TOMBSTONES_MAX && !crossed.contains(&n) {
                    crossed.push(n);
                    through.push(n);
                }
                return;
            }
            let d = node_distance(graph, scorer, n);
            if d < best.distance {
                best = Scored {
                    distance: d,
                    key: n,
                };
            }
        };
        graph.for_each_neighbour(from, level, |n| consider(n, &mut through));
        while let Some(t) = through.pop() {
            let mut next = Vec::new();
            graph.for_each_neighbour(t, level, |n| consider(n, &mut next));
            through.append(&mut next);
        }
        crossed.clear();
        if best.key == from {
            return best;
        }
    }
}

/// How many tombstones one greedy step walks through (upper levels are sparse, so this
/// covers long runs of deletes; beyond it the step ends where it is, never wrongly).
const GREEDY_TOMBSTONES_MAX: usize = 256;

/// Adds the unvisited neighbours of `from` on `level` to `fresh` with their vectors, and
/// unvisited tombstones to `through` so their links are followed instead (see `greedy`).
#[allow(clippy::too_many_arguments)]
fn gather<'s, G: Graph, Sc: Scorer>(
    graph: &G,
    scorer: &'s Sc,
    level: usize,
    from: u32,
    visited: &mut Visited,
    through: &mut Vec<u32>,
    fresh: &mut Vec<(u32, &'s Sc::Data)>,
) {
    // First pass: start the loads of every neighbour's mark, id and state, which are at
    // random places; the second pass then finds them in cache instead of missing on each
    // in turn (an id must arrive before its vector's load can even start).
    graph.for_each_neighbour(from, level, |n| {
        visited.prefetch(n);
        graph.prefetch_node(n);
    });
    graph.for_each_neighbour(from, level, |n| {
        if !visited.insert(n) {
            return;
        }
        if graph.is_deleted(n) {
            through.push(n);
        } else {
            let data = scorer.data(graph.id(n));
            // Start every fresh vector's (or code's) load now: the misses overlap, and
            // the data is in cache when the batch is scored.
            Sc::prefetch(data);
            fresh.push((n, data));
        }
    });
}

/// Best-first search on one level; returns up to `ef` accepted nodes, closest first.
/// Nodes the filter rejects are walked through but never returned; tombstones are walked
/// through without being read or scored: their live neighbours are reached as if linked
/// directly (a run of unrepaired deletes would otherwise cut the graph).
#[allow(clippy::too_many_arguments)]
pub(super) fn search_layer<G: Graph, Sc: Scorer>(
    graph: &G,
    scorer: &Sc,
    entry_points: &[Scored<u32>],
    ef: usize,
    level: usize,
    visited: &mut Visited,
    accept: impl Fn(u32) -> bool,
) -> Vec<Scored<u32>> {
    let mut candidates: BinaryHeap<Reverse<Scored<u32>>> = BinaryHeap::with_capacity(ef * 2);
    let mut results: BinaryHeap<Scored<u32>> = BinaryHeap::with_capacity(ef + 1);
    for &e in entry_points {
        if visited.insert(e.key) {
            candidates.push(Reverse(e));
            if accept(e.key) {
                results.push(e);
                if results.len() > ef {
                    results.pop();
                }
            }
        }
    }
    let mut bound = results.peek().map_or(f32::INFINITY, |r| r.distance);
    let mut fresh: Vec<(u32, &Sc::Data)> = Vec::with_capacity(64);
    let mut distances: Vec<f32> = Vec::with_capacity(64);
    let mut through: Vec<u32> = Vec::new();
    while let Some(Reverse(current)) = candidates.pop() {
        if current.distance > bound && results.len() >= ef {
            break;
        }
        // Gather the unvisited neighbours first, prefetching each vector, then score them
        // all under one dispatch to the SIMD kernels.
        fresh.clear();
        gather(
            graph,
            scorer,
            level,
            current.key,
            visited,
            &mut through,
            &mut fresh,
        );
        while let Some(t) = through.pop() {
            gather(graph, scorer, level, t, visited, &mut through, &mut fresh);
        }
        scorer.distances(&fresh, &mut distances);
        for (&(n, _), &d) in fresh.iter().zip(&distances) {
            if results.len() < ef || d < bound {
                if level == 0 {
                    graph.prefetch_links(n);
                }
                candidates.push(Reverse(Scored {
                    distance: d,
                    key: n,
                }));
                if accept(n) {
                    results.push(Scored {
                        distance: d,
                        key: n,
                    });
                    if results.len() > ef {
                        results.pop();
                    }
                    if let Some(top) = results.peek() {
                        bound = top.distance;
                    }
                }
            }
        }
    }
    results.into_sorted_vec()
}

/// One query.
pub(super) struct Search<'a, Sc> {
    pub(super) scorer: &'a Sc,
    pub(super) k: usize,
    pub(super) ef: usize,
    pub(super) live: usize,
}

impl<Sc: Scorer> Search<'_, Sc> {
    /// Graph walk returning the top `k` accepted live nodes.
    pub(super) fn walk<G: Graph>(
        &self,
        graph: &G,
        ef: usize,
        accept_id: impl Fn(u64) -> bool,
    ) -> Vec<Neighbour> {
        let Some((entry, top_level)) = graph.entry() else {
            return Vec::new();
        };
        let current = descend(graph, self.scorer, (entry, top_level), 0);
        let found = with_visited(graph.node_count(), |visited| {
            search_layer(graph, self.scorer, &[current], ef, 0, visited, |v| {
                !graph.is_deleted(v) && accept_id(graph.id(v))
            })
        });
        let mut top = TopK::new(self.k);
        for hit in found {
            top.push(hit.distance, graph.id(hit.key));
        }
        finish(top)
    }

    /// Scans every live node that passes the filter.
    pub(super) fn exact_nodes<G: Graph>(&self, graph: &G, filter: &Resolved<'_>) -> Vec<Neighbour> {
        let scan = |range: std::ops::Range<usize>| {
            let mut top = TopK::new(self.k);
            for v in range {
                let v = v as u32;
                if graph.is_deleted(v) {
                    continue;
                }
                let id = graph.id(v);
                if filter.accepts(id) {
                    top.push(node_distance(graph, self.scorer, v), id);
                }
            }
            top
        };
        let n = graph.node_count();
        let top = if n >= PARALLEL_EXACT_MIN_LEN {
            let chunk = n
                .div_ceil(rayon::current_num_threads().max(1) * 4)
                .max(1024);
            (0..n.div_ceil(chunk))
                .into_par_iter()
                .map(|c| scan(c * chunk..((c + 1) * chunk).min(n)))
                .reduce(
                    || TopK::new(self.k),
                    |mut a, b| {
                        for item in b.into_sorted() {
                            a.push(item.distance, item.key);
                        }
                        a
                    },
                )
        } else {
            scan(0..n)
        };
        finish(top)
    }
}

/// The hits, closest first, each id once.
///
/// An id can reach here twice only when a search races a replace of it ([`Hnsw::upsert`],
/// or a delete and an insert of the same id): it scored the old node before the delete and
/// the new one after the link. The closer of the two is kept.
pub(super) fn finish(top: TopK<u64>) -> Vec<Neighbour> {
    let mut hits: Vec<Neighbour> = top
        .into_sorted()
        .into_iter()
        .map(|s| Neighbour {
            id: s.key,
            distance: s.distance,
        })
        .collect();
    if hits.len() > 1 {
        let mut seen = FxHashSet::with_capacity_and_hasher(hits.len(), Default::default());
        hits.retain(|hit| seen.insert(hit.id));
    }
    hits
}
