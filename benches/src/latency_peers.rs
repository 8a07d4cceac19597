//! Durable batch ingest of the seed systems, for `latency_bench`'s comparison (feature
//! `seed-peers`): velesdb-core 8.0.0 and foxstash-core 0.9.0 driven exactly as
//! `src/seed_peers.rs` drives them for `seed_compare` (same settings and durability
//! barriers, M = 16, ef_construction = 200, no payloads), reduced to the ingest.

use std::path::Path;
use std::time::{Duration, Instant};

use vellum::Metric;

use crate::latency::Workload;

const COLLECTION: &str = "bench";
const M: usize = 16;
const EF_CONSTRUCTION: usize = 200;

/// A fresh, empty directory.
fn fresh_dir(dir: &Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("clear peer dir");
    }
    std::fs::create_dir_all(dir).expect("create peer dir");
}

/// The first `rows` rows into a fresh velesdb-core database at `dir`, `batch` per upsert,
/// `VectorCollection::flush()` (its documented durability barrier) after each; returns the
/// wall time of the loop. The directory is removed afterwards.
pub fn velesdb_ingest(work: &Workload, dir: &Path, rows: usize, batch: usize) -> Duration {
    use velesdb_core::{Database, DistanceMetric, Point, StorageMode};
    fresh_dir(dir);
    let db = Database::open(dir).expect("velesdb open");
    let metric = match work.metric {
        Metric::Cosine => DistanceMetric::Cosine,
        _ => DistanceMetric::Euclidean,
    };
    db.create_vector_collection_with_hnsw(
        COLLECTION,
        work.dim,
        metric,
        StorageMode::Full,
        Some(M),
        Some(EF_CONSTRUCTION),
    )
    .expect("velesdb create");
    let coll = db
        .get_vector_collection(COLLECTION)
        .expect("velesdb collection");
    let start = Instant::now();
    for first in (0..rows).step_by(batch) {
        let end = (first + batch).min(rows);
        coll.upsert((first..end).map(|i| Point::new(i as u64, work.row(i).to_vec(), None)))
            .expect("velesdb upsert");
        coll.flush().expect("velesdb flush");
    }
    let wall = start.elapsed();
    drop(coll);
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
    wall
}

/// The first `rows` rows into foxstash-core at `dir`: each document logged to its WAL and
/// added to its HNSW index one at a time, `IncrementalStorage::sync()` (WAL fsync, manifest
/// fsync and rename) after each `batch`; returns the wall time of the loop. The directory is
/// removed afterwards.
pub fn foxstash_ingest(work: &Workload, dir: &Path, rows: usize, batch: usize) -> Duration {
    use foxstash_core::Document;
    use foxstash_core::index::{DistanceMetric, HNSWConfig, HNSWIndex};
    use foxstash_core::storage::{IncrementalConfig, IncrementalStorage};
    fresh_dir(dir);
    // Never checkpoint on its own during the ingest; no sync inside a batch.
    let storage_config = IncrementalConfig::default()
        .with_checkpoint_threshold(usize::MAX)
        .with_max_wal_size(usize::MAX)
        .with_sync_on_write(false)
        .with_wal_sync_interval(usize::MAX);
    let mut storage = IncrementalStorage::new(dir, storage_config).expect("foxstash storage");
    let mut config = HNSWConfig::default()
        .with_m(M)
        .with_ef_construction(EF_CONSTRUCTION);
    config.metric = match work.metric {
        Metric::Cosine => DistanceMetric::Cosine,
        _ => DistanceMetric::L2,
    };
    let mut index = HNSWIndex::new(work.dim, config);
    let start = Instant::now();
    for first in (0..rows).step_by(batch) {
        for i in first..(first + batch).min(rows) {
            let doc = Document {
                id: i.to_string(),
                content: String::new(),
                embedding: work.row(i).to_vec(),
                metadata: None,
            };
            storage.log_add(&doc).expect("foxstash log_add");
            index.add(doc).expect("foxstash add");
        }
        storage.sync().expect("foxstash sync");
    }
    let wall = start.elapsed();
    drop((storage, index));
    let _ = std::fs::remove_dir_all(dir);
    wall
}
