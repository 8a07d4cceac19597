//! Reachability: every live node can be found by a search that starts at the entry.
//!
//! The heuristic drops a link when a kept neighbour covers the node it led to; two shrinks
//! running at once on two neighbours can each count on the other's link and both drop it,
//! and a node's last in-link can belong to a node deleted since. Rare (one build in tens on
//! a 4-dimensional line of points, never seen on real data sets), but such a node is never
//! returned again by any search. `repair_unreachable` finds them with one breadth-first walk
//! of layer 0 and links each from its nearest reachable neighbour.

use std::collections::VecDeque;

use super::Hnsw;
use super::scorer::Vectors;
use super::search::{descend, search_layer, with_visited};
use crate::error::Result;
use crate::graph::Graph;
use crate::source::VectorSource;

impl Hnsw {
    /// Links every live node that no search from the entry can reach (on layer 0, through
    /// tombstones) from its nearest reachable live node; returns how many it linked. One
    /// pass over the links of every node, then a search per unreachable node. Runs beside
    /// searches and inserts (a node inserted meanwhile may be reported and linked once more,
    /// which is harmless).
    pub fn repair_unreachable<S: VectorSource + ?Sized>(&self, source: &S) -> Result<usize> {
        self.check_source(source)?;
        let Some(graph) = self.live.get() else {
            // A frozen (opened, unchanged) graph is as it was saved.
            return Ok(0);
        };
        let change = graph.change();
        let view = &change.view;
        let Some((entry, top_level)) = view.entry() else {
            return Ok(0);
        };
        let n = view.node_count();
        let mut reached = vec![false; n];
        let spread = |reached: &mut Vec<bool>, from: u32| {
            reached[from as usize] = true;
            let mut queue = VecDeque::from([from]);
            while let Some(v) = queue.pop_front() {
                view.for_each_neighbour(v, 0, |w| {
                    if !std::mem::replace(&mut reached[w as usize], true) {
                        queue.push_back(w);
                    }
                });
            }
        };
        spread(&mut reached, entry);
        let ctx = self.ctx(view, source, 0);
        let mut links = Vec::new();
        let mut linked = 0;
        for v in 0..n as u32 {
            if reached[v as usize] || view.is_deleted(v) {
                continue;
            }
            let query = ctx.vector(v);
            let scorer = Vectors::new(source, self.metric, query);
            let current = descend(view, &scorer, (entry, top_level), 0);
            let found = with_visited(n, |visited| {
                search_layer(
                    view,
                    &scorer,
                    &[current],
                    self.params.ef_construction,
                    0,
                    visited,
                    |u| u != v && !view.is_deleted(u) && reached[u as usize],
                )
            });
            if let Some(nearest) = found.first() {
                ctx.connect(nearest.key, v, nearest.distance, 0, &mut links, true);
                // What `v` leads to is reachable now too.
                spread(&mut reached, v);
                linked += 1;
            }
        }
        Ok(linked)
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::Graph;
    use crate::{FlatVectors, Hnsw, HnswParams, Metric, VectorSource};

    #[test]
    fn a_node_nothing_links_to_is_linked_back_and_found_again() {
        let dim = 4;
        let data: Vec<f32> = (0..60u32)
            .flat_map(|i| [i as f32, (i % 7) as f32, (i % 3) as f32, 1.0])
            .collect();
        let source = FlatVectors::new(&data, dim);
        let params = HnswParams {
            m: 4,
            ef_construction: 32,
            ef_search: 16,
            seed: 1,
        };
        let index = Hnsw::new(dim, Metric::L2, params).unwrap();
        index
            .insert_batch(&source, &(0..60).collect::<Vec<_>>())
            .unwrap();
        // Orphan node 30 (not the entry): no list on any level names it any more.
        let graph = index.live.get().unwrap();
        let change = graph.change();
        let view = &change.view;
        let orphan = graph.registry.read().id_map[&30];
        assert_ne!(view.entry().unwrap().0, orphan);
        let mut links = Vec::new();
        for v in 0..view.node_count() as u32 {
            for level in 0..=view.level(v) {
                view.links(v, level, &mut links);
                if links.contains(&orphan) {
                    links.retain(|&w| w != orphan);
                    view.nodes.set_links(v, level, &links);
                }
            }
        }
        drop(change);
        let found = |index: &Hnsw| index.search(&source, source.vector(30), 1).unwrap()[0].id;
        assert_ne!(found(&index), 30, "the orphan is out of reach");
        assert_eq!(index.repair_unreachable(&source).unwrap(), 1);
        assert_eq!(found(&index), 30);
        assert_eq!(
            index.repair_unreachable(&source).unwrap(),
            0,
            "nothing left"
        );
    }
}
