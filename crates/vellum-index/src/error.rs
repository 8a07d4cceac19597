//! Errors of the index crate.

use std::path::PathBuf;

/// Everything that can go wrong in vellum-index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The graph bytes are not a graph file this version can read: the reason names the
    /// section and byte offset that failed a check.
    #[error("graph file is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// Byte offset (from the start of the graph file) of the field that failed.
        offset: u64,
        /// What was wrong there.
        reason: String,
    },
    /// The graph file was written by a newer format version.
    #[error("graph file has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// Version in the header.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The vector source has a different dimension from the index.
    #[error("vector dimension mismatch: index has {expected}, got {found}")]
    DimensionMismatch {
        /// Dimension of the index.
        expected: usize,
        /// Dimension that was supplied.
        found: usize,
    },
    /// An id was inserted while a live node already carries it.
    #[error("id {id} is already in the index")]
    DuplicateId {
        /// The external id.
        id: u64,
    },
    /// An id was deleted that the index does not hold (or holds only as deleted).
    #[error("id {id} is not in the index")]
    UnknownId {
        /// The external id.
        id: u64,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The index would exceed its node limit (node numbers are 32-bit).
    #[error("index is full: at most {limit} nodes")]
    Full {
        /// The node limit.
        limit: u64,
    },
    /// The zero-copy reader needs a little-endian host.
    #[error("the graph file reader needs a little-endian host")]
    UnsupportedHost,
    /// A saved index file (`Hnsw::save`, docs/format/index-file.md) failed a check when it
    /// was opened: the file, the byte offset and the field that failed, and why. A graph
    /// section that fails its own checks is reported here too, at its offset in the file.
    #[error("index file {} is corrupt at byte offset {offset} ({field}): {reason}", path.display())]
    CorruptFile {
        /// The file opened.
        path: PathBuf,
        /// Byte offset, from the start of the file, of the field that failed.
        offset: u64,
        /// Name of the field (as in docs/format/index-file.md), or `graph` for the graph.
        field: &'static str,
        /// What was wrong there.
        reason: String,
    },
    /// A saved index file was written by a format version this build does not read.
    #[error(
        "index file {} has format version {found}; this build reads version {supported}",
        path.display()
    )]
    UnsupportedFileVersion {
        /// The file opened.
        path: PathBuf,
        /// Version in its header.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// Encoded quantizer parameters (docs/format/quantizer.md) failed a check: the byte
    /// offset and the field, and why.
    #[error("quantizer parameters are corrupt at byte offset {offset} ({field}): {reason}")]
    CorruptQuantizer {
        /// Byte offset of the field that failed.
        offset: u64,
        /// Name of the field, as in docs/format/quantizer.md.
        field: &'static str,
        /// What was wrong there.
        reason: String,
    },
    /// Reading or writing an index file failed; the error names the file and the operation.
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn corrupt(offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        offset,
        reason: reason.into(),
    }
}
