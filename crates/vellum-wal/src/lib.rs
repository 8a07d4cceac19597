//! Segmented, group-committed write-ahead log for Vellum.
//!
//! Records are appended as checksummed, LSN-numbered frames to segment files written
//! through [`vellum_fs`], so the same code runs on the real file system and on the crash
//! simulator that proves it. The byte format, the write protocol and the recovery argument
//! are specified in `docs/format/wal.md`; what each [`SyncPolicy`] can lose is in
//! `docs/DURABILITY.md`.
//!
//! * [`Wal::open`] recovers per [`RecoveryMode`] (torn tail cut durably before any append,
//!   mid-log corruption reported with segment, offset and LSN, holes reported) and
//!   returns a [`Recovery`] report.
//! * [`Wal::append`] and [`Wal::append_batch`] (all or nothing) from any number of threads;
//!   under [`SyncPolicy::Always`] concurrent appenders share one `sync_data` (group commit).
//! * [`Wal::sync`] is a barrier in every policy; [`Wal::iter_from`] reads back in LSN order;
//!   [`Wal::truncate_before`] drops whole segments below a checkpoint, durably.
//! * Fail-stop: the first failed write or sync poisons the log; every later call says to
//!   reopen; no sync is ever retried.
#![forbid(unsafe_code)]

mod error;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod iter;
mod options;
mod recovery;
mod wal;

pub use error::{Error, Result};
pub use format::{
    FORMAT_VERSION, FORMAT_VERSION_NO_END_MARK, FRAME_END_MARK, FRAME_HEADER_BYTES,
    SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
};
pub use iter::{Record, WalIter};
pub use options::{RecoveryMode, SyncPolicy, WalOptions};
pub use recovery::{Damage, Recovery, SegmentInfo, TailCut};
pub use wal::{Wal, WalStats};
