//! Options: segment size, record size limit, sync policy, recovery mode.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{FORMAT_VERSION, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, frame_len};

/// When appended records are made durable.
///
/// | policy | an append returns | what a crash can lose |
/// |---|---|---|
/// | `Always` (default) | after a `sync_data` that covers its frame has succeeded | nothing that was acknowledged |
/// | `Interval(d)` | after the frame is handed to the OS | records appended in the last `d` plus the time one sync takes (a background thread syncs every `d`); a process crash alone loses nothing, a power loss may |
/// | `Never` | after the frame is handed to the OS | every record since the last explicit [`crate::Wal::sync`] or segment rotation (the OS writes back when it likes) |
///
/// Under every policy [`crate::Wal::sync`] is a barrier: when it returns, every record
/// appended before the call is durable. Under `Always`, concurrent appenders share syncs
/// (group commit): one leader syncs for every frame written before its sync started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every append waits for a sync covering it (group commit).
    #[default]
    Always,
    /// A background thread syncs this often; appends do not wait.
    Interval(Duration),
    /// Only explicit syncs (and segment rotation) make records durable.
    Never,
}

/// What open does with damage it finds. The full decision table, and why a later valid
/// frame can be told apart from a torn tail, is in docs/format/wal.md.
///
/// | what open finds | `TolerateTornTail` | `AbsoluteConsistency` | `Salvage` |
/// |---|---|---|---|
/// | zeros or end of file after the last valid frame | ok | ok | ok |
/// | torn tail (bad bytes at the end of the last segment that no later frame proves were synced) | cut off durably before any append, reported in [`crate::Recovery::tail_cut`] | [`crate::Error::TornTail`] | reported, not cut |
/// | a bad frame followed by a frame written after the bad one was synced | [`crate::Error::Corruption`] | `Corruption` | skipped, reported in [`crate::Recovery::damage`] |
/// | a bad frame, or an early end, in a segment that has a successor | `Corruption` | `Corruption` | skipped, reported |
/// | an invalid segment header | [`crate::Error::BadSegmentHeader`] | `BadSegmentHeader` | segment skipped, reported |
/// | a missing segment (LSN gap) | [`crate::Error::Hole`] | `Hole` | reported |
///
/// `Salvage` opens the log read-only (appends, syncs and truncation fail with
/// [`crate::Error::ReadOnly`]) and changes nothing on disk: it is for reading out what
/// survives a damaged log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Cut a torn tail, refuse any other damage (the default).
    #[default]
    TolerateTornTail,
    /// Refuse any damage, a torn tail included.
    AbsoluteConsistency,
    /// Skip damaged records and report them; read-only.
    Salvage,
}

/// How a log is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Size of a segment file; a new segment starts when the next frame would not fit.
    pub segment_size_bytes: u64,
    /// The largest payload of one frame: one record, or a whole batch with a 4-byte length
    /// per record. Recovery rejects longer frames before reading them, so do not lower it
    /// below what an existing log holds.
    pub max_record_bytes: u64,
    /// When appends are made durable.
    pub sync_policy: SyncPolicy,
    /// What open does with damage.
    pub recovery_mode: RecoveryMode,
    /// Allocate segment space (zeros) ahead of the appends, `preallocate_step_bytes` at a
    /// time, so most appends overwrite allocated blocks and their `fdatasync` has no size
    /// change to write. Stale bytes can never validate because every segment has its own
    /// salt.
    pub preallocate: bool,
    /// How far ahead space is allocated when `preallocate` is on (rounded so a segment never
    /// exceeds `segment_size_bytes`; at least the frame being appended). A young segment
    /// grows by doubling from [`FIRST_ALLOCATION_BYTES`] up to this step, so an idle log
    /// costs 64 KiB on disk, not a whole step; past it, space comes a step at a time.
    /// Smaller steps let recovery stop sooner (it checks that the space after the last
    /// frame is zeros); each allocation costs one size-changing `fdatasync`. Default 4 MiB.
    pub preallocate_step_bytes: u64,
    /// The LSN of the first record of a log created empty (at least 1). Ignored when the
    /// directory already holds segments. A restored database starts its log after the LSN
    /// its checkpoint covers, so LSNs never go backwards.
    pub first_lsn: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size_bytes: 64 << 20,
            max_record_bytes: 8 << 20,
            sync_policy: SyncPolicy::Always,
            recovery_mode: RecoveryMode::TolerateTornTail,
            preallocate: true,
            preallocate_step_bytes: 4 << 20,
            first_lsn: 1,
        }
    }
}

