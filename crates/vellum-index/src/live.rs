//! The in-memory graph that inserts and deletes change through `&self`, while searches run.
//!
//! # Concurrency design (hnswlib's, in safe Rust)
//!
//! - **Node arrays** ([`Nodes`]) have a fixed capacity and are never moved while in use:
//!   every field is an atomic, so a search can read a link list while an insert rewrites it
//!   (it sees old or new links, each a valid node number on that level). A search clones
//!   the `Arc<Nodes>` once and walks that snapshot with no lock at all.
//! - **Growth** copies the arrays into ones twice as large and swaps the `Arc`. Lock
//!   `grow` guards this: every insert and delete holds it shared for its whole duration,
//!   growth holds it exclusive, so no change is lost in the copy. Searches never take it:
//!   a search that began before a growth finishes on the old arrays (a valid graph without
//!   the newest nodes).
//! - **Publication**: a node's id, level and upper-level lists are written before its state
//!   becomes [`LIVE`] (release), and readers test the state (acquire) before they read the
//!   node's vector or links; a node's number appears in a link list only after it is live.
//!   Links are stored with release and loaded with acquire for the same reason.
//! - **Per-node locks** (`Nodes::locks`) serialise writers of one node's link lists; held
//!   across the neighbour-selection distances of that one node, never across a search.
//! - **`entry`**: the entry node and top level, a leaf lock read once per search.
//! - **`registry`**: ids to nodes and the next free node number. Taken for a short map
//!   update, never across distance computations.
//!
//! Lock order: `grow` (shared or exclusive) → `registry` → `nodes` → a node lock →
//! `entry`. Leaf locks (`entry`, one node lock) are never held while taking another node's
//! lock, except `entry` held by an insert that raises the top level (which takes node locks
//! under it; no path takes `entry` while holding a node lock).

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::graph::{FrozenView, Graph, NO_NODE};

/// A node number handed out whose fields are still being written: searches skip it.
pub(crate) const VACANT: u8 = 0;
/// A searchable node.
pub(crate) const LIVE: u8 = 1;
/// A deleted node (a tombstone until the graph is next encoded).
pub(crate) const DELETED: u8 = 2;

/// `LiveGraph::entry_now` when the graph has no entry.
const NO_ENTRY: u64 = u64::MAX;

/// Smallest capacity a graph grows to.
const MIN_CAPACITY: usize = 64;

/// Fixed-capacity node arrays; see the module docs.
#[derive(Debug)]
pub(crate) struct Nodes {
    m: usize,
    m0: usize,
    ids: Box<[AtomicU64]>,
    levels: Box<[AtomicU8]>,
    states: Box<[AtomicU8]>,
    /// `1 + m0` words per node: a count, then links.
    layer0: Box<[AtomicU32]>,
    /// Per node with level > 0: `level * (1 + m)` words (count and links per level).
    upper: Box<[OnceLock<Box<[AtomicU32]>>]>,
    pub(crate) locks: Box<[Mutex<()>]>,
}

