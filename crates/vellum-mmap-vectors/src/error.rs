//! The error type of the vector store.

use std::path::PathBuf;

use crate::segment::HeaderError;
use crate::state::StateError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the vector store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file system failed, or the store is stopped after an earlier failure (reopen).
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),
    /// Committing the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] vellum_checkpoint::Error),
    /// A vector of the wrong length was given.
    #[error("vector for id {id} has {found} elements, the store holds {expected}-element vectors")]
    DimensionMismatch {
        /// The id being written.
        id: u64,
        /// The store's dimension.
        expected: u32,
        /// The length given.
        found: usize,
    },
    /// The store's files were written with a different shape than the configuration asks for.
    #[error("{path} holds {field} {stored}, the configuration says {configured}")]
    ConfigMismatch {
        /// The file that disagrees.
        path: PathBuf,
        /// Which setting.
        field: &'static str,
        /// The value in the file.
        stored: String,
        /// The value configured.
        configured: String,
    },
    /// A segment file has a bad header (magic, version, checksum, unknown element type,
    /// inconsistent fields).
    #[error("segment file {path}: {detail}")]
    SegmentHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        detail: HeaderError,
    },
    /// A segment file has the wrong length.
    #[error("segment file {path} is {found} bytes, expected {expected}")]
    SegmentSize {
        /// The segment file.
        path: PathBuf,
        /// What its length should be: a header page plus whole slots, up to the full
        /// length its header implies, and past every slot a checkpoint references. Names
        /// the full length, or the least length the referenced slots need.
        expected: u64,
        /// Its length.
        found: u64,
    },
    /// A segment file the checkpoint needs is missing.
    #[error("segment file {path} is missing but the checkpoint references its slots")]
    SegmentMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// A slot's bytes do not match the checksum recorded for them (a torn or rotted page).
    /// The vector is not served; recover it from the WAL or an earlier checkpoint.
    #[error(
        "vector {id} in {path} at offset {offset} is damaged (checksum {computed:#010x}, expected {expected:#010x})"
    )]
    SlotCorrupt {
        /// The id whose vector is damaged.
        id: u64,
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the slot in the file.
        offset: u64,
        /// The recorded CRC.
        expected: u32,
        /// The CRC of the bytes found.
        computed: u32,
    },
    /// The checkpointed state (meta or id map) does not decode or is inconsistent.
    #[error("checkpoint file {name} of generation {generation}: {detail}")]
    StateCorrupt {
        /// The checkpoint file name.
        name: String,
        /// The generation.
        generation: u64,
        /// What is wrong.
        detail: StateError,
    },
    /// The checkpoint holds the id map but not the meta file, or the reverse.
    #[error("checkpoint generation {generation} lacks the store file {name}")]
    StateMissing {
        /// The missing checkpoint file name.
        name: String,
        /// The generation.
        generation: u64,
    },
    /// The configuration is not usable.
    #[error("invalid vector store configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint was prepared while another prepared one has not been published yet.
    #[error(
        "a checkpoint of the store in {dir} is already in flight; publish it before preparing another"
    )]
    CheckpointInFlight {
        /// The store's directory.
        dir: std::path::PathBuf,
    },
}

impl Error {
    /// Whether this error means "stopped after an earlier I/O error: reopen", at any depth.
    pub fn is_poisoned(&self) -> bool {
        match self {
            Error::Fs(e) => e.is_poisoned(),
            Error::Checkpoint(e) => e.is_poisoned(),
            _ => false,
        }
    }
}
