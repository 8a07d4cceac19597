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
#![forbid(unsafe_code)]

mod catalog;
mod chunk;
mod error;
pub mod format;
pub mod fuzzing;
mod id;
mod import;
mod limits;
mod reader;
mod restore;
mod verify_stream;
mod writer;

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
    read_summary, verify_file,
};
pub use restore::{
    RestoreReport, SwapPaths, SwapRecovery, check_chain, classify_rename_error, recover_swap,
    remove_tree, rename_same_fs, restore_chain, restore_chain_with,
};
pub use writer::{
    ArchiveWriter, ByteSink, ExportOptions, ExportSummary, FileSink, ParentState, SourceFile,
    default_chunk_bytes, export_archive, export_chunks, export_to_file, list_generation, now_ms,
};
