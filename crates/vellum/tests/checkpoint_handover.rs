//! A checkpoint holds the collection's lock only for two short handovers (taking the state
//! at one LSN in memory, and publishing): while it flushes slots and writes, syncs and
//! publishes its files, writers, readers and `stats` go on. The test stops a checkpoint
//! half way (held at a fail point just before its manifest is published), replaces and
//! deletes the very points it names and adds new ones, then checks, for crash images taken
//! while it is held and after it finished, that every acknowledged write is recovered and
//! that the slots the checkpoint names were never reused under it. The same scenario runs on
//! the real file system with a checkpoint thread racing the writers.

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use vellum::fs::{CrashModel, DynFs, Pause, RealFs, SimFs};
use vellum::{
    Collection, CollectionConfig, CollectionStats, Database, DatabaseOptions, HnswParams, Metric,
    Point, SearchParams,
};

type Model = BTreeMap<u64, Vec<f32>>;

/// Guard against a deadlock turning into a hung test; not a measurement.
const PATIENCE: Duration = Duration::from_secs(60);

fn options() -> DatabaseOptions {
    common::options(16 << 10, 16)
}

fn config() -> CollectionConfig {
    CollectionConfig::new(4, Metric::L2).hnsw(HnswParams {
        m: 4,
        ef_construction: 32,
        ef_search: 32,
        seed: 7,
    })
}

fn vector(id: u64, version: u64) -> Vec<f32> {
    vec![id as f32, version as f32, (id % 7) as f32, 1.0]
}

fn upsert(c: &Collection, model: &mut Model, ids: impl Iterator<Item = u64>, version: u64) {
    let points: Vec<Point> = ids.map(|id| Point::new(id, vector(id, version))).collect();
    for p in &points {
        model.insert(p.id, p.vector.clone());
    }
    c.upsert_batch(points).expect("upsert");
}

/// The writes made while the checkpoint is in flight: replace and delete points it names
/// (their slots are the first a careless store would reuse) and add new ones.
fn writes_during_the_checkpoint(c: &Collection, model: &mut Model) {
    upsert(c, model, 0..20, 2);
    for id in 20..30 {
        c.delete(id).expect("delete");
        model.remove(&id);
    }
    upsert(c, model, 100..140, 1);
    // Readers and stats are not held up either.
    let hit = c.search(&vector(100, 1), 1).expect("search");
    assert_eq!(hit[0].id, 100);
    assert_eq!(
        c.get(5).expect("get").expect("point 5").vector,
        vector(5, 2)
    );
    assert_eq!(c.stats().points, model.len() as u64);
}

/// Reopens the database at `root` and checks it holds exactly `model`, the index agreeing
/// with the store and every checksum good.
fn check(fs: DynFs, root: &str, model: &Model) -> Result<CollectionStats, String> {
    let db = Database::open_with_fs(fs, root, options()).map_err(|e| format!("reopen: {e}"))?;
    let c = db.collection("c").map_err(|e| format!("collection: {e}"))?;
    // The graph is approximate while the background indexer builds it; the k=1 checks
    // below ask for the fully built one.
    c.wait_indexed().map_err(|e| format!("wait_indexed: {e}"))?;
    let mut ids = c.ids();
    ids.sort_unstable();
    let want: Vec<u64> = model.keys().copied().collect();
    if ids != want {
        return Err(format!("ids {ids:?}, want {want:?}"));
    }
    for (id, v) in model {
        let got = c.get(*id).map_err(|e| format!("get {id}: {e}"))?;
        if got.as_ref().map(|p| &p.vector) != Some(v) {
            return Err(format!("id {id}: {got:?}, want {v:?}"));
        }
        let exact = SearchParams {
            exact: true,
            ..SearchParams::default()
        };
        let by_index = c.search(v, 1).map_err(|e| e.to_string())?;
        let by_scan = c.search_with(v, 1, &exact).map_err(|e| e.to_string())?;
        if by_index.first().map(|h| h.id) != Some(*id) || by_scan.first().map(|h| h.id) != Some(*id)
        {
            return Err(format!("search for id {id}: {by_index:?} / {by_scan:?}"));
        }
    }
    let report = c.verify().map_err(|e| e.to_string())?;
    if !report.is_ok() {
        return Err(format!("verify: {:?}", report.problems));
    }
    Ok(c.stats())
}

