//! Adjacency storage: the zero-copy view over a graph file and the mutable in-memory graph.
//!
//! Both use the same layout: layer 0 holds `1 + M0` words per node (a count, then links);
//! upper levels hold `1 + M` words per node and level, at a per-node word offset. Search is
//! written once against the [`Graph`] trait.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// Node numbers are u32; this one is reserved as "none".
pub(crate) const NO_NODE: u32 = u32::MAX;

/// Read access to a graph, shared by both storage kinds.
pub(crate) trait Graph: Sync {
    /// Nodes, including deleted ones.
    fn node_count(&self) -> usize;
    /// External id of a node.
    fn id(&self, node: u32) -> u64;
    /// Highest level the node appears on.
    fn level(&self, node: u32) -> usize;
    /// True for a tombstone: searches skip it and never read its vector.
    fn is_deleted(&self, node: u32) -> bool;
    /// Entry node and its level, if any node is live.
    fn entry(&self) -> Option<(u32, usize)>;
    /// Calls `f` with each link of `node` on `level` (nothing when the node lacks the level).
    fn for_each_neighbour<F: FnMut(u32)>(&self, node: u32, level: usize, f: F);
}

/// A validated graph file, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrozenView<'a> {
    pub(crate) ids: &'a [u64],
    /// Two words per node: level, upper offset.
    pub(crate) levels: &'a [u32],
    pub(crate) layer0: &'a [u32],
    pub(crate) upper: &'a [u32],
    pub(crate) m: usize,
    pub(crate) m0: usize,
    pub(crate) entry: Option<(u32, usize)>,
}

impl FrozenView<'_> {
    /// Node carrying `id`, by binary search over the sorted ids.
    pub(crate) fn find(&self, id: u64) -> Option<u32> {
        self.ids.binary_search(&id).ok().map(|i| i as u32)
    }
}

impl Graph for FrozenView<'_> {
    fn node_count(&self) -> usize {
        self.ids.len()
    }

    #[inline]
    fn id(&self, node: u32) -> u64 {
        self.ids[node as usize]
    }

    #[inline]
    fn level(&self, node: u32) -> usize {
        self.levels[2 * node as usize] as usize
    }

    #[inline]
    fn is_deleted(&self, _node: u32) -> bool {
        false
    }

    fn entry(&self) -> Option<(u32, usize)> {
        self.entry
    }

    #[inline]
    fn for_each_neighbour<F: FnMut(u32)>(&self, node: u32, level: usize, mut f: F) {
        let list = if level == 0 {
            let start = node as usize * (1 + self.m0);
            &self.layer0[start..start + 1 + self.m0]
        } else {
            if level > self.level(node) {
                return;
            }
            let start = self.levels[2 * node as usize + 1] as usize + (level - 1) * (1 + self.m);
            &self.upper[start..start + 1 + self.m]
        };
        let count = (list[0] as usize).min(list.len() - 1);
        for &neighbour in &list[1..=count] {
            f(neighbour);
        }
    }
}

/// The in-memory graph that inserts and deletes modify.
///
/// Links are atomics so that the parallel build can read a list while another thread
/// rewrites it: a reader may see a mix of old and new links, all of them valid nodes on
/// that level (the same relaxed protocol hnswlib uses, without undefined behaviour). Writers
/// of a node's lists hold that node's lock.
#[derive(Debug)]
pub(crate) struct MutGraph {
    pub(crate) m: usize,
    pub(crate) m0: usize,
    pub(crate) ids: Vec<u64>,
    pub(crate) levels: Vec<u8>,
    pub(crate) upper_offsets: Vec<u32>,
    pub(crate) layer0: Vec<AtomicU32>,
    pub(crate) upper: Vec<AtomicU32>,
    pub(crate) deleted: Vec<bool>,
    pub(crate) locks: Vec<Mutex<()>>,
    /// Entry node and its level; held for a whole insert that raises the top level.
    pub(crate) entry: Mutex<Option<(u32, usize)>>,
    /// Live ids to nodes.
    pub(crate) id_map: FxHashMap<u64, u32>,
}

impl MutGraph {
    pub(crate) fn new(m: usize, m0: usize) -> MutGraph {
        MutGraph {
            m,
            m0,
            ids: Vec::new(),
            levels: Vec::new(),
            upper_offsets: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            deleted: Vec::new(),
            locks: Vec::new(),
            entry: Mutex::new(None),
            id_map: FxHashMap::default(),
        }
    }

