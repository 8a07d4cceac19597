//! Deleting: the node becomes a tombstone at once, then its live neighbours are re-linked
//! around it so recall holds.

use std::cmp::Reverse;

use super::Hnsw;
use super::build::Ctx;
use crate::error::Result;
use crate::exact::Scored;
use crate::graph::Graph;
use crate::live::LiveView;
use crate::source::VectorSource;

impl Hnsw {
    /// Deletes `id`: it is never returned again. The node stays as a tombstone until the
    /// next save; searches skip it without reading its vector (the source need not hold it
    /// any more once searches that began before this call have returned), and its
    /// neighbours are re-linked around it so recall holds.
    pub fn delete<S: VectorSource + ?Sized>(&self, source: &S, id: u64) -> Result<()> {
        self.check_source(source)?;
        let graph = self.thaw()?;
        let change = graph.change();
        let node = graph.remove(&change, id)?;
        let ctx = self.ctx(&change.view, source, 0);
        ctx.repair_around(node);
        replace_entry_if(&change.view, node);
        Ok(())
    }

    /// Deletes `id` now, leaving the repair of its neighbours to
    /// [`Hnsw::repair_deferred`]: O(1) unless `id` is the entry node (then one pass over
    /// the nodes' levels), no distance computed, no vector read. Until repaired, searches
    /// skip the tombstone as usual but cannot walk through it, so recall may dip slightly.
    pub fn delete_deferred(&self, id: u64) -> Result<()> {
        let graph = self.thaw()?;
        let change = graph.change();
        let node = graph.remove(&change, id)?;
        graph.repairs.lock().push(node);
        replace_entry_if(&change.view, node);
        Ok(())
    }

    /// Repairs up to `max` of the nodes [`Hnsw::delete_deferred`] left, oldest first;
    /// returns how many remain.
    pub fn repair_deferred<S: VectorSource + ?Sized>(
        &self,
        source: &S,
        max: usize,
    ) -> Result<usize> {
        self.check_source(source)?;
        let Some(graph) = self.live.get() else {
            return Ok(0);
        };
        let batch: Vec<u32> = {
            let mut repairs = graph.repairs.lock();
            let n = max.min(repairs.len());
            repairs.drain(..n).collect()
        };
        if !batch.is_empty() {
            let change = graph.change();
            let ctx = self.ctx(&change.view, source, 0);
            for node in batch {
                ctx.repair_around(node);
            }
        }
        Ok(self.deferred_repairs())
    }

    /// Deleted nodes whose neighbours are not yet repaired.
    pub fn deferred_repairs(&self) -> usize {
        self.live
            .get()
            .map_or(0, |graph| graph.repairs.lock().len())
    }
}

/// Makes the live node on the highest level the entry if `deleted` was it.
fn replace_entry_if(view: &LiveView<'_>, deleted: u32) {
    let mut entry = view.graph.entry.lock();
    if matches!(*entry, Some((e, _)) if e == deleted) {
        let next = (0..view.node_count() as u32)
            .filter(|&v| !view.is_deleted(v))
            .max_by_key(|&v| (view.level(v), Reverse(v)))
            .map(|v| (v, view.level(v)));
        view.graph.set_entry(&mut entry, next);
    }
}

impl<S: VectorSource + ?Sized> Ctx<'_, '_, S> {
    /// Re-links the live neighbours of a deleted node around it, on every level.
    pub(super) fn repair_around(&self, deleted: u32) {
        let graph = self.graph;
        let mut dead_links = Vec::new();
        let mut links = Vec::new();
        for level in 0..=graph.level(deleted) {
            graph.links(deleted, level, &mut dead_links);
            for &neighbour in &dead_links {
                if graph.is_deleted(neighbour) {
                    continue;
                }
                let _lock = graph.nodes.locks[neighbour as usize].lock();
                graph.links(neighbour, level, &mut links);
                if !links.contains(&deleted) {
                    continue;
                }
                let base = self.vector(neighbour);
                let mut pool: Vec<u32> = links
                    .iter()
                    .chain(&dead_links)
                    .copied()
                    .filter(|&v| v != neighbour && !graph.is_deleted(v) && graph.level(v) >= level)
                    .collect();
                pool.sort_unstable();
                pool.dedup();
                let mut candidates: Vec<Scored<u32>> = pool
                    .into_iter()
                    .map(|v| Scored {
                        distance: self.metric.distance(base, self.vector(v)),
                        key: v,
                    })
                    .collect();
                candidates.sort_unstable();
                let selected = self.select_linked(&candidates, self.capacity(level), level);
                graph.nodes.set_links(neighbour, level, &selected);
            }
        }
    }
}