#[test]
fn writers_readers_and_stats_go_on_while_a_checkpoint_writes_its_files() {
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).expect("open");
    let c = db.create_collection("c", config()).expect("create");
    let mut model = Model::new();
    for b in 0..6 {
        upsert(&c, &mut model, b * 10..b * 10 + 10, 1);
    }
    let covered = c.stats().last_lsn;
    let pause: Pause = fs.pause_at(vellum_checkpoint::fail_points::BEFORE_PUBLISH);
    let checkpointing = {
        let c = c.clone();
        std::thread::spawn(move || c.checkpoint())
    };
    assert!(
        pause.wait_reached(PATIENCE),
        "the checkpoint never reached its publish step"
    );
    let (done_tx, done_rx) = mpsc::channel();
    let writer = {
        let (c, mut model) = (c.clone(), model.clone());
        std::thread::spawn(move || {
            writes_during_the_checkpoint(&c, &mut model);
            done_tx.send(()).expect("main thread waits");
            model
        })
    };
    if done_rx.recv_timeout(PATIENCE).is_err() {
        pause.resume();
        panic!("writes waited for the checkpoint in flight: it holds the collection's lock");
    }
    model = writer.join().expect("writer");

    // Power lost while the checkpoint is held: its generation is not published, so the log
    // (never truncated yet) brings back every acknowledged write.
    let mut images = 0;
    for image in fs.crash_images(&CrashModel::torn_512(), 150, 0xC0FFEE) {
        let stats = check(image.shared(), "/db", &model).unwrap_or_else(|e| panic!("held: {e}"));
        assert_eq!(stats.generation, 0, "the held checkpoint was published");
        images += 1;
    }

    pause.resume();
    let info = checkpointing
        .join()
        .expect("checkpoint thread")
        .expect("checkpoint");
    assert_eq!(info.generation, 1);
    assert_eq!(info.lsn, covered, "the checkpoint covers the state it took");
    upsert(&c, &mut model, 200..210, 1);
    let ops_after = c.stats().last_lsn - covered;
    assert_eq!(c.stats().ops_since_checkpoint, ops_after);

    // After it: the generation names the slots of the replaced and deleted points, which
    // must still hold their old vectors (checksums), and the log replays what came later.
    for image in fs.crash_images(&CrashModel::torn_512(), 150, 0xBEEF) {
        let stats = check(image.shared(), "/db", &model).unwrap_or_else(|e| panic!("after: {e}"));
        assert_eq!(stats.generation, 1);
        assert!(stats.graph_loaded_from_checkpoint);
        assert_eq!(stats.replayed_at_open, ops_after);
        images += 1;
    }
    drop((c, db));
    println!("checkpoint handover: checked {images} crash images");
    assert!(images >= 24);
}

#[test]
fn a_checkpoint_racing_writers_on_the_real_file_system_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("db");
    let fs: DynFs = std::sync::Arc::new(RealFs::new());
    let db = Database::open_with_fs(fs.clone(), &root, options()).expect("open");
    let c = db.create_collection("c", config()).expect("create");
    let mut model = Model::new();
    for b in 0..6 {
        upsert(&c, &mut model, b * 10..b * 10 + 10, 1);
    }
    let checkpoints = {
        let c = c.clone();
        std::thread::spawn(move || {
            for _ in 0..5 {
                c.checkpoint().expect("checkpoint");
            }
        })
    };
    for round in 0..5 {
        writes_during_the_checkpoint(&c, &mut model);
        upsert(&c, &mut model, 0..60, round + 3);
    }
    checkpoints.join().expect("checkpoint thread");
    drop((c, db));
    let root = root.to_str().expect("utf-8 path");
    let stats = check(fs, root, &model).unwrap_or_else(|e| panic!("real file system: {e}"));
    assert_eq!(stats.generation, 5);
}

#[test]
fn dropping_a_collection_waits_for_its_checkpoint_in_flight_and_leaves_nothing_behind() {
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).expect("open");
    let c = db.create_collection("c", config()).expect("create");
    let mut model = Model::new();
    upsert(&c, &mut model, 0..30, 1);
    let pause = fs.pause_at(vellum_checkpoint::fail_points::BEFORE_PUBLISH);
    let checkpointing = {
        let c = c.clone();
        std::thread::spawn(move || c.checkpoint())
    };
    assert!(
        pause.wait_reached(PATIENCE),
        "the checkpoint never got going"
    );
    let dropping = {
        let db = db.clone();
        std::thread::spawn(move || db.drop_collection("c"))
    };
    // Give the drop every chance to run ahead (it must not: it waits for the checkpoint).
    std::thread::sleep(Duration::from_millis(200));
    pause.resume();
    let info = checkpointing.join().expect("checkpoint thread");
    assert!(
        info.is_ok(),
        "the drop pulled the directory from under the checkpoint: {info:?}"
    );
    dropping.join().expect("drop thread").expect("drop");
    assert!(matches!(
        c.upsert(Point::new(99, vector(99, 1))),
        Err(vellum::Error::UnknownCollection { .. })
    ));
    assert!(
        !fs.all_paths()
            .iter()
            .any(|p| p.starts_with("/db/collections/c-0000000000000001")),
        "files of the dropped collection remain"
    );
    drop((c, db));
    let db = Database::open_with_fs(fs.shared(), "/db", options()).expect("reopen");
    assert!(db.list_collections().is_empty());
}
