//! Atomic checkpoints for Vellum.
//!
//! A [`Checkpointer`] commits a set of files as one numbered *generation* under a manifest
//! that is published last. After any crash, [`Checkpointer::open`] sees the old generation or
//! the new one, never a mix, and never a manifest naming a missing or short file.
//!
//! # Commit protocol (see `docs/format/checkpoint.md`)
//!
//! 1. Each file is written under a name no earlier generation used
//!    (`data-<generation>-<name>`), encoded with its codec, and synced (`sync_data`).
//! 2. The manifest (generation, covered WAL LSN, per-file name, codec, lengths and CRCs,
//!    caller metadata) is written to `manifest-<generation>` and synced: this copy is what a
//!    later fallback to this generation reads.
//! 3. The directory is synced, so every new name above is durable.
//! 4. The manifest is published with [`vellum_fs::atomic_replace`] onto `CURRENT` (temporary
//!    file, sync, rename, directory sync). The generation is committed once that returns.
//! 5. Generations beyond the retention count are removed.
//!
//! The caller may truncate its WAL only below [`Checkpointer::oldest_retained_wal_lsn`]: a
//! retained generation is only useful together with the WAL that rolls it forward (a seed
//! system kept old checkpoints but deleted their WAL).
//!
//! # Loading
//!
//! Opening reads `CURRENT`, verifies every file's length and CRC (stored and decoded) and
//! returns the contents. A damaged current generation is an error
//! ([`Error::CurrentDamaged`]) unless the caller asks for
//! [`LoadOptions::fallback_to_previous`], which loads the newest intact retained generation
//! instead and says so. Decoding is bounded by the manifest's sizes: a stream that would
//! decode to more bytes than recorded is refused after one extra byte.
//!
//! Files left by a checkpoint that crashed before publishing (and files of generations
//! beyond retention) are removed on open. Those removals, like retention's, are not synced:
//! if a crash undoes one, the file is an orphan again and the next open removes it again.
//!
//! # On the real file system
//!
//! [`Checkpointer::open_path`] opens a directory by path, so a user of this crate alone needs
//! nothing from `vellum-fs`:
//!
//! ```
//! use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec, FileSpec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let checkpoints = dir.path().join("checkpoints");
//! {
//!     let (mut cp, loaded) = Checkpointer::open_path(&checkpoints, CheckpointConfig::default())?;
//!     assert!(loaded.is_none()); // nothing committed yet
//!     let ids = vec![1u8; 4096];
//!     let info = cp.commit(
//!         42, // the WAL LSN this generation covers
//!         b"my metadata",
//!         &[
//!             FileSpec { name: "ids", bytes: &ids, codec: Codec::Zstd { level: 3 } },
//!             FileSpec { name: "settings", bytes: b"dim=3", codec: Codec::None },
//!         ],
//!     )?;
//!     assert_eq!(info.generation, 1);
//! }
//! // Reopen, as after a crash: the committed generation loads whole, every file verified.
//! let (cp, loaded) = Checkpointer::open_path(&checkpoints, CheckpointConfig::default())?;
//! let loaded = loaded.expect("generation 1 was committed");
//! assert_eq!((loaded.generation(), loaded.wal_lsn()), (1, 42));
//! assert_eq!(loaded.metadata(), b"my metadata");
//! assert_eq!(loaded.file("ids"), Some(&[1u8; 4096][..]));
//! assert_eq!(loaded.file("settings"), Some(&b"dim=3"[..]));
//! assert_eq!(cp.oldest_retained_wal_lsn(), Some(42)); // truncate the WAL only below this
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod by_path;
mod checkpointer;
mod codec;
mod error;
pub mod fail_points;
#[doc(hidden)]
pub mod fuzzing;
mod generation;
pub mod manifest;
mod names;
mod read_file;

pub use checkpointer::{CheckpointConfig, Checkpointer, FileSpec, LoadOptions};
pub use codec::ZSTD_MAX_LEVEL;
pub use error::{Error, Result};
pub use generation::{CheckpointStats, CommitInfo, FileBytes, FileStats, LoadedGeneration};
pub use manifest::{Codec, FileEntry, Manifest, ManifestError, valid_file_name};
pub use names::{CURRENT_NAME, CheckpointFileName};
// For tests: `Checkpointer::current_generation_files` and `CheckpointFileName` are the way
// to list and recognise a generation's files.
#[doc(hidden)]
pub use names::{data_file_name, manifest_file_name};
