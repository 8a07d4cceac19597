//! The error type of snapshot archives.

use std::path::PathBuf;

use crate::id::SnapshotId;

/// Result alias used across this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while exporting, importing, restoring or cataloguing a
/// snapshot. Hostile or damaged input always ends in one of these, never in a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file system reported an error (the path and operation are in the message).
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),

    /// The archive's source failed (a network read that could not be resumed).
    #[error("reading the archive at offset {offset}: {reason}")]
    Source {
        /// The archive offset the read was at.
        offset: u64,
        /// What failed.
        reason: String,
    },

    /// The archive ended before a structure it promised was complete.
    #[error("archive truncated: needed {wanted} more bytes at offset {offset}")]
    Truncated {
        /// Archive offset where the missing bytes should have been.
        offset: u64,
        /// How many bytes were still needed.
        wanted: u64,
    },

    /// A magic number or a fixed field did not hold the value the format requires.
    #[error("archive corrupt at offset {offset}: {what}")]
    Corrupt {
        /// Archive offset of the structure.
        offset: u64,
        /// What was wrong.
        what: String,
    },

    /// The archive was written by a format version this code does not read.
    #[error("unsupported snapshot format version {version} (this build reads version 1)")]
    UnsupportedVersion {
        /// The version found in the header.
        version: u16,
    },

    /// A CRC32 did not match: a block, a section header or trailer, the footer, or a chunk.
    #[error("checksum mismatch in {what} at offset {offset}")]
    ChecksumMismatch {
        /// Which structure.
        what: String,
        /// Its archive offset.
        offset: u64,
    },

    /// The BLAKE3 of the whole archive (or of a file's content) is not the one recorded.
    #[error("{what}: BLAKE3 mismatch (recorded {expected}, computed {actual})")]
    HashMismatch {
        /// What was hashed (the archive, or a named file).
        what: String,
        /// Hex of the recorded hash.
        expected: String,
        /// Hex of the computed hash.
        actual: String,
    },

    /// A total (length, block count, section count, archive length) disagrees with the
    /// bytes actually present.
    #[error("{what}: recorded total {recorded} but found {found}")]
    TotalsMismatch {
        /// Which total, naming the section or chunk stream.
        what: String,
        /// The recorded value.
        recorded: u64,
        /// The value found.
        found: u64,
    },

    /// A zstd block failed to decompress to exactly its recorded size (including a
    /// decompression bomb, which is stopped at the recorded size).
    #[error("section {name:?}: zstd block at offset {offset} is invalid: {reason}")]
    Decompress {
        /// The section's name.
        name: String,
        /// Archive offset of the block frame.
        offset: u64,
        /// The decompressor's complaint.
        reason: String,
    },

    /// A name inside the archive (or given to export) is not a safe relative path.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The offending name (lossy UTF-8).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// Restore refused an entry by its name before writing anything: a control or
    /// bidirectional-override character, a name longer or deeper than the
    /// [`ImportLimits`](crate::ImportLimits), or a file the caller's allow-list does not
    /// accept.
    #[error("archive entry {name:?} refused before anything was written: {reason}")]
    RefusedName {
        /// The offending name (shown escaped, so newlines and overrides are visible).
        name: String,
        /// Which rule or limit it breaks.
        reason: String,
    },

    /// A section carries more raw bytes than the footer declares for it: the restore stops
    /// at the declared size instead of writing the excess.
    #[error(
        "section {name:?} decompresses beyond its declared {declared} bytes (block at offset \
         {offset})"
    )]
    SectionOverrun {
        /// The section's name.
        name: String,
        /// Raw bytes the footer declares for it.
        declared: u64,
        /// Archive offset of the block that would go past it.
        offset: u64,
    },

    /// Two entries share a name, or one name is a directory prefix of another.
    #[error("name {name:?} appears twice or clashes with another entry ({detail})")]
    DuplicateName {
        /// The name.
        name: String,
        /// Which entries clash.
        detail: String,
    },

    /// A length field exceeds a fixed limit of the format or of the caller's options.
    #[error("{what} is {value}, above the limit of {limit}")]
    LimitExceeded {
        /// What was measured.
        what: String,
        /// The value found.
        value: u64,
        /// The limit.
        limit: u64,
    },

    /// Bytes follow the archive trailer.
    #[error("archive has trailing bytes after its end at offset {offset}")]
    TrailingBytes {
        /// The offset where the archive should have ended.
        offset: u64,
    },

    /// A chunk is malformed (bad magic, CRC, flags or lengths).
    #[error("chunk {seq} (offset {offset}) is malformed: {reason}")]
    BadChunk {
        /// The chunk's sequence number as read (may itself be garbage).
        seq: u64,
        /// The chunk's offset as read.
        offset: u64,
        /// What was wrong.
        reason: String,
    },

    /// A chunk contradicts chunks already received: it overlaps another range, reuses a
    /// sequence number with other content, or disagrees about the final totals.
    #[error("chunk {seq} (offset {offset}, {len} bytes) conflicts with received data: {reason}")]
    ChunkConflict {
        /// Sequence number.
        seq: u64,
        /// Byte offset in the archive.
        offset: u64,
        /// Payload length.
        len: u64,
        /// The conflict.
        reason: String,
    },

    /// A chunk lies outside the archive (past the final total or the import size limit).
    #[error("chunk {seq} covers {offset}..{end}, outside the archive's 0..{limit}")]
    ChunkOutOfRange {
        /// Sequence number.
        seq: u64,
        /// Start offset.
        offset: u64,
        /// End offset (exclusive; saturated on overflow).
        end: u64,
        /// The archive length or import limit.
        limit: u64,
    },

    /// A chunk belongs to another snapshot than the stream being imported.
    #[error("chunk {seq} belongs to snapshot {found}, but this import is of snapshot {expected}")]
    WrongSnapshot {
        /// Sequence number.
        seq: u64,
        /// The stream's snapshot.
        expected: SnapshotId,
        /// The chunk's snapshot.
        found: SnapshotId,
    },

    /// The import cannot finish yet: no final chunk, or chunks missing.
    #[error("import in {staging} is incomplete: {reason}")]
    Incomplete {
        /// The staging directory.
        staging: PathBuf,
        /// What is missing (for example the first missing byte range).
        reason: String,
    },

    /// A chain of snapshots given to restore is not full, inc, inc, ... each naming the
    /// previous one as parent with contiguous LSN ranges.
    #[error("broken snapshot chain at position {position} ({id}): {reason}")]
    BrokenChain {
        /// Index in the chain given to restore.
        position: usize,
        /// The snapshot at that position.
        id: SnapshotId,
        /// Why the chain is broken.
        reason: String,
    },

    /// After applying a snapshot, the restored files do not equal its recorded state.
    #[error("snapshot {id}: restored state does not match its state table: {reason}")]
    StateMismatch {
        /// The snapshot.
        id: SnapshotId,
        /// The first difference.
        reason: String,
    },

    /// A rename would cross file systems; there is no copy fallback.
    #[error(
        "{from} and {to} are on different file systems; put the staging area on the target's \
         file system (no copy fallback)"
    )]
    CrossDevice {
        /// The source of the rename.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
    },

    /// The caller asked for something the format cannot express (bad option, bad target).
    #[error("invalid request: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },

    /// The catalog has no snapshot with this id.
    #[error("snapshot {id} is not in the catalog")]
    NotFound {
        /// The id asked for.
        id: SnapshotId,
    },

    /// The snapshot is the parent of another one in the catalog and cannot be deleted alone.
    #[error("snapshot {id} is the parent of {child}; delete the child first")]
    HasChildren {
        /// The snapshot asked to delete.
        id: SnapshotId,
        /// One of its children.
        child: SnapshotId,
    },

    /// The catalog index is damaged.
    #[error("catalog index {path} is corrupt: {reason}")]
    CatalogCorrupt {
        /// The index file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Whether this error means "stopped after an earlier I/O error: reopen".
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Fs(e) if e.is_poisoned())
    }

    pub(crate) fn corrupt(offset: u64, what: impl Into<String>) -> Self {
        Error::Corrupt {
            offset,
            what: what.into(),
        }
    }

    pub(crate) fn limit(what: impl Into<String>, value: u64, limit: u64) -> Self {
        Error::LimitExceeded {
            what: what.into(),
            value,
            limit,
        }
    }

    /// Whether the error says the input (archive, chunk, chain) is damaged or hostile, as
    /// opposed to an I/O failure of this machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            Error::Fs(_)
                | Error::Source { .. }
                | Error::CrossDevice { .. }
                | Error::NotFound { .. }
        )
    }
}
