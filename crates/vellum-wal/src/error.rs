//! The error type of the write-ahead log.

use std::path::PathBuf;

/// Result alias used across `vellum-wal`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the write-ahead log. Damage found on disk names the segment file, the byte
/// offset in it and the LSN concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file system failed, or an earlier failure stopped the log (fail-stop: the
    /// message then says to reopen; see [`Error::is_poisoned`]).
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),

    /// A record that was durable is damaged: a valid frame written after it was synced
    /// follows it, or it sits in a segment that has a successor. Never cut silently.
    #[error("corruption in {segment} at offset {offset} (LSN {lsn}): {reason}")]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the damaged frame in the segment.
        offset: u64,
        /// The LSN that was expected there.
        lsn: u64,
        /// What is wrong.
        reason: String,
    },

    /// `RecoveryMode::AbsoluteConsistency` found a torn tail (bytes after the last valid
    /// frame that are neither zeros nor provably synced).
    #[error(
        "torn tail in {segment} at offset {offset} (LSN {lsn}); refused by AbsoluteConsistency"
    )]
    TornTail {
        /// The last segment file.
        segment: PathBuf,
        /// Byte offset where the valid frames end.
        offset: u64,
        /// The LSN that would come next.
        lsn: u64,
    },

    /// A segment's header is invalid or disagrees with its file name.
    #[error("bad header in segment {segment}: {reason}")]
    BadSegmentHeader {
        /// The segment file.
        segment: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// LSNs are missing between two segments (a segment file is missing).
    #[error(
        "hole in the log: {before} ends before LSN {expected_lsn} but the next segment {after} starts at LSN {found_lsn}"
    )]
    Hole {
        /// The segment before the hole (its valid records end just before `expected_lsn`).
        before: PathBuf,
        /// The segment after the hole.
        after: PathBuf,
        /// The LSN that should have come next.
        expected_lsn: u64,
        /// The first LSN of the segment after the hole.
        found_lsn: u64,
    },

    /// A record (or a whole batch, which is one frame) is larger than
    /// `WalOptions::max_record_bytes`.
    #[error("record of {len_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    RecordTooLarge {
        /// Encoded payload length of the frame.
        len_bytes: u64,
        /// The configured maximum.
        max_bytes: u64,
    },

    /// The next LSN would pass `u64::MAX` (only reachable through a damaged or crafted log
    /// that claims LSNs near the end of the range).
    #[error("the log has run out of LSNs (next LSN {next_lsn})")]
    LsnExhausted {
        /// The LSN the next record would get.
        next_lsn: u64,
    },

    /// `append_batch` was called with no records.
    #[error("a batch must hold at least one record")]
    EmptyBatch,

    /// Reading from an LSN that was removed by `truncate_before` or not written yet.
    #[error("LSN {requested} is not in the log (it holds LSNs {first} to {last})")]
    LsnNotAvailable {
        /// The LSN asked for.
        requested: u64,
        /// The first LSN the log still holds.
        first: u64,
        /// The last LSN the log holds (first - 1 when empty).
        last: u64,
    },

    /// An append at a caller-given LSN ([`crate::Wal::append_at`]) that is not the next
    /// one: a gap, or an overlap the caller must first cut with `truncate_after`.
    #[error("append at LSN {given} refused: the next LSN of the log is {next_lsn}")]
    NotNextLsn {
        /// The LSN the caller gave.
        given: u64,
        /// The LSN the next record gets.
        next_lsn: u64,
    },

    /// `truncate_after` would cut inside a batch frame (all or nothing: it cannot be
    /// split). Logs that are cut at any record append one frame per record
    /// ([`crate::Wal::append_at`]).
    #[error(
        "cannot truncate after LSN {lsn}: it is inside the batch frame at offset {offset} of \
         {segment} (LSNs {first} to {last})"
    )]
    TruncateInsideBatch {
        /// The LSN asked for.
        lsn: u64,
        /// The segment holding the batch.
        segment: PathBuf,
        /// The batch frame's offset.
        offset: u64,
        /// Its first LSN.
        first: u64,
        /// Its last LSN.
        last: u64,
    },

    /// The log was opened with `RecoveryMode::Salvage`, which is read-only.
    #[error("the log at {dir} was opened read-only (RecoveryMode::Salvage)")]
    ReadOnly {
        /// The log's directory.
        dir: PathBuf,
    },

    /// The options cannot work together.
    #[error("invalid write-ahead log options: {0}")]
    InvalidOptions(String),
}

impl Error {
    /// Whether the log stopped after an earlier I/O error and must be reopened.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Fs(e) if e.is_poisoned())
    }

    /// Whether this error reports damage found on disk (corruption, a torn tail refused, a
    /// bad header, a hole).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. }
                | Error::TornTail { .. }
                | Error::BadSegmentHeader { .. }
                | Error::Hole { .. }
        )
    }
}
