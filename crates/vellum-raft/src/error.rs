//! The crate's error type: what failed, naming the file, offset or entry concerned.

use std::path::PathBuf;

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the replication layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file system failed.
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),
    /// The Raft log (vellum-wal) failed.
    #[error(transparent)]
    Wal(#[from] vellum_wal::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] vellum::Error),
    /// A snapshot archive failed.
    #[error(transparent)]
    Archive(#[from] vellum_snapshot_format::Error),
    /// The Raft state file is damaged.
    #[error("raft state file {path} at offset {offset}: {reason}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry of the Raft log does not decode.
    #[error("raft log entry at index {index} does not decode: {reason}")]
    BadEntry {
        /// Its index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// The log and the state file disagree in a way no crash explains.
    #[error("raft log at {dir}: {reason}")]
    Inconsistent {
        /// The log directory.
        dir: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A snapshot's files are missing or damaged.
    #[error("snapshot at {dir}: {reason}")]
    Snapshot {
        /// Its directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A linearizable read could not be served here (not the leader, or no quorum).
    #[error("linearizable read refused: {reason}")]
    Read {
        /// Why.
        reason: String,
    },
}
