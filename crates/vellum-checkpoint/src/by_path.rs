//! Opening a checkpoint directory on the real file system by path, for users of this crate
//! alone.

use std::path::Path;

use vellum_fs::RealFs;

use crate::{CheckpointConfig, Checkpointer, LoadOptions, LoadedGeneration, Result};

impl Checkpointer {
    /// [`Checkpointer::open`] on the operating system's file system: opens (creating if
    /// needed) the checkpoint directory `dir` and loads its current generation, if any.
    /// Nothing from `vellum-fs` is needed to call it.
    pub fn open_path(
        dir: impl AsRef<Path>,
        config: CheckpointConfig,
    ) -> Result<(Checkpointer, Option<LoadedGeneration>)> {
        Checkpointer::open_with(
            RealFs::shared(),
            dir.as_ref(),
            config,
            LoadOptions::default(),
        )
    }

    /// [`Checkpointer::open_with`] on the operating system's file system (as
    /// [`Checkpointer::open_path`], with load options).
    pub fn open_path_with(
        dir: impl AsRef<Path>,
        config: CheckpointConfig,
        options: LoadOptions,
    ) -> Result<(Checkpointer, Option<LoadedGeneration>)> {
        Checkpointer::open_with(RealFs::shared(), dir.as_ref(), config, options)
    }
}
