//! Restore: decode a chain of archives into a staging directory next to the target, make it
//! durable, and swap it in atomically. See "Restore and the atomic swap" in
//! `docs/format/snapshot.md` for the crash analysis of every step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use vellum_fs::{File, Fs, parent_dir};

use crate::error::{Error, Result};
use crate::format::{ArchiveHeader, Footer, SectionEntry, SectionHead, SectionKind, SnapshotKind};
use crate::id::SnapshotId;
use crate::limits::{ImportLimits, check_chain_limits};
use crate::reader::{
    ArchiveInfo, ByteSource, FileSource, SectionSink, decode_archive, read_summary,
};

/// Renames `from` to `to`; a rename across file systems is [`Error::CrossDevice`] naming both
/// paths (there is no copy fallback).
pub fn rename_same_fs(fs: &dyn Fs, from: &Path, to: &Path) -> Result<()> {
    fs.rename(from, to)
        .map_err(|e| classify_rename_error(e, from, to))
}

/// Turns an `EXDEV` rename failure into [`Error::CrossDevice`]; other errors pass through.
pub fn classify_rename_error(e: vellum_fs::Error, from: &Path, to: &Path) -> Error {
    if e.io_kind() == Some(std::io::ErrorKind::CrossesDevices) {
        Error::CrossDevice {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        }
    } else {
        Error::Fs(e)
    }
}

/// Removes a file or a directory tree (not durable by itself: sync the parent after).
pub fn remove_tree(fs: &dyn Fs, path: &Path) -> Result<()> {
    if !fs.exists(path)? {
        return Ok(());
    }
    if fs.is_dir(path)? {
        for name in fs.list_dir(path)? {
            remove_tree(fs, &path.join(name))?;
        }
        fs.remove_dir(path)?;
    } else {
        fs.remove_file(path)?;
    }
    Ok(())
}

/// The staging and old-state names used while restoring into `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapPaths {
    /// The target directory.
    pub target: PathBuf,
    /// Where the new state is built: `<parent>/.<name>.restore-staging`.
    pub staging: PathBuf,
    /// Where the old state waits for removal: `<parent>/.<name>.restore-old`.
    pub old: PathBuf,
    /// The directory holding all three.
    pub parent: PathBuf,
}

impl SwapPaths {
    /// The paths for `target`, which must have a final name component.
    pub fn new(target: &Path) -> Result<Self> {
        let name =
            target
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::InvalidInput {
                    reason: format!("restore target {} has no UTF-8 file name", target.display()),
                })?;
        let parent = parent_dir(target).to_path_buf();
        Ok(SwapPaths {
            target: target.to_path_buf(),
            staging: parent.join(format!(".{name}.restore-staging")),
            old: parent.join(format!(".{name}.restore-old")),
            parent,
        })
    }
}

/// What [`recover_swap`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapRecovery {
    /// No restore was in progress.
    Clean,
    /// A restore was interrupted before its swap was durable: the old state was put back
    /// (or kept) and the staging directory removed.
    RolledBack,
    /// The swap had completed; the leftover old state was removed.
    Completed,
}

/// Finishes or undoes a restore interrupted by a crash, so `target` is wholly the old or
/// wholly the new state. Run by [`restore_chain`] first; the facade also runs it when it
/// opens a database. Idempotent, and safe to crash in (each step is re-derivable).
pub fn recover_swap(fs: &dyn Fs, target: &Path) -> Result<SwapRecovery> {
    let p = SwapPaths::new(target)?;
    let target_exists = fs.exists(&p.target)?;
    let old_exists = fs.exists(&p.old)?;
    let staging_exists = fs.exists(&p.staging)?;
    // Every change below is made durable by one sync of the parent at the end: a crash
    // before it leaves a state this same function recovers from again.
    let mut changed = false;
    let outcome = match (target_exists, old_exists) {
        // The old state was moved aside and the new one never (durably) arrived: put the
        // old one back. The staging copy may be whole, but we cannot tell cheaply: roll back.
        (false, true) => {
            rename_same_fs(fs, &p.old, &p.target)?;
            changed = true;
            SwapRecovery::RolledBack
        }
        // `O` exists only once `T` was moved aside, so `T` present means it is the new state.
        (true, true) => {
            remove_tree(fs, &p.old)?;
            changed = true;
            SwapRecovery::Completed
        }
        _ if staging_exists => SwapRecovery::RolledBack,
        _ => SwapRecovery::Clean,
    };
    if fs.exists(&p.staging)? {
        remove_tree(fs, &p.staging)?;
        changed = true;
    }
    if changed {
        fs.sync_dir(&p.parent)?;
    }
    Ok(outcome)
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The snapshots applied, full first.
    pub applied: Vec<SnapshotId>,
    /// Files in the restored state.
    pub files: usize,
    /// Raw bytes written into the staging directory.
    pub bytes_written: u64,
    /// What recovery found before starting.
    pub recovered: SwapRecovery,
}

