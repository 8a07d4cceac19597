//! The error type of the checkpoint layer.

use std::path::PathBuf;

use crate::manifest::{Codec, ManifestError};
use crate::names::CURRENT_NAME;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the checkpoint layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file system failed (or the engine is stopped after an earlier failure).
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),
    /// A manifest file is not a valid manifest.
    #[error("checkpoint manifest {path} is damaged: {detail}")]
    ManifestCorrupt {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        detail: ManifestError,
    },
    /// A file a manifest names is missing.
    #[error("checkpoint file {path} of generation {generation} is missing")]
    FileMissing {
        /// The missing file.
        path: PathBuf,
        /// The generation naming it.
        generation: u64,
    },
    /// A file a manifest names does not match its record (length, checksum or decoding).
    #[error("checkpoint file {path} of generation {generation} is damaged: {reason}")]
    FileCorrupt {
        /// The damaged file.
        path: PathBuf,
        /// The generation naming it.
        generation: u64,
        /// What does not match.
        reason: String,
    },
    /// The current generation cannot be loaded. Reopening with
    /// [`LoadOptions::fallback_to_previous`](crate::LoadOptions::fallback_to_previous)
    /// loads the newest intact retained generation (losing what the damaged one added
    /// unless the WAL still holds it).
    #[error(
        "the current checkpoint in {dir} (generation {generation:?}) is damaged: {cause}; \
         loading with the fallback to an earlier retained generation enabled can use {}",
        match previous { Some(g) => format!("generation {g}"), None => "none: none is retained".to_owned() }
    )]
    CurrentDamaged {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The damaged generation, if its manifest could be read.
        generation: Option<u64>,
        /// The newest earlier generation that still has a manifest, if any.
        previous: Option<u64>,
        /// What is damaged (its text is part of this error's message, so it is not returned
        /// again as the `source()`).
        cause: Box<Error>,
    },
    /// A fallback was asked for, but no retained generation is intact.
    #[error("no retained checkpoint generation in {dir} is intact (tried {tried:?})")]
    NoIntactGeneration {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The generations tried, newest first.
        tried: Vec<u64>,
    },
    /// A commit was asked to cover a WAL LSN below the current generation's.
    #[error(
        "checkpoint in {dir} would cover WAL LSN {requested}, below generation {generation}'s {current}"
    )]
    LsnBackwards {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The current generation.
        generation: u64,
        /// Its LSN.
        current: u64,
        /// The LSN asked for.
        requested: u64,
    },
    /// A commit's files or metadata break the manifest's rules (name, count, size).
    #[error("invalid checkpoint request for {dir}: {detail}")]
    InvalidRequest {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The rule broken.
        detail: ManifestError,
    },
    /// The configuration is not usable.
    #[error("invalid checkpoint configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A compressor failed while writing a file.
    #[error("compressing checkpoint file {path} with {codec} failed: {error}")]
    Compress {
        /// The file being written.
        path: PathBuf,
        /// The codec.
        codec: Codec,
        /// The compressor's error.
        error: std::io::Error,
    },
    /// The current generation is missing its `CURRENT` pointer while older generations are
    /// present (someone removed it); use the fallback option to load the newest intact one.
    #[error(
        "{dir} holds checkpoint generations up to {newest} but no {CURRENT_NAME}; loading \
         with the fallback to an earlier retained generation enabled uses the newest intact one"
    )]
    CurrentMissing {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The newest generation found.
        newest: u64,
    },
}

impl Error {
    /// Whether this error means "stopped after an earlier I/O error: reopen".
    pub fn is_poisoned(&self) -> bool {
        match self {
            Error::Fs(e) => e.is_poisoned(),
            Error::CurrentDamaged { cause, .. } => cause.is_poisoned(),
            _ => false,
        }
    }
}
