//! Vellum: a crash-safe persistence engine for vector indexes.
//!
//! A [`Database`] is a directory of named [`Collection`]s. Each collection keeps
//! fixed-dimension vectors with optional payloads, searches them (HNSW or exact), and never
//! loses an acknowledged write: under the default [`SyncPolicy::Always`] a write returns only
//! after the log bytes that carry it are synced. Opening maps the last checkpoint and replays
//! the log tail; the search graph is loaded, never rebuilt.
//!
//! ```
//! use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
//! let docs = db.create_collection("docs", CollectionConfig::new(3, Metric::Cosine)).unwrap();
//! docs.upsert_batch([
//!     Point::new(1, vec![1.0, 0.0, 0.0]).with_payload(*b"first"),
//!     Point::new(2, vec![0.0, 1.0, 0.0]),
//! ])
//! .unwrap();
//! let hits = docs.search(&[0.9, 0.1, 0.0], 1).unwrap();
//! assert_eq!(hits[0].id, 1);
//! drop((docs, db));
//!
//! // Reopen: everything acknowledged is there.
//! let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
//! let docs = db.collection("docs").unwrap();
//! assert_eq!(docs.get(1).unwrap().unwrap().payload.as_deref(), Some(&b"first"[..]));
//! ```
//!
//! The guarantees, and what each sync policy can lose, are in docs/DURABILITY.md; the write
//! and recovery paths step by step in docs/ARCHITECTURE.md.
#![forbid(unsafe_code)]

mod background;
mod catalog;
mod collection;
mod database;
mod error;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod lazy;
mod meta;
mod options;
mod payloads;
mod record;
mod repair;
mod snapshot;

pub use background::MaintenanceReport;
pub use catalog::{CATALOG_FILE, validate_name};
pub use collection::{
    CheckpointInfo, Collection, CollectionStats, CompactReport, Hit, POINTS_PAGE, Point, Points,
    SearchFilter, SearchParams, VerifyReport, WalEntry, WriteBatch,
};
pub use database::{Database, LOCK_FILE};
pub use error::{Error, Result};
pub use filter::{Condition, Filter, FilterError};
pub use options::{
    CollectionConfig, DatabaseOptions, HnswParams, IndexKind, IndexerHook, Metric, RecoveryMode,
    SyncPolicy,
};
pub use payloads::{PayloadIndexInfo, PayloadIndexKind};
pub use repair::CatalogRepair;
pub use snapshot::{COLLECTION_META_FILE, SnapshotSummary};
pub use vellum_snapshot_format::{Chunk, ChunkReceiver, ImportLimits, SnapshotMeta};
pub use vellum_wal::TailCut;

/// The I/O seam, for tests that run Vellum on the crash simulator.
pub use vellum_fs as fs;
