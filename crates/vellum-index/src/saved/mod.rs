//! An index with its vectors in one file: [`Hnsw::save`] writes it, [`IndexView::open`]
//! maps it and searches it in place, [`IndexView::to_index`] turns it back into an index
//! that can change.
//!
//! One concern per file: `format.rs` the header and the decoder (docs/format/index-file.md),
//! `rows.rs` the vectors as a [`VectorSource`], `write.rs` the save. All file I/O goes
//! through the `vellum_fs::Fs` the caller hands in (a [`vellum_fs::RealFs`] or, in tests, a
//! [`vellum_fs::SimFs`] that can crash it); this module only encodes and decodes bytes.

mod by_path;
mod format;
mod rows;
mod write;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vellum_fs::Fs;

use self::format::{Damage, FileLayout};
pub use self::format::{FILE_HEADER_LEN, FILE_MAGIC, FILE_VERSION};
use self::rows::{RowLookup, Rows};
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::exact::{Filter, Neighbour};
use crate::hnsw::{AlignedBytes, GraphBytes, Hnsw, HnswParams, SearchOptions};
use crate::owned::OwnedVectors;
use crate::source::VectorSource;

/// Part of a shared byte buffer: the graph section of a mapped index file.
struct Section {
    file: GraphBytes,
    range: Range<usize>,
}

impl AsRef<[u8]> for Section {
    fn as_ref(&self) -> &[u8] {
        &(*self.file).as_ref()[self.range.clone()]
    }
}

/// A saved index file, mapped read-only and searched in place: the graph and the vectors
/// are read from the mapped bytes, nothing is copied or rebuilt (only a map from ids to
/// rows is built when the ids are not consecutive).
///
/// Opening checks the whole file (docs/format/index-file.md lists every check), so a
/// damaged or hostile file is an [`Error::CorruptFile`] naming the file, the byte offset
/// and the field, never a panic. The view is read-only; [`IndexView::to_index`] gives an
/// index and vectors in memory that can change, and [`Hnsw::save`] writes them back.
///
/// Hazard: the file is memory-mapped. Replacing it with [`Hnsw::save`] is safe (the save
/// writes a new file and renames it over the old one; the view keeps the old one), but a
/// program that truncates or rewrites the mapped file in place makes the view read the
/// changed bytes or fault (SIGBUS).
pub struct IndexView {
    path: PathBuf,
    /// The whole file: the map, or an aligned copy if the map was not 8-aligned.
    file: GraphBytes,
    /// Searches the graph section in place; never changed (so never leaves the bytes).
    index: Hnsw,
    layout: FileLayout,
    lookup: RowLookup,
}

impl std::fmt::Debug for IndexView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexView")
            .field("path", &self.path)
            .field("len", &self.len())
            .field("dim", &self.dim())
            .field("metric", &self.metric())
            .finish()
    }
}

impl IndexView {
    /// Maps the index file at `path` read-only and checks it whole (header, lengths,
    /// checksums, every link of the graph, the graph's ids and dimension against the
    /// vectors'); O(file size), no rebuild.
    pub fn open(fs: &dyn Fs, path: impl AsRef<Path>) -> Result<IndexView> {
        let path = path.as_ref();
        let map = fs.open_read(path)?.map_read()?;
        IndexView::from_bytes_at(path, Arc::new(map))
    }

    /// Checks `bytes` as the index file at `path` (named in errors) and opens it in place.
    pub(crate) fn from_bytes_at(path: &Path, bytes: GraphBytes) -> Result<IndexView> {
        if cfg!(target_endian = "big") {
            return Err(Error::UnsupportedHost);
        }
        let file = AlignedBytes::aligned(bytes);
        let layout = format::decode(path, (*file).as_ref())?;
        let damage = Damage { path };
        let graph_start = layout.graph.start as u64;
        let graph = Arc::new(Section {
            file: file.clone(),
            range: layout.graph.clone(),
        });
        let index = Hnsw::open(graph).map_err(|error| match error {
            Error::Corrupt { offset, reason } => damage.at(graph_start + offset, "graph", reason),
            Error::UnsupportedVersion { found, supported } => damage.at(
                graph_start + 8,
                "graph",
                format!("graph format version {found}; this build reads version {supported}"),
            ),
            other => other,
        })?;
        if index.dim() != layout.dim {
            return Err(damage.dim(format!(
                "{}, but the graph's dimension is {}",
                layout.dim,
                index.dim()
            )));
        }
        if index.len() != layout.rows {
            return Err(damage.row_count(format!(
                "{} rows, but the graph holds {} ids",
                layout.rows,
                index.len()
            )));
        }
        let bytes = (*file).as_ref();
        if bytemuck::try_cast_slice::<u8, f32>(&bytes[layout.vectors.clone()]).is_err() {
            return Err(damage.at(
                layout.vectors.start as u64,
                "vectors",
                "not aligned in memory",
            ));
        }
        let ids_range = graph_ids(&layout);
        let ids: &[u64] = bytemuck::try_cast_slice(&bytes[ids_range])
            .map_err(|_| damage.at(graph_start, "graph", "ids not aligned in memory"))?;
        let lookup = RowLookup::new(ids);
        Ok(IndexView {
            path: path.to_path_buf(),
            file,
            index,
            layout,
            lookup,
        })
    }

