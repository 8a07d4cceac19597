//! Portable snapshot archives for Vellum.
//!
//! A snapshot is one archive of a collection *generation* (a set of named files): a header,
//! block-framed sections each with a CRC32 per block and optional zstd, a footer with the
//! section table and the resulting file set, and a trailer with the BLAKE3 of the whole
//! archive. The byte layout is specified in `docs/format/snapshot.md`.
//!
//! * Export: [`export_archive`], [`export_to_file`], [`export_chunks`] (numbered chunks
//!   carrying their offset; the last is final and carries the totals and the hash).
//! * Import: [`ChunkReceiver`] takes chunks in any order, duplicates included, durably and
//!   resumably, and publishes the archive only after verifying all of it.
//! * Restore: [`restore_chain`] applies a full snapshot and its incrementals into a staging
//!   directory next to the target and swaps it in atomically; [`recover_swap`] finishes or
//!   undoes an interrupted swap. [`restore_chain_with`] also takes [`ImportLimits`] (a byte
//!   and file budget, name bounds) and an allow-list of names, all checked against the
//!   footers before anything is written.
//! * Catalog: [`Catalog`] creates, lists, gets, deletes and retains snapshots.
//!
//! Every decoder is total: arbitrary bytes give a typed [`Error`].
//!
//! ```
//! use std::path::{Path, PathBuf};
//! use vellum_fs::{Fs, SimFs};
//! use vellum_snapshot_format::*;
//!
//! let fs = SimFs::new();
//! fs.create_dir_all(Path::new("/gen")).unwrap();
//! fs.create(Path::new("/gen/vectors")).unwrap().write_at(&[7u8; 100_000], 0).unwrap();
//! let files = list_generation(&fs, Path::new("/gen")).unwrap();
//! let opts = ExportOptions::full(SnapshotId::from_seed(1), 42);
//! export_to_file(&fs, &files, &opts, Path::new("/snap.vsnap")).unwrap();
//! restore_chain(&fs, &[PathBuf::from("/snap.vsnap")], Path::new("/restored")).unwrap();
//! assert_eq!(fs.read_file(Path::new("/restored/vectors")).unwrap(), vec![7u8; 100_000]);
//! ```
//!
//! # On the real file system
//!
//! The `*_path` functions ([`export_dir_to_path`], [`verify_path`], [`restore_chain_path`],
//! [`recover_swap_path`], [`list_generation_path`], [`Catalog::open_path`]) work on the
//! operating system's file system by path, so a user of this crate alone needs nothing from
//! `vellum-fs`:
//!
//! ```
//! use std::fs;
//! use vellum_snapshot_format::{
//!     ExportOptions, SnapshotId, export_dir_to_path, restore_chain_path, verify_path,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let source = dir.path().join("generation");
//! fs::create_dir_all(source.join("vectors"))?;
//! fs::write(source.join("meta"), b"dim=3")?;
//! fs::write(source.join("vectors/segment-0"), vec![7u8; 100_000])?;
//!
//! // Write an archive of the directory (atomically: the file appears whole or not at all).
//! let archive = dir.path().join("full.vsnap");
//! let opts = ExportOptions::full(SnapshotId::from_seed(1), 42);
//! let summary = export_dir_to_path(&source, &opts, &archive)?;
//!
//! // Verify every byte of it (block CRCs, per-file and whole-archive BLAKE3).
//! let info = verify_path(&archive)?;
//! assert_eq!(info.archive_hash, summary.archive_hash);
//! assert_eq!(info.footer.state.len(), 2);
//!
//! // Restore it into a directory (staged, then swapped in atomically).
//! let target = dir.path().join("restored");
//! let report = restore_chain_path(&[&archive], &target)?;
//! assert_eq!(report.files, 2);
//! assert_eq!(fs::read(target.join("meta"))?, b"dim=3");
//! assert_eq!(fs::read(target.join("vectors/segment-0"))?, vec![7u8; 100_000]);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod by_path;
mod catalog;
mod chunk;
mod error;
pub mod fail_points;
pub mod format;
pub mod fuzzing;
mod id;
mod import;
mod limits;
mod reader;
mod restore;
mod verify_stream;
mod writer;

pub use by_path::{
    export_dir_to_path, list_generation_path, recover_swap_path, restore_chain_path, verify_path,
};
pub use catalog::{ARCHIVE_EXT, Catalog, INDEX_FILE, SnapshotMeta};
pub use chunk::{
    CHUNK_HEADER_BYTES, Chunk, DEFAULT_CHUNK_BYTES, FinalTotals, MAX_CHUNK_PAYLOAD_BYTES,
    MIN_CHUNK_BYTES,
};
pub use error::{Error, Result};
pub use format::{
    ArchiveHeader, Compression, Footer, SectionEntry, SectionKind, SectionTotals, SnapshotKind,
    StateEntry,
};
pub use id::SnapshotId;
pub use import::{ChunkReceiver, ImportOptions, LOG_FILE, PART_FILE, Receipt};
pub use limits::{ImportLimits, check_chain_limits, check_entry_name};
pub use reader::{
    ArchiveInfo, ByteSource, FileSource, NullSink, SectionSink, SliceSource, decode_archive,
    read_summary, read_summary_with, verify_file,
};
pub use restore::{
    RestoreReport, SwapPaths, SwapRecovery, check_chain, classify_rename_error, recover_swap,
    remove_tree, rename_same_fs, restore_chain, restore_chain_from, restore_chain_with,
};
pub use writer::{
    ArchiveWriter, ByteSink, ExportOptions, ExportSummary, FileSink, ParentState, SourceFile,
    default_chunk_bytes, export_archive, export_chunks, export_to_file, list_generation, now_ms,
};
