//! Indexing behind the acknowledgement: a write is searchable once acknowledged, while the
//! graph is built in the background; the pending tail survives checkpoints, reopens and
//! crashes with every live point in the graph or the tail exactly once.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vellum::fs::{CrashModel, DynFs, SimFs};
use vellum::{Collection, CollectionConfig, Database, DatabaseOptions, HnswParams, Metric, Point};

const DIM: usize = 8;

fn config() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::L2).hnsw(HnswParams {
        m: 8,
        ef_construction: 32,
        ef_search: 32,
        seed: 7,
    })
}

/// A pseudo-random vector no other id has (components in [0, 1) from a hash of id and
/// dimension).
fn vector(i: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|d| {
            let mut z = (i * DIM as u64 + d).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn points(ids: std::ops::Range<u64>) -> Vec<Point> {
    ids.map(|i| Point::new(i, vector(i))).collect()
}

/// Every id in `ids` is found by a k=1 search for its own vector, at distance 0.
fn all_found(c: &Collection, ids: impl Iterator<Item = u64>) -> Result<(), String> {
    for id in ids {
        let hit = c.search(&vector(id), 1).map_err(|e| e.to_string())?;
        match hit.first() {
            Some(h) if h.id == id && h.distance == 0.0 => {}
            other => return Err(format!("search for {id} found {other:?}")),
        }
    }
    Ok(())
}

/// Sends one "go on" when dropped.
struct ReleaseOnDrop(mpsc::Sender<()>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn a_search_returns_and_sees_a_whole_batch_while_the_indexer_is_paused_inside_it() {
    // The hook pauses the indexer's first chunk, with the state lock held shared.
    let (paused_tx, paused_rx) = mpsc::sync_channel::<()>(1);
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(Some((paused_tx, resume_rx))));
    let hook_gate = Arc::clone(&gate);
    let options = common::options(1 << 20, 1024).with_indexer_hook(Arc::new(move || {
        if let Some((paused, resume)) = hook_gate.lock().unwrap().take() {
            paused.send(()).unwrap();
            resume.recv().unwrap();
        }
    }));
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    // If an assertion fails, the paused indexer must still be let go, or dropping the
    // database (which joins it) would hang instead of failing.
    let _release = ReleaseOnDrop(resume_tx.clone());
    // Acknowledged (durable) before any of it is in the graph.
    c.upsert_batch(points(0..2000)).unwrap();
    paused_rx.recv().unwrap();
    let (found_tx, found_rx) = mpsc::channel();
    let searcher = {
        let c = c.clone();
        std::thread::spawn(move || found_tx.send(all_found(&c, 0..2000)).unwrap())
    };
    // A bound only a search waiting for the paused indexer reaches: the assertion is the
    // ordering (searches answered while the indexer is still inside the batch).
    let found = found_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("searches waited for the indexer's chunk");
    assert_eq!(found, Ok(()));
    let s = c.stats();
    assert!(s.indexed < 2000, "the batch was indexed while paused");
    assert_eq!(s.indexed + s.index_pending, 2000);
    // A write goes on too: the paused chunk holds the lock shared, and the bound has room.
    resume_tx.send(()).unwrap();
    searcher.join().unwrap();
    c.upsert_batch(points(2000..2100)).unwrap();
    c.wait_indexed().unwrap();
    let s = c.stats();
    assert_eq!((s.indexed, s.index_pending), (2100, 0));
    assert!(c.verify().unwrap().is_ok());
}

/// No background indexing: the tail is exactly what the test leaves in it.
fn options() -> DatabaseOptions {
    common::options(16 << 10, 64).with_background_indexing(false)
}

/// Writes a graph part and a tail, deletes and replaces in both, and checkpoints with the
/// tail pending; then more writes after the checkpoint. Returns the live ids.
fn scenario(c: &Collection) -> Vec<u64> {
    let write = |ids: std::ops::Range<u64>| {
        for chunk in points(ids).chunks(50) {
            c.upsert_batch(chunk.to_vec()).unwrap();
        }
    };
    write(0..300);
    c.wait_indexed().unwrap();
    write(300..500);
    for id in (0..500).step_by(25) {
        c.delete(id).unwrap();
    }
    // Replaced: 1 in the graph and 301 in the tail move to new slots in the tail.
    c.upsert(Point::new(1, vector(1001))).unwrap();
    c.upsert(Point::new(301, vector(1301))).unwrap();
    c.checkpoint().unwrap();
    write(500..550);
    (0..550).filter(|id| id % 25 != 0 || *id >= 500).collect()
}

fn check_recovered(fs: DynFs, root: &str, live: &[u64]) -> Result<(u64, u64), String> {
    let db = Database::open_with_fs(fs, root, options()).map_err(|e| e.to_string())?;
    let c = db.collection("c").map_err(|e| e.to_string())?;
    let mut ids = c.ids();
    ids.sort_unstable();
    if ids != live {
        return Err(format!(
            "{} ids recovered, {} acknowledged",
            ids.len(),
            live.len()
        ));
    }
    let report = c.verify().map_err(|e| e.to_string())?;
    if !report.is_ok() {
        return Err(format!("verify: {:?}", report.problems));
    }
    let s = c.stats();
    let before = (s.indexed, s.index_pending);
    // Searches see the tail exactly and the graph as built: every point is found.
    all_found(&c, live.iter().copied().filter(|&id| id != 1 && id != 301))?;
    c.wait_indexed().map_err(|e| e.to_string())?;
    let s = c.stats();
    if (s.indexed, s.index_pending) != (live.len() as u64, 0) {
        return Err(format!(
            "after wait_indexed: {} indexed, {} pending",
            s.indexed, s.index_pending
        ));
    }
    all_found(&c, live.iter().copied().filter(|&id| id != 1 && id != 301))?;
    Ok(before)
}

fn a_pending_tail_survives_a_checkpoint_and_a_reopen_and_is_indexed_afterwards(
    fs: DynFs,
    root: &std::path::Path,
) {
    let root = root.to_str().unwrap();
    let live = {
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        let c = db.create_collection("c", config()).unwrap();
        scenario(&c)
    };
    let (indexed, pending) = check_recovered(fs, root, &live).unwrap();
    // The checkpoint saved a graph of 287 (300, 12 deleted, id 1 replaced) and a tail of
    // 193 (200, 8 deleted, plus id 1's new slot); the log after it adds 50 to the tail.
    assert_eq!((indexed, pending), (287, 243));
}

on_both_file_systems!(a_pending_tail_survives_a_checkpoint_and_a_reopen_and_is_indexed_afterwards);

#[test]
fn every_crash_image_of_writes_with_a_pending_tail_recovers_graph_and_tail_exactly() {
    let fs = SimFs::new();
    let live = {
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db.create_collection("c", config()).unwrap();
        scenario(&c)
    };
    let mut images = 0;
    for image in fs.crash_images(&CrashModel::torn_512(), 60, 0x1D3) {
        check_recovered(image.shared(), "/db", &live)
            .unwrap_or_else(|e| panic!("image {images}: {e}"));
        images += 1;
    }
    println!("{images} crash images checked: graph + pending tail = every acknowledged point");
    assert!(images > 0);
}

/// Writers run ahead of the indexer up to the full lag bound while nobody searches, and
/// only to the tighter bound once searches run (each search scans the whole tail).
#[test]
fn writers_wait_for_the_tighter_lag_bound_once_the_collection_is_searched() {
    let dir = tempfile::tempdir().unwrap();
    // No indexer thread: a writer that finds no room indexes the tail itself, so the tail
    // after each write is exactly what the bound allows. The window never expires here.
    let options = options()
        .with_index_lag(1_000, 1 << 30)
        .with_index_lag_while_searching(40)
        .with_searched_window(Duration::from_secs(3_600));
    let db = Database::open(dir.path(), options).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    for chunk in points(0..200).chunks(50) {
        c.upsert_batch(chunk.to_vec()).unwrap();
    }
    assert_eq!(c.stats().index_pending, 200, "not searched: the full bound");
    all_found(&c, [7, 150].into_iter()).unwrap();
    c.upsert_batch(points(200..210)).unwrap();
    let pending = c.stats().index_pending;
    assert!(
        pending <= 40,
        "searched: the writer made room under 40 pending, left {pending}"
    );
    all_found(&c, 0..210).unwrap();
    assert!(c.verify().unwrap().is_ok());
}