fn atomics32(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

impl Nodes {
    fn with_capacity(m: usize, m0: usize, capacity: usize) -> Nodes {
        Nodes {
            m,
            m0,
            ids: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            levels: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            states: (0..capacity).map(|_| AtomicU8::new(VACANT)).collect(),
            layer0: atomics32(capacity * (1 + m0)),
            upper: (0..capacity).map(|_| OnceLock::new()).collect(),
            locks: (0..capacity).map(|_| Mutex::new(())).collect(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ids.len()
    }

    /// Copies every value into arrays of `capacity` (no change runs meanwhile: the caller
    /// holds `grow` exclusive).
    fn grown(&self, capacity: usize) -> Nodes {
        let grown = Nodes::with_capacity(self.m, self.m0, capacity);
        let copy64 = |to: &[AtomicU64], from: &[AtomicU64]| {
            for (t, f) in to.iter().zip(from) {
                t.store(f.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        };
        copy64(&grown.ids, &self.ids);
        for (t, f) in grown.levels.iter().zip(&*self.levels) {
            t.store(f.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for (t, f) in grown.states.iter().zip(&*self.states) {
            t.store(f.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for (t, f) in grown.layer0.iter().zip(&*self.layer0) {
            t.store(f.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for (t, f) in grown.upper.iter().zip(&*self.upper) {
            if let Some(lists) = f.get() {
                let copy: Box<[AtomicU32]> = lists
                    .iter()
                    .map(|w| AtomicU32::new(w.load(Ordering::Relaxed)))
                    .collect();
                // `t` is fresh: set cannot fail.
                let _ = t.set(copy);
            }
        }
        grown
    }

    /// Writes a new node's fields and makes it live. The caller owns `node` (handed out by
    /// the registry) and has not linked it anywhere yet.
    fn init(&self, node: u32, id: u64, level: usize) {
        let v = node as usize;
        self.ids[v].store(id, Ordering::Relaxed);
        self.levels[v].store(level as u8, Ordering::Relaxed);
        if level > 0 {
            let _ = self.upper[v].set(atomics32(level * (1 + self.m)));
        }
        self.states[v].store(LIVE, Ordering::Release);
    }

    fn list(&self, node: u32, level: usize) -> &[AtomicU32] {
        let v = node as usize;
        if level == 0 {
            let start = v * (1 + self.m0);
            &self.layer0[start..start + 1 + self.m0]
        } else if level > self.levels[v].load(Ordering::Relaxed) as usize {
            &[]
        } else {
            match self.upper[v].get() {
                Some(lists) => {
                    let start = (level - 1) * (1 + self.m);
                    &lists[start..start + 1 + self.m]
                }
                None => &[],
            }
        }
    }

    /// Replaces the links of `node` on `level`; the caller holds the node's lock.
    pub(crate) fn set_links(&self, node: u32, level: usize, links: &[u32]) {
        let list = self.list(node, level);
        if list.is_empty() {
            return;
        }
        let count = links.len().min(list.len() - 1);
        for (slot, &link) in list[1..].iter().zip(&links[..count]) {
            slot.store(link, Ordering::Release);
        }
        list[0].store(count as u32, Ordering::Release);
    }

    pub(crate) fn set_state(&self, node: u32, state: u8) {
        self.states[node as usize].store(state, Ordering::Release);
    }
}

/// Ids to nodes, and the next node number to hand out.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) id_map: FxHashMap<u64, u32>,
    /// The next node number (tombstones keep theirs until the graph is next encoded).
    pub(crate) next: u32,
    upper_words: u64,
}

/// The concurrent in-memory graph; see the module docs for its locks.
#[derive(Debug)]
pub(crate) struct LiveGraph {
    pub(crate) m: usize,
    pub(crate) m0: usize,
    nodes: RwLock<Arc<Nodes>>,
    grow: RwLock<()>,
    pub(crate) registry: RwLock<Registry>,
    /// Entry node and its level; held for a whole insert that raises the top level.
    /// Searches read `entry_now` instead, so such an insert never holds them up.
    pub(crate) entry: Mutex<Option<(u32, usize)>>,
    /// The value of `entry`, published after every change to it: `NO_ENTRY` or
    /// `node << 8 | level`.
    entry_now: AtomicU64,
    live: AtomicUsize,
    /// Deleted nodes whose neighbours still need re-linking (`Hnsw::delete_deferred`);
    /// grows with the deletes not yet repaired, one word each. A leaf lock.
    pub(crate) repairs: Mutex<Vec<u32>>,
}

/// A change in progress: keeps growth out and names the arrays the change writes.
pub(crate) struct Change<'a> {
    _grow: RwLockReadGuard<'a, ()>,
    pub(crate) view: LiveView<'a>,
}

impl LiveGraph {
    pub(crate) fn new(m: usize, m0: usize) -> LiveGraph {
        LiveGraph {
            m,
            m0,
            nodes: RwLock::new(Arc::new(Nodes::with_capacity(m, m0, 0))),
            grow: RwLock::new(()),
            registry: RwLock::new(Registry::default()),
            entry: Mutex::new(None),
            entry_now: AtomicU64::new(NO_ENTRY),
            live: AtomicUsize::new(0),
            repairs: Mutex::new(Vec::new()),
        }
    }

    /// Copies a frozen graph into memory (no distance is computed: O(links)).
    pub(crate) fn thaw(view: &FrozenView<'_>) -> LiveGraph {
        let n = view.ids.len();
        let graph = LiveGraph::new(view.m, view.m0);
        let nodes = Nodes::with_capacity(view.m, view.m0, n.max(MIN_CAPACITY));
        let mut registry = Registry::default();
        registry.id_map.reserve(n);
        for (v, &id) in view.ids.iter().enumerate() {
            let node = v as u32;
            let level = view.levels[2 * v] as usize;
            nodes.init(node, id, level);
            let offset = view.levels[2 * v + 1] as usize;
            if let Some(lists) = nodes.upper[v].get() {
                for (t, &w) in lists.iter().zip(&view.upper[offset..offset + lists.len()]) {
                    t.store(w, Ordering::Relaxed);
                }
            }
            registry.id_map.insert(id, node);
            registry.upper_words += level as u64 * (1 + view.m as u64);
        }
        for (t, &w) in nodes.layer0.iter().zip(view.layer0) {
            t.store(w, Ordering::Relaxed);
        }
        registry.next = n as u32;
        *graph.nodes.write() = Arc::new(nodes);
        *graph.registry.write() = registry;
        graph.set_entry(&mut graph.entry.lock(), view.entry);
        graph.live.store(n, Ordering::Relaxed);
        graph
    }

    /// Sets the entry (the caller holds its lock) and publishes it to searches.
    pub(crate) fn set_entry(&self, guard: &mut Option<(u32, usize)>, entry: Option<(u32, usize)>) {
        *guard = entry;
        let word = entry.map_or(NO_ENTRY, |(node, level)| {
            u64::from(node) << 8 | level as u64
        });
        self.entry_now.store(word, Ordering::Release);
    }

    /// The entry as last published.
    pub(crate) fn entry_now(&self) -> Option<(u32, usize)> {
        let word = self.entry_now.load(Ordering::Acquire);
        (word != NO_ENTRY).then_some(((word >> 8) as u32, (word & 0xFF) as usize))
    }

    /// A snapshot to search: lock-free once taken.
    ///
    /// The entry is read before the arrays: a node is published as the entry only once it
    /// is in the arrays of the time, and arrays only grow, so the entry is in these.
    pub(crate) fn view(&self) -> LiveView<'_> {
        let entry = self.entry_now();
        LiveView {
            nodes: self.nodes.read().clone(),
            graph: self,
            entry,
        }
    }

    /// Live (inserted, not deleted) ids.
    pub(crate) fn live_len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Starts a change that adds no node (a delete).
    pub(crate) fn change(&self) -> Change<'_> {
        let grow = self.grow.read();
        Change {
            _grow: grow,
            view: self.view(),
        }
    }

    /// Registers `ids` (with their levels) as new nodes and makes them live, unlinked.
    /// Fails without a change if an id is present or repeated, or the graph is full.
    pub(crate) fn add_nodes(
        &self,
        ids: &[u64],
        levels: &[usize],
    ) -> Result<(Change<'_>, std::ops::Range<u32>)> {
        let new_upper: u64 = levels.iter().map(|&l| l as u64 * (1 + self.m as u64)).sum();
        loop {
            let grow = self.grow.read();
            let mut registry = self.registry.write();
            let mut batch = rustc_hash::FxHashSet::default();
            for &id in ids {
                if registry.id_map.contains_key(&id) || !batch.insert(id) {
                    return Err(Error::DuplicateId { id });
                }
            }
            let first = registry.next;
            if u64::from(first) + ids.len() as u64 >= u64::from(NO_NODE) {
                return Err(Error::Full {
                    limit: u64::from(NO_NODE),
                });
            }
            if registry.upper_words + new_upper > u64::from(u32::MAX) {
                return Err(Error::Full {
                    limit: u64::from(first),
                });
            }
            let end = first as usize + ids.len();
            let nodes = self.nodes.read().clone();
            if end > nodes.capacity() {
                drop(registry);
                drop(grow);
                self.grow_to(end);
                continue;
            }
            for (i, (&id, &level)) in ids.iter().zip(levels).enumerate() {
                let node = first + i as u32;
                nodes.init(node, id, level);
                registry.id_map.insert(id, node);
            }
            registry.next = end as u32;
            registry.upper_words += new_upper;
            self.live.fetch_add(ids.len(), Ordering::Relaxed);
            drop(registry);
            let change = Change {
                _grow: grow,
                view: LiveView {
                    nodes,
                    graph: self,
                    entry: self.entry_now(),
                },
            };
            return Ok((change, first..end as u32));
        }
    }

    /// Removes `id` from the registry and marks its node deleted; returns the node.
    pub(crate) fn remove(&self, change: &Change<'_>, id: u64) -> Result<u32> {
        let node = self
            .registry
            .write()
            .id_map
            .remove(&id)
            .ok_or(Error::UnknownId { id })?;
        change.view.nodes.set_state(node, DELETED);
        self.live.fetch_sub(1, Ordering::Relaxed);
        Ok(node)
    }

    /// Grows the arrays to hold at least `min` nodes (doubling), under `grow` exclusive.
    fn grow_to(&self, min: usize) {
        let _exclusive = self.grow.write();
        let current = self.nodes.read().clone();
        if current.capacity() >= min {
            return;
        }
        let capacity = min.max(current.capacity() * 2).max(MIN_CAPACITY);
        let grown = Arc::new(current.grown(capacity));
        *self.nodes.write() = grown;
    }
}

/// A graph snapshot: the arrays as of when it was taken, read without locks.
#[derive(Clone)]
pub(crate) struct LiveView<'a> {
    pub(crate) nodes: Arc<Nodes>,
    pub(crate) graph: &'a LiveGraph,
    /// The entry when the view was taken (inserts read the current one under its lock).
    entry: Option<(u32, usize)>,
}

impl Graph for LiveView<'_> {
    /// Every number the arrays hold, vacant ones included (searches skip them).
    fn node_count(&self) -> usize {
        self.nodes.capacity()
    }

    #[inline]
    fn id(&self, node: u32) -> u64 {
        self.nodes.ids[node as usize].load(Ordering::Relaxed)
    }

    #[inline]
    fn level(&self, node: u32) -> usize {
        self.nodes.levels[node as usize].load(Ordering::Relaxed) as usize
    }

    #[inline]
    fn prefetch_node(&self, node: u32) {
        let v = node as usize;
        if let (Some(id), Some(state)) = (self.nodes.ids.get(v), self.nodes.states.get(v)) {
            vellum_fs::prefetch(id);
            vellum_fs::prefetch(state);
        }
    }

    #[inline]
    fn prefetch_links(&self, node: u32) {
        let list = self.nodes.list(node, 0);
        let lines = (list.len() * 4).div_ceil(vellum_fs::CACHE_LINE_BYTES);
        for line in 0..lines.min(crate::graph::LINK_LINES) {
            if let Some(word) = list.get(line * vellum_fs::CACHE_LINE_BYTES / 4) {
                vellum_fs::prefetch(word);
            }
        }
    }

    /// Deleted, or not yet live.
    #[inline]
    fn is_deleted(&self, node: u32) -> bool {
        self.nodes.states[node as usize].load(Ordering::Acquire) != LIVE
    }

    fn entry(&self) -> Option<(u32, usize)> {
        self.entry
    }

    #[inline]
    fn for_each_neighbour<F: FnMut(u32)>(&self, node: u32, level: usize, mut f: F) {
        let list = self.nodes.list(node, level);
        if list.is_empty() {
            return;
        }
        let count = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
        let capacity = self.nodes.capacity() as u32;
        for slot in &list[1..=count] {
            let n = slot.load(Ordering::Acquire);
            // Links name nodes of these arrays; the bound only guards a reader against
            // a logic error turning into a panic.
            if n < capacity {
                f(n);
            }
        }
    }
}

impl LiveView<'_> {
    /// Copies the links of `node` on `level` into `out`.
    pub(crate) fn links(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        self.for_each_neighbour(node, level, |n| out.push(n));
    }
}
