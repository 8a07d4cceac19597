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
//!
//! [`Wal::open_path`] opens a log on the real file system by path, so a user of this crate
//! alone needs nothing from `vellum-fs`:
//!
//! ```
//! use vellum_wal::{Wal, WalOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let log = dir.path().join("wal");
//! {
//!     let (wal, recovery) = Wal::open_path(&log, WalOptions::default())?;
//!     assert_eq!(recovery.last_lsn, 0);
//!     assert_eq!(wal.append(b"first")?, 1);
//!     let lsns = wal.append_batch(&[b"second".as_slice(), b"third"])?;
//!     assert_eq!(lsns, 2..=3);
//!     wal.sync()?; // a barrier in every sync policy (the default policy syncs each append)
//! }
//! // Reopen, as after a crash: every synced record is read back, in LSN order.
//! let (wal, recovery) = Wal::open_path(&log, WalOptions::default())?;
//! assert_eq!(recovery.last_lsn, 3);
//! let records = wal.iter_from(1)?.collect::<Result<Vec<_>, _>>()?;
//! let data: Vec<&[u8]> = records.iter().map(|r| r.data.as_slice()).collect();
//! assert_eq!(data, [b"first".as_slice(), b"second", b"third"]);
//! assert_eq!(wal.append(b"fourth")?, 4);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod append;
mod by_path;
mod error;
pub mod fail_points;
mod flusher;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod iter;
mod options;
mod raft_ops;
mod recovery;
mod volatile;
mod wal;

pub use error::{Error, Result};
pub use flusher::{DurableCallback, MAX_PENDING_CALLBACKS};
pub use format::{
    FORMAT_VERSION, FORMAT_VERSION_NO_END_MARK, FRAME_END_MARK, FRAME_HEADER_BYTES,
    SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
};
pub use iter::{Record, WalIter};
pub use options::{FIRST_ALLOCATION_BYTES, RecoveryMode, SyncPolicy, WalOptions};
pub use raft_ops::{CUT_MARKER, CUT_MARKER_MAGIC, RESET_MARKER, RESET_MARKER_MAGIC};
pub use recovery::{Damage, Recovery, SegmentInfo, TailCut};
pub use wal::{Wal, WalStats};
