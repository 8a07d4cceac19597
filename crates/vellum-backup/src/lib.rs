//! Backups of Vellum collections in object storage, through Apache Arrow's `object_store`
//! (S3 and S3-compatible servers, the local file system, memory). A backup is the
//! collection's snapshot archive (vellum-snapshot-format: checksummed, self-describing)
//! streamed from the export into a multipart upload — never staged on local disk, with a
//! bounded number of parts in flight — and a catalog object written last with a
//! conditional put. A restore streams the archive back through a `ChunkReceiver`
//! (resumable), verifies it whole against the catalog before anything is created, and
//! imports it as a new collection. docs/DURABILITY.md says what a backup holds.
//!
//! Its own crate: it brings object_store and its HTTP stack, which the engine and the
//! server do not need; the facade does not depend on it, the CLI does.
#![forbid(unsafe_code)]

mod catalog;
mod error;
pub mod fuzzing;
mod push;
mod restore;
mod staged;
mod stream;
mod summary;
mod target;

pub use catalog::{BackupEntry, CATALOG_OBJECT, Catalog};
pub use error::{Error, Result};
pub use push::{BackupOptions, CHANNEL_CHUNKS, backup, backup_with_progress, delete, list, retain};
pub use restore::{RestoreOptions, RestoreReport, restore, restore_with_progress};
pub use staged::{RESTORE_CHUNK_BYTES, RESTORE_DIR};
pub use stream::PIECES_IN_FLIGHT;
pub use target::BackupTarget;