/// The first allocation of a segment when `preallocate` is on (unless the step is smaller).
pub const FIRST_ALLOCATION_BYTES: u64 = 64 << 10;

impl WalOptions {
    /// The length to allocate a segment to so that it holds `need_bytes`: below one step,
    /// the next power of two (at least [`FIRST_ALLOCATION_BYTES`], so a young segment
    /// doubles); else the next step boundary. Capped at the segment size, never below
    /// `need_bytes`.
    pub(crate) fn allocation_for(&self, need_bytes: u64) -> u64 {
        let step = self.preallocate_step_bytes.max(1);
        let rounded = if need_bytes < step {
            need_bytes
                .next_power_of_two()
                .max(FIRST_ALLOCATION_BYTES)
                .min(step)
        } else {
            need_bytes.div_ceil(step).saturating_mul(step)
        };
        rounded.min(self.segment_size_bytes).max(need_bytes)
    }

    /// Checks the options fit together: a segment holds at least one largest frame, and the
    /// lengths fit the format's 32-bit fields.
    pub fn validate(&self) -> Result<()> {
        if self.max_record_bytes > u64::from(u32::MAX) {
            return Err(Error::InvalidOptions(format!(
                "max_record_bytes {} exceeds the format's limit of {}",
                self.max_record_bytes,
                u32::MAX
            )));
        }
        let need = SEGMENT_HEADER_BYTES as u64 + frame_len(self.max_record_bytes, FORMAT_VERSION);
        if self.segment_size_bytes < need {
            return Err(Error::InvalidOptions(format!(
                "segment_size_bytes {} cannot hold a segment header and one frame of \
                 max_record_bytes {} ({need} bytes needed, frame header {FRAME_HEADER_BYTES})",
                self.segment_size_bytes, self.max_record_bytes
            )));
        }
        if self.first_lsn == 0 || self.first_lsn == u64::MAX {
            return Err(Error::InvalidOptions(format!(
                "first_lsn {} is outside 1..u64::MAX",
                self.first_lsn
            )));
        }
        if let SyncPolicy::Interval(d) = self.sync_policy
            && d.is_zero()
        {
            return Err(Error::InvalidOptions(
                "SyncPolicy::Interval needs a non-zero interval".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_young_segment_doubles_from_64_kib_then_grows_a_step_at_a_time() {
        let opts = WalOptions::default();
        assert_eq!(opts.allocation_for(33), 64 << 10);
        assert_eq!(opts.allocation_for((64 << 10) + 1), 128 << 10);
        assert_eq!(opts.allocation_for((3 << 20) + 5), 4 << 20);
        assert_eq!(opts.allocation_for((4 << 20) + 1), 8 << 20);
        assert_eq!(opts.allocation_for((63 << 20) + 1), 64 << 20);
        let small_step = WalOptions {
            preallocate_step_bytes: 256,
            ..WalOptions::default()
        };
        assert_eq!(small_step.allocation_for(33), 256);
        assert_eq!(small_step.allocation_for(300), 512);
        let small_segment = WalOptions {
            segment_size_bytes: 16 << 10,
            ..WalOptions::default()
        };
        assert_eq!(small_segment.allocation_for(33), 16 << 10);
        // Never below what is needed, even past the segment size (one oversized frame).
        assert_eq!(small_segment.allocation_for(20 << 10), 20 << 10);
    }
}