    /// The file this view was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of ids (each with its vector).
    pub fn len(&self) -> usize {
        self.layout.rows
    }

    /// True when the file holds no ids.
    pub fn is_empty(&self) -> bool {
        self.layout.rows == 0
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.layout.dim
    }

    /// Metric of the index.
    pub fn metric(&self) -> Metric {
        self.index.metric()
    }

    /// Parameters the index was built with (a later [`IndexView::to_index`] keeps them).
    pub fn params(&self) -> HnswParams {
        self.index.params()
    }

    /// The ids, ascending (read from the mapped file).
    pub fn ids(&self) -> &[u64] {
        bytemuck::cast_slice(&(*self.file).as_ref()[graph_ids(&self.layout)])
    }

    /// Whether the file holds `id`.
    pub fn contains(&self, id: u64) -> bool {
        self.rows().get(id).is_some()
    }

    /// The vector stored under `id` (read from the mapped file), if the file holds it.
    pub fn vector(&self, id: u64) -> Option<&[f32]> {
        self.rows().get(id)
    }

    /// The `k` nearest ids with the default `ef` (see [`Hnsw::search`]).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>> {
        self.index.search(&self.rows(), query, k)
    }

    /// The `k` nearest ids, with options (see [`Hnsw::search_with`]).
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        options: &SearchOptions<'_>,
    ) -> Result<Vec<Neighbour>> {
        self.index.search_with(&self.rows(), query, k, options)
    }

    /// Exact top-`k` over every id (see [`Hnsw::exact_search`]).
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter<'_>>,
    ) -> Result<Vec<Neighbour>> {
        self.index.exact_search(&self.rows(), query, k, filter)
    }

    /// An index in memory that can change, with its vectors: the graph and the rows are
    /// copied out of the map (O(file size), no distance computed). The result does not
    /// depend on the file any more.
    pub fn to_index(&self) -> Result<(Hnsw, OwnedVectors)> {
        let bytes = (*self.file).as_ref();
        let index = Hnsw::from_bytes(bytes[self.layout.graph.clone()].to_vec())?;
        let rows = self.rows();
        let mut vectors = OwnedVectors::new(self.dim());
        vectors.reserve(self.len());
        for (row, &id) in rows.data.chunks_exact(self.dim()).zip(self.ids()) {
            vectors.insert(id, row)?;
        }
        Ok((index, vectors))
    }

    /// The mapped vectors, borrowed for one search.
    fn rows(&self) -> Rows<'_> {
        let bytes = (*self.file).as_ref();
        Rows {
            // Checked aligned at open; the bytes do not change.
            data: bytemuck::cast_slice(&bytes[self.layout.vectors.clone()]),
            dim: self.layout.dim,
            count: self.layout.rows,
            lookup: &self.lookup,
        }
    }
}

/// The graph's ids section, in file offsets.
fn graph_ids(layout: &FileLayout) -> Range<usize> {
    let ids = crate::format::ids_section(layout.rows);
    layout.graph.start + ids.start..layout.graph.start + ids.end
}

impl VectorSource for IndexView {
    fn dim(&self) -> usize {
        self.layout.dim
    }

    /// # Panics
    /// If the file holds no vector for `id` (the index asks only for ids it holds).
    fn vector(&self, id: u64) -> &[f32] {
        IndexView::vector(self, id)
            .unwrap_or_else(|| panic!("{} holds no vector for id {id}", self.path.display()))
    }
}

impl Hnsw {
    /// Opens the index file at `path` ([`Hnsw::save`]) and copies it into memory: the index
    /// and its vectors, ready to change. Shorthand for [`IndexView::open`] then
    /// [`IndexView::to_index`]; to search without copying, keep the [`IndexView`].
    pub fn load(fs: &dyn Fs, path: impl AsRef<Path>) -> Result<(Hnsw, OwnedVectors)> {
        IndexView::open(fs, path)?.to_index()
    }
}
