//! HNSW: build, incremental insert and delete, filtered search, save and zero-copy open.
//!
//! One file per concern: this one holds the index value, its parameters, open and save;
//! `build.rs` inserts (link selection), `delete.rs` deletes and repairs, `upsert.rs`
//! replaces an id, `search.rs` walks the graph and `filtered.rs` plans a filtered search.
//!
//! Every operation takes `&self`: inserts, deletes and searches run at once from many
//! threads (see `live.rs` for the locks). The caller's [`VectorSource`] must keep a deleted
//! id's vector readable until the searches that began before the delete have returned.

mod build;
mod delete;
mod filtered;
mod quantized;
mod reach;
mod scorer;
mod search;
mod upsert;

use std::sync::{Arc, OnceLock};

use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::exact::Filter;
use crate::format::{self, EncodeParams, Header, Layout, MAX_DIM, MAX_M};
use crate::graph::FrozenView;
use crate::live::LiveGraph;
use crate::source::VectorSource;

/// A filtered search whose allowed set is estimated at or below this many vectors scans
/// them exactly instead of walking the graph (exact is then both faster and perfect).
pub const FILTER_EXACT_MAX: usize = 4096;

/// Bytes a graph can be opened from without copying: a `Vec<u8>`, a memory map, ...
///
/// `as_ref()` must return the same bytes on every call for the life of the value.
pub type GraphBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on the upper levels; layer 0 keeps `2 * m`. Default 16.
    pub m: usize,
    /// Candidate list size while inserting. Default 200.
    pub ef_construction: usize,
    /// Candidate list size while searching (raised to `k` when smaller). Default 64.
    pub ef_search: usize,
    /// Seed of the level draw; with the same seed and insertion order a sequential build is
    /// identical run to run. Default `0x5EED`.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> HnswParams {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            seed: 0x5EED,
        }
    }
}

/// Per-search options.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchOptions<'a> {
    /// Candidate list size; `None` uses the index's `ef_search`.
    pub ef: Option<usize>,
    /// Restricts which ids may be returned.
    pub filter: Option<Filter<'a>>,
}

/// An HNSW index over vectors it reads through a [`VectorSource`].
///
/// After [`Hnsw::open`] the index searches the graph bytes in place (zero-copy). The first
/// insert or delete copies the links into memory (O(links), no distance is computed) and
/// applies the change there; searches meanwhile go on over the bytes and move to the copy
/// once it exists. [`Hnsw::to_bytes`] writes a new complete graph file.
pub struct Hnsw {
    metric: Metric,
    dim: usize,
    params: HnswParams,
    /// The graph file opened, until the first change (`None` for a new index).
    frozen: Option<Frozen>,
    /// The in-memory graph, from the first change on (or from `new`).
    live: OnceLock<LiveGraph>,
}

struct Frozen {
    bytes: GraphBytes,
    layout: Layout,
    m: usize,
    m0: usize,
    entry: Option<(u32, usize)>,
}

impl Frozen {
    fn view(&self) -> Result<FrozenView<'_>> {
        let bytes = (*self.bytes).as_ref();
        if bytes.len() != self.layout.upper().end {
            return Err(format_changed());
        }
        Ok(FrozenView {
            ids: format::words(bytes, self.layout.ids())?,
            levels: format::words(bytes, self.layout.levels())?,
            layer0: format::words(bytes, self.layout.layer0())?,
            upper: format::words(bytes, self.layout.upper())?,
            m: self.m,
            m0: self.m0,
            entry: self.entry,
        })
    }
}

fn format_changed() -> Error {
    crate::error::corrupt(0, "graph bytes changed after open")
}