    /// Copies a frozen graph into memory (no distance is computed: O(links)).
    pub(crate) fn thaw(view: &FrozenView<'_>) -> MutGraph {
        let n = view.ids.len();
        let mut graph = MutGraph::new(view.m, view.m0);
        graph.ids = view.ids.to_vec();
        graph.levels = view.levels.chunks_exact(2).map(|p| p[0] as u8).collect();
        graph.upper_offsets = view.levels.chunks_exact(2).map(|p| p[1]).collect();
        graph.layer0 = view.layer0.iter().map(|&w| AtomicU32::new(w)).collect();
        graph.upper = view.upper.iter().map(|&w| AtomicU32::new(w)).collect();
        graph.deleted = vec![false; n];
        graph.locks = (0..n).map(|_| Mutex::new(())).collect();
        *graph.entry.get_mut() = view.entry;
        graph.id_map.reserve(n);
        for (node, &id) in view.ids.iter().enumerate() {
            graph.id_map.insert(id, node as u32);
        }
        graph
    }

    /// Appends nodes with no links yet (they are unreachable until linked).
    pub(crate) fn push_node(&mut self, id: u64, level: usize) -> Result<u32> {
        let node = u32::try_from(self.ids.len())
            .ok()
            .filter(|&n| n < NO_NODE)
            .ok_or(Error::Full {
                limit: u64::from(NO_NODE),
            })?;
        let upper_offset = u32::try_from(self.upper.len()).map_err(|_| Error::Full {
            limit: u64::from(node),
        })?;
        self.ids.push(id);
        self.levels.push(level as u8);
        self.upper_offsets.push(upper_offset);
        self.layer0
            .extend((0..1 + self.m0).map(|_| AtomicU32::new(0)));
        self.upper
            .extend((0..level * (1 + self.m)).map(|_| AtomicU32::new(0)));
        self.deleted.push(false);
        self.locks.push(Mutex::new(()));
        self.id_map.insert(id, node);
        Ok(node)
    }

    fn list(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let start = node as usize * (1 + self.m0);
            &self.layer0[start..start + 1 + self.m0]
        } else if level > self.levels[node as usize] as usize {
            &[]
        } else {
            let start = self.upper_offsets[node as usize] as usize + (level - 1) * (1 + self.m);
            &self.upper[start..start + 1 + self.m]
        }
    }

    /// Copies the links of `node` on `level` into `out`.
    pub(crate) fn links(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        self.for_each_neighbour(node, level, |n| out.push(n));
    }

    /// Replaces the links of `node` on `level`; the caller holds the node's lock.
    pub(crate) fn set_links(&self, node: u32, level: usize, links: &[u32]) {
        let list = self.list(node, level);
        if list.is_empty() {
            return;
        }
        let count = links.len().min(list.len() - 1);
        for (slot, &link) in list[1..].iter().zip(&links[..count]) {
            slot.store(link, Relaxed);
        }
        list[0].store(count as u32, Relaxed);
    }

    pub(crate) fn live_len(&self) -> usize {
        self.id_map.len()
    }
}

impl Graph for MutGraph {
    fn node_count(&self) -> usize {
        self.ids.len()
    }

    #[inline]
    fn id(&self, node: u32) -> u64 {
        self.ids[node as usize]
    }

    #[inline]
    fn level(&self, node: u32) -> usize {
        self.levels[node as usize] as usize
    }

    #[inline]
    fn is_deleted(&self, node: u32) -> bool {
        self.deleted[node as usize]
    }

    fn entry(&self) -> Option<(u32, usize)> {
        *self.entry.lock()
    }

    #[inline]
    fn for_each_neighbour<F: FnMut(u32)>(&self, node: u32, level: usize, mut f: F) {
        let list = self.list(node, level);
        if list.is_empty() {
            return;
        }
        let count = (list[0].load(Relaxed) as usize).min(list.len() - 1);
        for slot in &list[1..=count] {
            f(slot.load(Relaxed));
        }
    }
}

/// Per-thread visited marks, reset in O(1) by bumping an epoch.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    pub(crate) fn reset(&mut self, node_count: usize) {
        if self.marks.len() < node_count {
            self.marks.resize(node_count, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `node`; true when it was not marked before.
    #[inline]
    pub(crate) fn insert(&mut self, node: u32) -> bool {
        let mark = &mut self.marks[node as usize];
        let fresh = *mark != self.epoch;
        *mark = self.epoch;
        fresh
    }
}
