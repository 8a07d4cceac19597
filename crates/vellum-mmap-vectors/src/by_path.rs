//! Opening a store on the real file system by path, for users of this crate alone.

use std::path::Path;

use vellum_checkpoint::{CheckpointConfig, Checkpointer, LoadedGeneration};
use vellum_fs::RealFs;

use crate::{Result, StoreConfig, VectorStore};

/// The subdirectory of [`VectorStore::open_path`]'s directory that holds the segment files.
pub const VECTORS_DIR: &str = "vectors";
/// The subdirectory of [`VectorStore::open_path`]'s directory that holds the checkpoint
/// generations.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

impl VectorStore {
    /// Opens (creating if needed) a store and its checkpointer under `dir` on the operating
    /// system's file system: the segment files in `dir/`[`VECTORS_DIR`], the generations in
    /// `dir/`[`CHECKPOINTS_DIR`] (default [`CheckpointConfig`]). The store is at the state
    /// of the current generation (empty if there is none); the caller then replays its WAL
    /// after the LSN that generation covers (the `wal_lsn` of [`Checkpointer::current`]).
    /// Checkpoint with [`VectorStore::checkpoint`] and the returned checkpointer; for another
    /// checkpoint configuration or layout, use [`VectorStore::open_from_path`].
    pub fn open_path(
        dir: impl AsRef<Path>,
        config: StoreConfig,
    ) -> Result<(VectorStore, Checkpointer)> {
        let dir = dir.as_ref();
        let (checkpointer, loaded) =
            Checkpointer::open_path(dir.join(CHECKPOINTS_DIR), CheckpointConfig::default())?;
        let store = VectorStore::open_from_path(
            dir.join(VECTORS_DIR),
            config,
            &checkpointer,
            loaded.as_ref(),
        )?;
        Ok((store, checkpointer))
    }

    /// [`VectorStore::open_from`] on the operating system's file system: the segment files
    /// in `dir`, at the generation `loaded` that `checkpointer` (for instance from
    /// [`Checkpointer::open_path`]) loaded.
    pub fn open_from_path(
        dir: impl AsRef<Path>,
        config: StoreConfig,
        checkpointer: &Checkpointer,
        loaded: Option<&LoadedGeneration>,
    ) -> Result<VectorStore> {
        VectorStore::open_from(RealFs::shared(), dir.as_ref(), config, checkpointer, loaded)
    }
}
