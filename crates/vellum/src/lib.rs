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
//! Payloads are bytes; JSON ones get helpers, typed filters and payload indexes:
//!
//! ```
//! use vellum::{CollectionConfig, Condition, Database, DatabaseOptions, Filter, Metric};
//! use vellum::{PayloadIndexKind, Point, SearchFilter, SearchParams};
//! use vellum::filter::Range;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
//! let docs = db.create_collection("docs", CollectionConfig::new(2, Metric::L2)).unwrap();
//! docs.upsert_batch((0..100u64).map(|i| {
//!     let doc = serde_json::json!({"lang": if i % 4 == 0 { "de" } else { "en" }, "year": 1990 + i});
//!     Point::new(i, vec![i as f32, 0.0]).with_json(&doc).unwrap()
//! }))
//! .unwrap();
//! docs.create_payload_index("lang", PayloadIndexKind::Keyword).unwrap();
//! docs.create_payload_index("year", PayloadIndexKind::Integer).unwrap();
//! let german_2020s = Filter::default()
//!     .must(Condition::matches("lang", "de"))
//!     .must(Condition::range("year", Range::at_least(2020.0)));
//! assert_eq!(docs.count(Some(&german_2020s)).unwrap(), 17); // from the indexes
//! let params = SearchParams {
//!     filter: Some(SearchFilter::Where(&german_2020s)),
//!     with_payload: true, // hits carry their payloads: no second read
//!     ..Default::default()
//! };
//! let hits = docs.search_with(&[0.0, 0.0], 3, &params).unwrap();
//! assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [32, 36, 40]);
//! let doc: serde_json::Value = serde_json::from_slice(hits[0].payload.as_deref().unwrap()).unwrap();
//! assert_eq!(doc["lang"], "de");
//! let points = docs.get_many(&[32, 36, 1000]).unwrap(); // one consistent read
//! assert_eq!(points.iter().map(|p| p.id).collect::<Vec<_>>(), [32, 36]); // absent: left out
//! // What an operator graphs, since open: writes, searches, log syncs and their time.
//! let stats = docs.stats();
//! assert_eq!((stats.writes_since_open, stats.searches_since_open), (100, 1));
//! assert!(stats.wal_syncs_since_open >= 1);
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
    CollectionConfig, DatabaseOptions, HnswParams, IndexKind, IndexerHook, Metric,
    QUANTIZER_TRAIN_MIN_POINTS, QuantKind, Quantization, RecoveryMode, SyncPolicy,
};
pub use payloads::{PayloadIndexInfo, PayloadIndexKind};
pub use repair::CatalogRepair;
pub use snapshot::{COLLECTION_META_FILE, Compression, SnapshotKind, SnapshotSummary};
pub use vellum_snapshot_format::{Chunk, ChunkReceiver, ImportLimits, SnapshotMeta};
pub use vellum_wal::TailCut;

/// The I/O seam, for tests that run Vellum on the crash simulator.
pub use vellum_fs as fs;
