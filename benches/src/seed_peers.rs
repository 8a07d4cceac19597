//! The systems Vellum replaces (regressions R1–R14 of docs/PROPERTIES.md) behind the `seed-peers` feature: velesdb-core 8.0.0 and
//! foxstash-core 0.9.0, each driven through its documented API at its strongest durability
//! setting. Included by `src/bin/seed_compare.rs` (`#[path]`), not part of the library.

use std::path::Path;
use std::time::Duration;

use crate::{
    Args, Dataset, EF_CONSTRUCTION, IngestRow, K, M, Reopen, Report, dir_bytes, fresh_dir,
    ingest_every_batch, sweep, timed,
};
use vellum::Metric;

const COLLECTION: &str = "bench";

// ---------------------------------------------------------------------------------------------
// velesdb-core
// ---------------------------------------------------------------------------------------------

fn veles_metric(metric: Metric) -> velesdb_core::DistanceMetric {
    match metric {
        Metric::Cosine => velesdb_core::DistanceMetric::Cosine,
        _ => velesdb_core::DistanceMetric::Euclidean,
    }
}

fn veles_ingest(
    data: &Dataset,
    dir: &Path,
    rows: usize,
    batch: usize,
) -> (velesdb_core::Database, IngestRow) {
    use velesdb_core::{Database, Point, StorageMode};
    let dir = fresh_dir(dir);
    let db = Database::open(&dir).expect("velesdb open");
    db.create_vector_collection_with_hnsw(
        COLLECTION,
        data.dim,
        veles_metric(data.metric),
        StorageMode::Full,
        Some(M),
        Some(EF_CONSTRUCTION),
    )
    .expect("velesdb create");
    let coll = db
        .get_vector_collection(COLLECTION)
        .expect("velesdb collection");
    let ((), wall, cpu) = timed(|| {
        let mut start = 0;
        while start < rows {
            let end = (start + batch).min(rows);
            coll.upsert((start..end).map(|i| Point::new(i as u64, data.row(i).to_vec(), None)))
                .expect("velesdb upsert");
            // The documented durability barrier (README: "flush() is the explicit durability
            // barrier"): msync of the vector map, fsync of the WAL, payload log flush.
            coll.flush().expect("velesdb flush");
            start = end;
        }
    });
    let row = IngestRow {
        setting: "DurabilityMode::Fsync (default) + VectorCollection::flush() after each batch"
            .into(),
        batch,
        rows,
        wall,
        cpu,
    };
    drop(coll);
    (db, row)
}

fn veles_reopen(
    data: &Dataset,
    dir: &Path,
    rows: usize,
) -> (velesdb_core::Database, Duration, Duration) {
    let (db, open, _) = timed(|| {
        let db = velesdb_core::Database::open(dir).expect("velesdb reopen");
        db.get_vector_collection(COLLECTION)
            .expect("velesdb collection");
        db
    });
    let coll = db
        .get_vector_collection(COLLECTION)
        .expect("velesdb collection");
    let (hits, first_query, _) =
        timed(|| coll.search(data.query(0), K).expect("velesdb first search"));
    assert_eq!(
        hits.len(),
        K.min(rows),
        "velesdb lost points across the reopen"
    );
    drop(coll);
    (db, open, first_query)
}

