//! Planning a search: no filter, a short id list scanned exactly, or a predicate whose
//! pass rate (estimated by sampling) decides between an exact scan and a widened walk.

use super::FILTER_EXACT_MAX;
use super::scorer::Scorer;
use super::search::{Search, finish, node_distance};
use crate::exact::{Filter, Neighbour, Resolved, TopK};
use crate::graph::Graph;

/// How many nodes a filtered search samples to estimate the filter's selectivity.
const FILTER_SAMPLE: usize = 512;

impl<Sc: Scorer> Search<'_, Sc> {
    pub(super) fn run<G: Graph>(
        &self,
        graph: &G,
        filter: Option<&Filter<'_>>,
        find: impl Fn(&[u64]) -> Vec<u32>,
    ) -> Vec<Neighbour> {
        if self.k == 0 || self.live == 0 {
            return Vec::new();
        }
        let Some(filter) = filter else {
            if self.live <= self.ef {
                return self.exact_nodes(graph, &Resolved::All);
            }
            return self.walk(graph, self.ef, |_| true);
        };
        if let Filter::AllowIds(ids) = filter
            && ids.len() <= FILTER_EXACT_MAX
        {
            let mut nodes: Vec<u32> = find(ids);
            nodes.retain(|&v| !graph.is_deleted(v));
            nodes.sort_unstable();
            nodes.dedup();
            let mut top = TopK::new(self.k);
            for v in nodes {
                top.push(node_distance(graph, self.scorer, v), graph.id(v));
            }
            return finish(top);
        }
        let resolved = Resolved::new(Some(filter));
        // Estimate the pass rate from an evenly spaced sample of live nodes.
        let n = graph.node_count();
        let stride = n.div_ceil(FILTER_SAMPLE).max(1);
        let (mut sampled, mut passed) = (0usize, 0usize);
        for v in (0..n).step_by(stride) {
            let v = v as u32;
            if !graph.is_deleted(v) {
                sampled += 1;
                passed += usize::from(resolved.accepts(graph.id(v)));
            }
        }
        let rate = if sampled == 0 {
            0.0
        } else {
            passed as f64 / sampled as f64
        };
        if rate * self.live as f64 <= FILTER_EXACT_MAX as f64 {
            return self.exact_nodes(graph, &resolved);
        }
        let ef = ((self.ef as f64 / rate).ceil() as usize).clamp(self.ef, self.live.max(self.ef));
        let hits = self.walk(graph, ef, |id| resolved.accepts(id));
        if hits.len() < self.k.min(self.live) {
            return self.exact_nodes(graph, &resolved);
        }
        hits
    }
}