/// Owned bytes copied to an 8-byte aligned buffer.
pub(crate) struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// `bytes` if they start 8-byte aligned (a map is page-aligned), else an aligned copy.
    pub(crate) fn aligned(bytes: GraphBytes) -> GraphBytes {
        let raw = (*bytes).as_ref();
        if (raw.as_ptr() as usize).is_multiple_of(8) {
            return bytes;
        }
        let mut words = vec![0u64; raw.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..raw.len()].copy_from_slice(raw);
        Arc::new(AlignedBytes {
            words,
            len: raw.len(),
        })
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("metric", &self.metric)
            .field("dim", &self.dim)
            .field("params", &self.params)
            .field("len", &self.len())
            .field("zero_copy", &self.is_zero_copy())
            .finish()
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

/// What a search or a change works on: the opened file's bytes or the in-memory graph.
pub(crate) enum Current<'a> {
    Frozen(FrozenView<'a>),
    Live(&'a LiveGraph),
}

impl Hnsw {
    /// An empty index.
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Result<Hnsw> {
        if dim == 0 || dim > MAX_DIM {
            return Err(invalid("dim", format!("{dim} is outside 1..={MAX_DIM}")));
        }
        if params.m < 2 || params.m > MAX_M {
            return Err(invalid("m", format!("{} is outside 2..={MAX_M}", params.m)));
        }
        for (name, value) in [
            ("ef_construction", params.ef_construction),
            ("ef_search", params.ef_search),
        ] {
            if value == 0 || value > u32::MAX as usize {
                return Err(invalid(name, format!("{value} is outside 1..=u32::MAX")));
            }
        }
        Ok(Hnsw {
            metric,
            dim,
            params,
            frozen: None,
            live: OnceLock::from(LiveGraph::new(params.m, 2 * params.m)),
        })
    }

    /// Opens a graph file in place: validates it (header, checksums, every link) and
    /// searches it without copying. Bytes that are not 8-byte aligned are copied once.
    pub fn open(bytes: GraphBytes) -> Result<Hnsw> {
        if cfg!(target_endian = "big") {
            return Err(Error::UnsupportedHost);
        }
        let bytes = AlignedBytes::aligned(bytes);
        let (header, layout) = format::decode((*bytes).as_ref())?;
        let Header {
            metric,
            dim,
            m,
            m0,
            ef_construction,
            ef_search,
            node_count,
            ..
        } = header;
        let entry = (node_count > 0).then_some((header.entry_node, header.max_level as usize));
        let params = HnswParams {
            m: m as usize,
            ef_construction: ef_construction as usize,
            ef_search: ef_search as usize,
            seed: header.seed,
        };
        if m0 as usize != 2 * m as usize {
            return Err(crate::error::corrupt(
                28,
                format!("M0 {m0} is not 2 * M ({m})"),
            ));
        }
        Ok(Hnsw {
            metric,
            dim: dim as usize,
            params,
            frozen: Some(Frozen {
                bytes,
                layout,
                m: m as usize,
                m0: m0 as usize,
                entry,
            }),
            live: OnceLock::new(),
        })
    }

    /// Opens a graph file held in a vector (see [`Hnsw::open`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Hnsw> {
        Hnsw::open(Arc::new(bytes))
    }

    /// Encodes the live graph as a complete graph file (docs/format/index.md).
    ///
    /// Inserts running meanwhile may or may not be in it (a node being linked is saved
    /// with the links it has so far); callers that need one point in time keep changes
    /// out while it runs.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let p = EncodeParams {
            metric: self.metric,
            dim: self.dim as u32,
            m: self.params.m as u32,
            m0: 2 * self.params.m as u32,
            ef_construction: self.params.ef_construction as u32,
            ef_search: self.params.ef_search as u32,
            seed: self.params.seed,
        };
        match self.current()? {
            Current::Frozen(view) => format::encode(&view, &p),
            Current::Live(graph) => format::encode(&graph.view(), &p),
        }
    }

    /// Metric of the index.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Vector dimension of the index.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Parameters of the index.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the default `ef` used by [`Hnsw::search`].
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<()> {
        if ef_search == 0 || ef_search > u32::MAX as usize {
            return Err(invalid(
                "ef_search",
                format!("{ef_search} is outside 1..=u32::MAX"),
            ));
        }
        self.params.ef_search = ef_search;
        Ok(())
    }

    /// True while the index still searches the bytes it was opened from.
    pub fn is_zero_copy(&self) -> bool {
        self.live.get().is_none()
    }

    /// Number of live (not deleted) ids.
    pub fn len(&self) -> usize {
        match (self.live.get(), &self.frozen) {
            (Some(graph), _) => graph.live_len(),
            (None, Some(frozen)) => frozen.layout.ids().len() / 8,
            (None, None) => 0,
        }
    }

    /// True when no id is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `id` is live in the index (or being inserted).
    pub fn contains(&self, id: u64) -> bool {
        match self.current() {
            Ok(Current::Frozen(view)) => view.find(id).is_some(),
            Ok(Current::Live(graph)) => graph.registry.read().id_map.contains_key(&id),
            Err(_) => false,
        }
    }

    /// Live ids in ascending order.
    pub fn ids(&self) -> Result<Vec<u64>> {
        Ok(match self.current()? {
            Current::Frozen(view) => view.ids.to_vec(),
            Current::Live(graph) => {
                let mut ids: Vec<u64> = graph.registry.read().id_map.keys().copied().collect();
                ids.sort_unstable();
                ids
            }
        })
    }

    pub(crate) fn check_source<S: VectorSource + ?Sized>(&self, source: &S) -> Result<()> {
        if source.dim() == self.dim {
            Ok(())
        } else {
            Err(Error::DimensionMismatch {
                expected: self.dim,
                found: source.dim(),
            })
        }
    }

    /// The graph searches read: the in-memory one once it exists, else the opened file.
    pub(crate) fn current(&self) -> Result<Current<'_>> {
        match (self.live.get(), &self.frozen) {
            (Some(graph), _) => Ok(Current::Live(graph)),
            (None, Some(frozen)) => Ok(Current::Frozen(frozen.view()?)),
            (None, None) => Err(format_changed()),
        }
    }

    /// The in-memory graph, copying an opened file's links into memory the first time.
    /// Searches meanwhile go on over the file; a second caller waits for the one copy.
    pub(crate) fn thaw(&self) -> Result<&LiveGraph> {
        if let Some(graph) = self.live.get() {
            return Ok(graph);
        }
        let view = match &self.frozen {
            Some(frozen) => frozen.view()?,
            None => return Err(format_changed()),
        };
        Ok(self.live.get_or_init(|| LiveGraph::thaw(&view)))
    }
}
