//! The graph as search sees it: the [`Graph`] trait, the zero-copy view over a graph file,
//! and per-thread visited marks. The in-memory graph changes go to is in `live.rs`.
//!
//! A graph file's layer 0 holds `1 + M0` words per node (a count, then links); upper levels
//! hold `1 + M` words per node and level, at a per-node word offset. Search is written once
//! against the [`Graph`] trait.

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
    /// Starts loading what `id` and `is_deleted` read for `node` (a hint; see `gather`).
    fn prefetch_node(&self, _node: u32) {}
    /// Starts loading `node`'s layer-0 links (a hint: a node that joins the candidates is
    /// likely expanded soon, and its list lives apart from its vector).
    fn prefetch_links(&self, _node: u32) {}
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
    fn prefetch_node(&self, node: u32) {
        if let Some(id) = self.ids.get(node as usize) {
            vellum_fs::prefetch(id);
        }
    }

    #[inline]
    fn prefetch_links(&self, node: u32) {
        let start = node as usize * (1 + self.m0);
        if let Some(list) = self.layer0.get(start..start + 1 + self.m0) {
            vellum_fs::prefetch_read(bytemuck::cast_slice(list), LINK_LINES);
        }
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

/// Cache lines of a link list prefetched (a layer-0 list of M0 = 32 links and its count
/// spans 132 bytes).
pub(crate) const LINK_LINES: usize = 3;

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

    /// Starts loading `node`'s mark (a hint).
    #[inline]
    pub(crate) fn prefetch(&self, node: u32) {
        if let Some(mark) = self.marks.get(node as usize) {
            vellum_fs::prefetch(mark);
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
