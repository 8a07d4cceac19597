//! Saving, viewing and loading an index file on the real file system by path, for users of
//! this crate alone (nothing from `vellum-fs` is needed to call these).

use std::path::Path;

use vellum_fs::RealFs;

use super::IndexView;
use crate::error::Result;
use crate::hnsw::Hnsw;
use crate::owned::OwnedVectors;
use crate::source::VectorSource;

impl Hnsw {
    /// [`Hnsw::save`] on the operating system's file system: durably and atomically
    /// replaces the file at `path` with this index and the vectors `source` holds for it.
    pub fn save_path<S: VectorSource + ?Sized>(
        &self,
        path: impl AsRef<Path>,
        source: &S,
    ) -> Result<()> {
        self.save(&RealFs, path, source)
    }

    /// [`Hnsw::load`] on the operating system's file system.
    pub fn load_path(path: impl AsRef<Path>) -> Result<(Hnsw, OwnedVectors)> {
        Hnsw::load(&RealFs, path)
    }
}

impl IndexView {
    /// [`IndexView::open`] on the operating system's file system: maps the index file at
    /// `path` and searches it in place.
    pub fn open_path(path: impl AsRef<Path>) -> Result<IndexView> {
        IndexView::open(&RealFs, path)
    }
}