/// Checks that `chain` is full, inc, inc, ... each naming the previous as parent with the
/// LSN range continuing where the previous ended.
pub fn check_chain(headers: &[ArchiveHeader]) -> Result<()> {
    let Some(first) = headers.first() else {
        return Err(Error::InvalidInput {
            reason: "restore needs at least one snapshot".into(),
        });
    };
    if first.kind != SnapshotKind::Full {
        return Err(Error::BrokenChain {
            position: 0,
            id: first.id,
            reason: "the chain must start with a full snapshot".into(),
        });
    }
    for (i, pair) in headers.windows(2).enumerate() {
        let (prev, next) = (&pair[0], &pair[1]);
        let position = i + 1;
        if next.kind != SnapshotKind::Incremental {
            return Err(Error::BrokenChain {
                position,
                id: next.id,
                reason: "only the first snapshot of a chain may be full".into(),
            });
        }
        if next.parent != Some(prev.id) {
            return Err(Error::BrokenChain {
                position,
                id: next.id,
                reason: format!(
                    "its parent is {}, but the previous snapshot is {}",
                    next.parent.unwrap_or(SnapshotId::NONE),
                    prev.id
                ),
            });
        }
        if next.lsn_start != prev.lsn_end {
            return Err(Error::BrokenChain {
                position,
                id: next.id,
                reason: format!(
                    "its LSN range starts at {} but the parent ends at {}",
                    next.lsn_start, prev.lsn_end
                ),
            });
        }
    }
    Ok(())
}

/// Writes sections into the staging directory.
struct StagingWriter<'a> {
    fs: &'a dyn Fs,
    root: &'a Path,
    dirs: &'a mut BTreeSet<PathBuf>,
    state: &'a mut BTreeMap<String, ([u8; 32], u64)>,
    current: Option<(Box<dyn File>, u64)>,
    bytes_written: u64,
    /// Bytes this archive may still write (what the budget leaves after earlier archives).
    budget_bytes: u64,
    id: SnapshotId,
}

impl StagingWriter<'_> {
    fn ensure_parent(&mut self, name: &str) -> Result<()> {
        let mut dir = self.root.to_path_buf();
        let mut parts: Vec<&str> = name.split('/').collect();
        parts.pop();
        for part in parts {
            dir.push(part);
            if !self.dirs.contains(&dir) {
                self.fs.create_dir_all(&dir)?;
                self.dirs.insert(dir.clone());
            }
        }
        Ok(())
    }
}

impl SectionSink for StagingWriter<'_> {
    fn begin_section(&mut self, head: &SectionHead) -> Result<()> {
        let path = self.root.join(&head.name);
        match head.kind {
            SectionKind::File => {
                self.ensure_parent(&head.name)?;
                let file = self.fs.create(&path)?;
                self.current = Some((file, 0));
            }
            SectionKind::Removed => {
                if self.state.remove(&head.name).is_none() {
                    return Err(Error::StateMismatch {
                        id: self.id,
                        reason: format!("removes {:?}, which the parent does not have", head.name),
                    });
                }
                self.fs.remove_file(&path)?;
            }
        }
        Ok(())
    }

    fn data(&mut self, raw: &[u8]) -> Result<()> {
        if let Some((file, at)) = self.current.as_mut() {
            // The footers were checked against the budget and every section is held to its
            // declared size; this guards the sum in case either check is ever loosened.
            let after = self.bytes_written.saturating_add(raw.len() as u64);
            if after > self.budget_bytes {
                return Err(Error::limit(
                    format!("bytes written by snapshot {}", self.id),
                    after,
                    self.budget_bytes,
                ));
            }
            file.write_at(raw, *at)?;
            *at += raw.len() as u64;
            self.bytes_written += raw.len() as u64;
        }
        Ok(())
    }

    fn end_section(&mut self, entry: &SectionEntry) -> Result<()> {
        if let Some((file, _)) = self.current.take() {
            self.fs
                .fail_point(crate::fail_points::RESTORE_BEFORE_FILE_SYNC)?;
            file.sync_data()?;
            self.state.insert(
                entry.name.clone(),
                (entry.totals.content_hash, entry.totals.raw_bytes),
            );
        }
        Ok(())
    }
}

