//! Writing, verifying and restoring archives on the real file system by path, for users of
//! this crate alone (nothing from `vellum-fs` is needed to call these).

use std::path::{Path, PathBuf};

use vellum_fs::{Fs, RealFs};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::reader::{ArchiveInfo, verify_file};
use crate::restore::{RestoreReport, SwapRecovery, recover_swap, restore_chain};
use crate::writer::{ExportOptions, ExportSummary, SourceFile, export_to_file, list_generation};

/// [`list_generation`] on the operating system's file system: every file under `dir`
/// (recursively), named by its path relative to `dir`.
pub fn list_generation_path(dir: impl AsRef<Path>) -> Result<Vec<SourceFile>> {
    list_generation(&RealFs, dir.as_ref())
}

/// Exports every file under the directory `source` (as [`list_generation_path`] lists them)
/// into an archive file at `archive`, atomically and durably, on the operating system's file
/// system (see [`export_to_file`]). The caller keeps `source` unchanged until this returns;
/// `archive` must not be inside `source`.
pub fn export_dir_to_path(
    source: impl AsRef<Path>,
    opts: &ExportOptions,
    archive: impl AsRef<Path>,
) -> Result<ExportSummary> {
    let files = list_generation(&RealFs, source.as_ref())?;
    export_to_file(&RealFs, &files, opts, archive.as_ref())
}

/// Verifies the whole archive file at `archive` on the operating system's file system
/// (every check of [`verify_file`]: block CRCs, totals, per-file and whole-archive BLAKE3)
/// and returns what it holds.
pub fn verify_path(archive: impl AsRef<Path>) -> Result<ArchiveInfo> {
    let file = RealFs.open(archive.as_ref())?;
    verify_file(file.as_ref())
}

/// [`restore_chain`] on the operating system's file system: restores `archives` (a full
/// snapshot, then its incrementals in order) into the directory `target`, atomically, with
/// the default limits.
pub fn restore_chain_path<P: AsRef<Path>>(
    archives: &[P],
    target: impl AsRef<Path>,
) -> Result<RestoreReport> {
    let archives: Vec<PathBuf> = archives.iter().map(|p| p.as_ref().to_path_buf()).collect();
    restore_chain(&RealFs, &archives, target.as_ref())
}

/// [`recover_swap`] on the operating system's file system: finishes or undoes a restore into
/// `target` that a crash interrupted. Run it before using `target` after a crash
/// ([`restore_chain_path`] runs it first itself).
pub fn recover_swap_path(target: impl AsRef<Path>) -> Result<SwapRecovery> {
    recover_swap(&RealFs, target.as_ref())
}

impl Catalog {
    /// [`Catalog::open`] on the operating system's file system: opens (creating if needed)
    /// the catalog in the directory `dir`.
    pub fn open_path(dir: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::open(RealFs::shared(), dir.as_ref())
    }
}
