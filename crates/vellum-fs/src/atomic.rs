//! Durable file replacement and directory creation: the helpers every layer uses instead of
//! writing their own.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::{File, Fs};

/// The suffix of the temporary file [`atomic_replace`] writes next to its target.
pub const TMP_SUFFIX: &str = ".tmp";

/// The temporary name used while replacing `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces the file at `path` with `contents`, durably and atomically.
///
/// Contract: when this returns `Ok`, `path` holds exactly `contents` and survives any crash.
/// If a crash happens at any moment before that, `path` afterwards holds exactly its old
/// contents (or is absent if it was absent) or exactly `contents`: never a mix, never a
/// prefix. A leftover temporary file (`<name>.tmp`) may remain after a crash; the next
/// replace overwrites it.
///
/// Steps, each needed: write the temporary file in the same directory; `sync_data` it (else
/// the rename could reach disk before the data, leaving a short file); rename it over
/// `path` (atomic); `sync_dir` the directory (else the rename itself may be lost).
pub fn atomic_replace(fs: &dyn Fs, path: &Path, contents: &[u8]) -> Result<()> {
    atomic_replace_with(fs, path, |file| file.write_at(contents, 0))
}

/// As [`atomic_replace`], with the contents written by `write` into the temporary file
/// (for streamed contents).
pub fn atomic_replace_with(
    fs: &dyn Fs,
    path: &Path,
    write: impl FnOnce(&dyn File) -> Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let file = fs.create(&tmp)?;
    write(file.as_ref())?;
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(parent_dir(path))
}

/// Removes a file durably (the removal survives a crash once this returns).
pub fn remove_file_durable(fs: &dyn Fs, path: &Path) -> Result<()> {
    fs.remove_file(path)?;
    fs.sync_dir(parent_dir(path))
}

/// Creates `path` and its missing parents so that they survive a crash: each directory that
/// did not exist is created and its parent synced.
pub fn create_dir_all_durable(fs: &dyn Fs, path: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || fs.exists(p)? {
            break;
        }
        missing.push(p);
        cur = p.parent();
    }
    if missing.is_empty() {
        if !fs.is_dir(path)? {
            return Err(Error::io(
                crate::OpKind::CreateDir,
                path,
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            ));
        }
        return Ok(());
    }
    fs.create_dir_all(path)?;
    for dir in missing.iter().rev() {
        fs.sync_dir(parent_dir(dir))?;
    }
    Ok(())
}