/// Restores the chain `archives` (a full snapshot, then its incrementals in order) into the
/// directory `target`, atomically: after a crash at any moment, `target` (once
/// [`recover_swap`] has run) is wholly its old state or wholly the new one.
///
/// Every name and the chain are checked before anything is written; every archive is
/// verified completely (block CRCs, totals, per-file and whole-archive BLAKE3) while it is
/// decoded into the staging directory, which is removed on any error, leaving `target`
/// untouched.
///
/// Applies the default [`ImportLimits`] and accepts every name the format allows; see
/// [`restore_chain_with`] to set the budget and an allow-list.
pub fn restore_chain(fs: &dyn Fs, archives: &[PathBuf], target: &Path) -> Result<RestoreReport> {
    restore_chain_with(fs, archives, target, &ImportLimits::default(), &|_| true)
}

/// [`restore_chain`] within `limits`, writing only the names `accept` allows.
///
/// Before anything is written (not even the staging directory), every archive's footer is
/// checked: each section and state name against the character rules (no control
/// characters, no bidirectional controls), the name length and depth limits, and `accept`;
/// the file counts against `limits.max_files`; and the declared raw bytes of the whole
/// chain against `limits.max_total_bytes`. While decoding, no section may carry more bytes
/// than its footer entry declares ([`Error::SectionOverrun`]), so nothing beyond the
/// checked budget reaches the disk.
pub fn restore_chain_with(
    fs: &dyn Fs,
    archives: &[PathBuf],
    target: &Path,
    limits: &ImportLimits,
    accept: &dyn Fn(&str) -> bool,
) -> Result<RestoreReport> {
    // Read every header and footer first: names, tables and the chain are checked before
    // the first byte is written.
    let mut files = Vec::with_capacity(archives.len());
    let mut summaries: Vec<(ArchiveHeader, Footer)> = Vec::with_capacity(archives.len());
    for path in archives {
        let file = fs.open(path)?;
        let (header, _, footer) = read_summary(file.as_ref())?;
        summaries.push((header, footer));
        files.push(file);
    }
    restore_chain_from(
        fs,
        &summaries,
        &mut |i| Ok(Box::new(FileSource::new(files[i].as_ref())?)),
        target,
        limits,
        accept,
    )
}

/// [`restore_chain_with`] from archives held anywhere: `summaries` are their headers and
/// footers (read first, by [`read_summary_with`](crate::read_summary_with) for example, so
/// everything is checked before a byte is written), and `open(i)` gives archive `i` as a
/// stream from its first byte (an object in a store, read once, never copied to disk). Each
/// stream is verified completely while it is decoded into the staging directory, against
/// the footer read first; nothing is swapped in unless every archive passed.
pub fn restore_chain_from<'a>(
    fs: &dyn Fs,
    summaries: &[(ArchiveHeader, Footer)],
    open: &mut dyn FnMut(usize) -> Result<Box<dyn ByteSource + 'a>>,
    target: &Path,
    limits: &ImportLimits,
    accept: &dyn Fn(&str) -> bool,
) -> Result<RestoreReport> {
    let paths = SwapPaths::new(target)?;
    let recovered = recover_swap(fs, target)?;
    let headers: Vec<ArchiveHeader> = summaries.iter().map(|(h, _)| *h).collect();
    check_chain(&headers)?;
    check_chain_limits(summaries, limits, accept)?;
    if fs.exists(target)? && !fs.is_dir(target)? {
        return Err(Error::InvalidInput {
            reason: format!("restore target {} is not a directory", target.display()),
        });
    }

    vellum_fs::create_dir_all_durable(fs, &paths.staging)?;
    let result = fill_staging(fs, &paths, open, summaries, limits.max_total_bytes);
    let (bytes_written, nfiles) = match result {
        Ok(x) => x,
        Err(e) => {
            // Nothing outside the staging directory was touched; clean it up. A failure to
            // clean up is reported only if the restore itself did not fail first.
            let _ = remove_tree(fs, &paths.staging).and_then(|()| Ok(fs.sync_dir(&paths.parent)?));
            return Err(e);
        }
    };
    swap_in(fs, &paths)?;
    Ok(RestoreReport {
        applied: headers.iter().map(|h| h.id).collect(),
        files: nfiles,
        bytes_written,
        recovered,
    })
}

