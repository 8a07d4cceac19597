//! Zero-copy vector storage for Vellum.
//!
//! A [`VectorStore`] keeps fixed-dimension `f32` vectors in *segment files* of fixed-size
//! slots, read and written through memory maps, with a `u64` id -> slot map in memory. A
//! [`VectorStore::get`] returns a `&[f32]` straight from the mapped memory.
//!
//! # Durability contract
//!
//! The store is durable only at checkpoints. Between checkpoints the caller's WAL is the
//! truth: after a crash, [`VectorStore::open`] restores the state of the last checkpoint,
//! and the caller replays its WAL from that checkpoint's LSN with [`VectorStore::upsert`]
//! and [`VectorStore::delete`], which are idempotent (replaying a record whose effect is
//! already present changes nothing).
//!
//! A checkpoint ([`VectorStore::checkpoint`], or the three steps below to add files of your
//! own and to keep the store usable while the files are written) flushes every dirty map
//! first (`msync`), then publishes the id map and the list of protected slots through
//! `vellum-checkpoint`, which syncs its files and publishes its manifest last. Only then may
//! the caller truncate its WAL, and only below the oldest retained generation's LSN.
//!
//! The three steps are [`VectorStore::prepare_checkpoint`] (in memory, fast: encodes the id
//! map and marks the slots it references), [`PreparedCheckpoint::flush`] (the `msync`, which
//! needs no borrow of the store) and, once the checkpointer has committed the files,
//! [`VectorStore::publish_checkpoint`]. Between the first and the last the store takes
//! writes as usual: a slot the prepared checkpoint references is protected like a durable
//! one, so a delete or replace never frees it for reuse before the generation naming it is
//! published (and then only once no retained generation names it).
//!
//! Mapped pages can reach the disk at any moment, so:
//!
//! * **Copy-on-write.** A slot that the last durable checkpoint (or any older retained one)
//!   references is never written. An update writes a fresh slot; the old one becomes
//!   reusable only after a checkpoint that no longer references it is durable and every
//!   retained generation that does reference it has been dropped.
//! * **Checksums.** The id map records a CRC-32 of each slot's bytes. The first `get` of a
//!   slot after open (and [`VectorStore::verify`]) checks it, so a torn or rotted page is
//!   reported as [`Error::SlotCorrupt`], never served as a vector.
//! * **Growth never remaps.** More slots come from a new segment file (created at full size,
//!   its name synced, then mapped; its bytes and length become durable with the next
//!   checkpoint's flush); existing maps never move, so a `&[f32]` stays
//!   valid for as long as it borrows the store. Wholly free trailing segments are removed
//!   after a checkpoint no longer needs them.
//!
//! # External modification hazard
//!
//! The segment files are mapped. If another process writes or truncates them while the store
//! is open, `get` may return changed bytes or the process may be killed by `SIGBUS`. The
//! store's directory must belong to this store alone.
//!
//! # On the real file system
//!
//! [`VectorStore::open_path`] opens a store and its checkpointer under one directory by
//! path, so a user of this crate alone needs nothing from `vellum-fs` (the checkpoint crate
//! is re-exported as [`checkpoint`]):
//!
//! ```
//! use vellum_mmap_vectors::{StoreConfig, VectorStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! {
//!     let (mut store, mut checkpointer) =
//!         VectorStore::open_path(dir.path(), StoreConfig::new(3))?;
//!     store.upsert(7, &[1.0, 2.0, 3.0])?;
//!     store.upsert(8, &[4.0, 5.0, 6.0])?;
//!     store.delete(8)?;
//!     // Durable from here on, as of LSN 3 of the caller's WAL (which logged the writes).
//!     let info = store.checkpoint(&mut checkpointer, 3, b"")?;
//!     assert_eq!(info.generation, 1);
//!     store.upsert(9, &[7.0, 8.0, 9.0])?; // after the checkpoint: the WAL's to replay
//! }
//! // Reopen, as after a crash: the store is at the checkpoint; replay the WAL after its LSN.
//! let (store, checkpointer) = VectorStore::open_path(dir.path(), StoreConfig::new(3))?;
//! assert_eq!(checkpointer.current().map(|m| m.wal_lsn), Some(3));
//! assert_eq!(store.get(7)?, Some(&[1.0, 2.0, 3.0][..]));
//! assert_eq!(store.get(8)?, None);
//! assert_eq!(store.get(9)?, None);
//! assert!(store.verify()?.damaged.is_empty());
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

mod by_path;
mod checkpoint_steps;
mod codes;
mod compact;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod growth;
mod idmap;
pub mod segment;
// The crate's only `unsafe`: reading and writing slots of the mapped segment files.
#[allow(unsafe_code)]
mod slots;
pub mod state;
mod store;
mod verify;

pub use by_path::{CHECKPOINTS_DIR, VECTORS_DIR};
pub use checkpoint_steps::{FlushedCheckpoint, PreparedCheckpoint};
pub use codes::{
    CodeEncoder, CodeFault, CodeSpec, CodesReport, code_file_name, parse_code_file_name,
};
pub use error::{Error, Result};
pub use segment::{ElementType, HeaderError, SegmentHeader, is_segment_file_name};
pub use state::{DELETED_SLOT, IDMAP_DELTA_FILE, IDMAP_FILE, META_FILE, StateError};
pub use store::{StoreCheckpoint, StoreConfig, StoreStats, VectorStore};
/// The checkpoint crate this store commits through ([`Checkpointer`] and its configuration).
///
/// [`Checkpointer`]: vellum_checkpoint::Checkpointer
pub use vellum_checkpoint as checkpoint;
pub use verify::{SlotFault, VerifyReport};