pub fn run_velesdb(data: &Dataset, args: &Args) -> Report {
    let mut report = Report::new("velesdb-core 8.0.0");
    let (db, dir) = ingest_every_batch(data, args, &mut report, "velesdb", veles_ingest);
    let rows = data.rows();

    // Reopen after the per-batch flushes only (what a crash right after the ingest leaves,
    // except that dropping the database may run more of its shutdown path).
    drop(db);
    let (db, open, first_query) = veles_reopen(data, &dir, rows);
    report.reopen.push(Reopen {
        how: "flush() after every batch only (no flush_full)".into(),
        checkpoint: Duration::ZERO,
        open,
        first_query,
        on_disk_bytes: dir_bytes(&dir),
    });
    eprintln!(
        "velesdb: reopen after flush {:.1} ms, first query {:.2} ms",
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );

    let coll = db
        .get_vector_collection(COLLECTION)
        .expect("velesdb collection");
    let ((), checkpoint, _) = timed(|| coll.flush_full().expect("velesdb flush_full"));
    drop(coll);
    drop(db);
    let (db, open, first_query) = veles_reopen(data, &dir, rows);
    report.reopen.push(Reopen {
        how: "VectorCollection::flush_full() (HNSW graph and vectors.idx saved)".into(),
        checkpoint,
        open,
        first_query,
        on_disk_bytes: dir_bytes(&dir),
    });
    eprintln!(
        "velesdb: flush_full {:.2} s, reopen {:.1} ms, first query {:.2} ms",
        checkpoint.as_secs_f64(),
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );

    let coll = db
        .get_vector_collection(COLLECTION)
        .expect("velesdb collection");
    report.curve = sweep("velesdb", data, &args.target_recall, |ef, q| {
        coll.search_with_ef(q, K, ef)
            .expect("velesdb search")
            .into_iter()
            .map(|r| r.point.id)
            .collect()
    });
    report.notes.push(
        "search returns each hit's point (vector and payload cloned), as its API does".into(),
    );
    drop(coll);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

// ---------------------------------------------------------------------------------------------
// foxstash-core
// ---------------------------------------------------------------------------------------------

use foxstash_core::Document;
use foxstash_core::index::{DistanceMetric, HNSWConfig, HNSWIndex};
use foxstash_core::storage::{
    IncrementalConfig, IncrementalStorage, IndexMetadata, RecoveryHelper, WalOperation,
};

const GRAPH_FILE: &str = "graph.snapshot";

fn fox_config(data: &Dataset) -> HNSWConfig {
    let mut config = HNSWConfig::default()
        .with_m(M)
        .with_ef_construction(EF_CONSTRUCTION);
    config.metric = match data.metric {
        Metric::Cosine => DistanceMetric::Cosine,
        _ => DistanceMetric::L2,
    };
    config
}

fn fox_storage_config(batch: usize) -> IncrementalConfig {
    // Never checkpoint on its own during the ingest (the caller decides when, as documented).
    let config = IncrementalConfig::default()
        .with_checkpoint_threshold(usize::MAX)
        .with_max_wal_size(usize::MAX);
    if batch == 1 {
        // fsync after every WAL write.
        config.with_sync_on_write(true)
    } else {
        // No sync inside a batch; `IncrementalStorage::sync()` (WAL fsync + manifest written
        // atomically with fsync) after each batch.
        config
            .with_sync_on_write(false)
            .with_wal_sync_interval(usize::MAX)
    }
}

fn fox_doc(data: &Dataset, i: usize) -> Document {
    Document {
        id: i.to_string(),
        content: String::new(),
        embedding: data.row(i).to_vec(),
        metadata: None,
    }
}

fn fox_ingest(
    data: &Dataset,
    dir: &Path,
    rows: usize,
    batch: usize,
) -> (IncrementalStorage, HNSWIndex, IngestRow) {
    let dir = fresh_dir(dir);
    let mut storage =
        IncrementalStorage::new(&dir, fox_storage_config(batch)).expect("foxstash storage");
    let mut index = HNSWIndex::new(data.dim, fox_config(data));
    let ((), wall, cpu) = timed(|| {
        let mut start = 0;
        while start < rows {
            let end = (start + batch).min(rows);
            for i in start..end {
                let doc = fox_doc(data, i);
                storage.log_add(&doc).expect("foxstash log_add");
                index.add(doc).expect("foxstash add");
            }
            if batch > 1 {
                storage.sync().expect("foxstash sync");
            }
            start = end;
        }
    });
    let setting = if batch == 1 {
        "IncrementalConfig::with_sync_on_write(true) (fsync per WAL write) + HNSWIndex::add".into()
    } else {
        "IncrementalStorage::sync() after each batch (WAL fsync + manifest fsync/rename) + HNSWIndex::add".into()
    };
    (
        storage,
        index,
        IngestRow {
            setting,
            batch,
            rows,
            wall,
            cpu,
        },
    )
}

fn fox_ids(results: Vec<foxstash_core::SearchResult>) -> Vec<u64> {
    results
        .into_iter()
        .map(|r| r.id.parse().expect("numeric id"))
        .collect()
}

/// Replays the WAL tail into `docs` (adds and removes by id, in order).
fn fox_replay(storage: &IncrementalStorage, docs: &mut Vec<Document>) -> usize {
    let mut removed = std::collections::HashSet::new();
    let n = RecoveryHelper::new(storage)
        .replay_wal(|op| {
            match op {
                WalOperation::Add(doc) => docs.push(doc.clone()),
                WalOperation::Remove(id) => {
                    removed.insert(id.clone());
                }
                _ => {}
            }
            Ok(())
        })
        .expect("foxstash replay");
    if !removed.is_empty() {
        docs.retain(|d| !removed.contains(&d.id));
    }
    n
}

pub fn run_foxstash(data: &Dataset, args: &Args) -> Report {
    let mut report = Report::new("foxstash-core 0.9.0");
    let ((storage, index), dir) = ingest_every_batch(
        data,
        args,
        &mut report,
        "foxstash",
        |data, dir, rows, batch| {
            let (storage, index, row) = fox_ingest(data, dir, rows, batch);
            ((storage, index), row)
        },
    );
    let batch = *args.batches.last().expect("at least one batch size");
    let rows = data.rows();
    let config = fox_config(data);

    // 1. Reopen from the WAL alone (no checkpoint yet): replay every add, build the graph.
    // The ingest's own index stays in memory to be checkpointed below (parallel builds are
    // not reproducible, so the rebuilt graph is a different one).
    drop(storage);
    let ((wal_storage, wal_index), open, _) = timed(|| {
        let storage =
            IncrementalStorage::new(&dir, fox_storage_config(batch)).expect("foxstash reopen");
        let mut docs = Vec::new();
        fox_replay(&storage, &mut docs);
        let index = HNSWIndex::build_parallel_from_documents(docs, config.clone());
        (storage, index)
    });
    let (hits, first_query, _) = timed(|| {
        wal_index
            .search(data.query(0), K)
            .expect("foxstash first search")
    });
    assert_eq!(
        hits.len(),
        K.min(rows),
        "foxstash lost points across the reopen"
    );
    report.reopen.push(Reopen {
        how: "none: whole ingest in the WAL (replayed, graph rebuilt with build_parallel_from_documents)".into(),
        checkpoint: Duration::ZERO,
        open,
        first_query,
        on_disk_bytes: dir_bytes(&dir),
    });
    eprintln!(
        "foxstash: reopen from WAL {:.1} ms, first query {:.2} ms",
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );
    drop((wal_storage, wal_index));

    // Checkpoint the ingest's index both ways foxstash-core offers.
    let mut storage =
        IncrementalStorage::new(&dir, fox_storage_config(batch)).expect("foxstash reopen");
    let graph_path = dir.join(GRAPH_FILE);
    let ((), checkpoint, _) = timed(|| {
        storage
            .checkpoint(
                &index.get_all_documents(),
                IndexMetadata {
                    document_count: index.len(),
                    embedding_dim: data.dim,
                    index_type: "hnsw".into(),
                },
            )
            .expect("foxstash checkpoint");
        index
            .snapshot_to_file(&graph_path)
            .expect("foxstash snapshot");
    });
    drop((storage, index));

    // 2. Checkpoint of documents (JSON, gzip) + rebuild: foxstash-core's durable format.
    let ((_storage, index), open, _) = timed(|| {
        let storage =
            IncrementalStorage::new(&dir, fox_storage_config(batch)).expect("foxstash reopen");
        let (mut docs, _meta) = storage
            .load_checkpoint::<Vec<Document>>()
            .expect("foxstash load")
            .expect("a checkpoint");
        fox_replay(&storage, &mut docs);
        let index = HNSWIndex::build_parallel_from_documents(docs, config.clone());
        (storage, index)
    });
    let (hits, first_query, _) = timed(|| {
        index
            .search(data.query(0), K)
            .expect("foxstash first search")
    });
    assert_eq!(hits.len(), K.min(rows));
    report.reopen.push(Reopen {
        how: "IncrementalStorage::checkpoint(documents) (JSON + gzip, fsync/rename); open = load_checkpoint + WAL tail + build_parallel_from_documents".into(),
        checkpoint,
        open,
        first_query,
        on_disk_bytes: dir_bytes(&dir),
    });
    eprintln!(
        "foxstash: checkpoint {:.2} s, reopen with rebuild {:.1} ms, first query {:.2} ms",
        checkpoint.as_secs_f64(),
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );
    drop((_storage, index));

    // 3. The graph snapshot (bincode, same-version cache) + WAL tail: its fastest open.
    let ((_storage, mut index), open, _) = timed(|| {
        let storage =
            IncrementalStorage::new(&dir, fox_storage_config(batch)).expect("foxstash reopen");
        let mut index = HNSWIndex::snapshot_from_file(&graph_path).expect("foxstash snapshot load");
        let mut tail = Vec::new();
        fox_replay(&storage, &mut tail);
        for doc in tail {
            index.add(doc).expect("foxstash add");
        }
        (storage, index)
    });
    let (hits, first_query, _) = timed(|| {
        index
            .search(data.query(0), K)
            .expect("foxstash first search")
    });
    assert_eq!(hits.len(), K.min(rows));
    report.reopen.push(Reopen {
        how: "same checkpoint + HNSWIndex::snapshot_to_file (not fsynced, not atomic); open = snapshot_from_file + WAL tail".into(),
        checkpoint,
        open,
        first_query,
        on_disk_bytes: dir_bytes(&dir),
    });
    eprintln!(
        "foxstash: reopen from graph snapshot {:.1} ms, first query {:.2} ms",
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );

    report.curve = sweep("foxstash", data, &args.target_recall, |ef, q| {
        index.set_ef_search(ef);
        fox_ids(index.search(q, K).expect("foxstash search"))
    });
    report.notes.push(
        "no batch API: the batched rows log every document and sync once per batch; HNSWIndex::add inserts one point at a time on one thread; the checkpoint time covers both the document checkpoint and the graph snapshot".into(),
    );
    drop((_storage, index));
    let _ = std::fs::remove_dir_all(&dir);
    report
}