fn fill_staging<'a>(
    fs: &dyn Fs,
    paths: &SwapPaths,
    open: &mut dyn FnMut(usize) -> Result<Box<dyn ByteSource + 'a>>,
    summaries: &[(ArchiveHeader, Footer)],
    budget_bytes: u64,
) -> Result<(u64, usize)> {
    let mut dirs = BTreeSet::new();
    dirs.insert(paths.staging.clone());
    let mut state: BTreeMap<String, ([u8; 32], u64)> = BTreeMap::new();
    let mut bytes_written = 0;
    for (i, (header, footer)) in summaries.iter().enumerate() {
        let mut sink = StagingWriter {
            fs,
            root: &paths.staging,
            dirs: &mut dirs,
            state: &mut state,
            current: None,
            bytes_written: 0,
            budget_bytes: budget_bytes.saturating_sub(bytes_written),
            id: header.id,
        };
        let mut src = open(i)?;
        let info: ArchiveInfo = decode_archive(src.as_mut(), Some(footer), &mut sink)?;
        if info.header != *header {
            return Err(Error::corrupt(
                0,
                "the archive's header differs from the one read first",
            ));
        }
        bytes_written += sink.bytes_written;
        // The staging directory must now hold exactly this snapshot's state.
        let expected: BTreeMap<&str, ([u8; 32], u64)> = info
            .footer
            .state
            .iter()
            .map(|e| (e.name.as_str(), (e.hash, e.len)))
            .collect();
        let actual: BTreeMap<&str, ([u8; 32], u64)> =
            state.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        if expected != actual {
            let missing = expected.keys().find(|k| !actual.contains_key(*k));
            let extra = actual.keys().find(|k| !expected.contains_key(*k));
            return Err(Error::StateMismatch {
                id: header.id,
                reason: match (missing, extra) {
                    (Some(m), _) => format!("{m:?} is in the state table but was never restored"),
                    (_, Some(x)) => format!("{x:?} was restored but is not in the state table"),
                    _ => "a file's length or BLAKE3 differs from the state table".into(),
                },
            });
        }
    }
    // Directories deepest first, then the staging directory's own entry in the parent.
    let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    // The staging directory's own entry in the parent was made durable when it was created.
    for dir in &dirs {
        fs.sync_dir(dir)?;
    }
    Ok((bytes_written, state.len()))
}

/// Steps 4-7 of the swap (see the format doc): old aside, staging in, sync, old removed.
fn swap_in(fs: &dyn Fs, p: &SwapPaths) -> Result<()> {
    fs.fail_point(crate::fail_points::RESTORE_BEFORE_SWAP)?;
    if fs.exists(&p.target)? {
        rename_same_fs(fs, &p.target, &p.old)?;
        fs.fail_point(crate::fail_points::RESTORE_AFTER_TARGET_ASIDE)?;
    }
    rename_same_fs(fs, &p.staging, &p.target)?;
    fs.fail_point(crate::fail_points::RESTORE_BEFORE_SWAP_SYNC)?;
    fs.sync_dir(&p.parent)?;
    fs.fail_point(crate::fail_points::RESTORE_AFTER_SWAP_SYNC)?;
    if fs.exists(&p.old)? {
        remove_tree(fs, &p.old)?;
        fs.sync_dir(&p.parent)?;
    }
    Ok(())
}
