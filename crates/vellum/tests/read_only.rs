//! `Database::open_read_only`: recovery over a copy-on-write overlay. It reads a database
//! another handle holds, reports a torn tail without cutting it, replays the log tail in
//! memory, refuses every change, and leaves every byte as it was, on both file systems.

mod common;

use common::tree;

use std::path::{Path, PathBuf};

use vellum::{CollectionConfig, Database, DatabaseOptions, Error, HnswParams, Metric, Point};
use vellum_fs::{DynFs, Fs, RealFs, SimFs};

fn options() -> DatabaseOptions {
    common::options(1 << 16, 64)
}

fn vector(i: u64) -> Vec<f32> {
    vec![i as f32, (i % 7) as f32, 1.0]
}

/// A database with a checkpoint, a log tail after it (a replacement, a delete, new points),
/// a torn last record, and a directory a crash left behind: everything an open would change.
fn make(fs: &DynFs, root: &Path) -> (u64, PathBuf) {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let params = HnswParams {
        ef_search: 64,
        ..HnswParams::default()
    };
    let c = db
        .create_collection("c", CollectionConfig::new(3, Metric::L2).hnsw(params))
        .unwrap();
    c.upsert_batch((0..100).map(|i| Point::new(i, vector(i))))
        .unwrap();
    c.checkpoint().unwrap();
    c.upsert(Point::new(5, vector(500))).unwrap();
    c.delete(6).unwrap();
    c.upsert_batch((100..130).map(|i| Point::new(i, vector(i))))
        .unwrap();
    let torn_lsn = c.upsert(Point::new(999, vector(999))).unwrap();
    drop((c, db));
    // Tear the last frame as a crash does: its end never arrived.
    let coll = root.join("collections");
    let dir = coll.join(fs.list_dir(&coll).unwrap().pop().unwrap());
    let wal = dir.join("wal");
    let seg = wal.join(fs.list_dir(&wal).unwrap().pop().unwrap());
    let f = fs.open(&seg).unwrap();
    let mut b = vec![0; f.len().unwrap() as usize];
    f.read_at(&mut b, 0).unwrap();
    let end = b.iter().rposition(|&x| x != 0).unwrap() + 1;
    f.write_at(&[0; 24], (end - 24) as u64).unwrap();
    f.sync_data().unwrap();
    fs.create_dir_all(&coll.join("c-00000000000000ff")).unwrap();
    (torn_lsn, seg)
}

fn a_read_only_open_reads_everything_and_changes_nothing(fs: DynFs, root: &Path) {
    let (torn_lsn, seg) = make(&fs, root);
    let before = tree(fs.as_ref(), root);
    for round in 0..2 {
        let db = Database::open_read_only_with_fs(fs.clone(), root, options()).unwrap();
        assert!(db.is_read_only());
        let c = db.collection("c").unwrap();
        assert_eq!(c.len(), 129, "round {round}");
        assert_eq!(c.get(5).unwrap().unwrap().vector, vector(500));
        assert!(c.get(6).unwrap().is_none() && c.get(999).unwrap().is_none());
        assert_eq!(c.get(129).unwrap().unwrap().vector, vector(129));
        let hits = c.search(&vector(120), 1).unwrap();
        assert_eq!(hits[0].id, 120);
        let cut = c
            .stats()
            .tail_cut_at_open
            .expect("the torn tail is reported");
        assert_eq!((cut.lsn, cut.segment), (torn_lsn, seg.clone()));
        let report = c.verify().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        for e in [
            c.upsert(Point::new(1, vector(1))).unwrap_err(),
            c.delete(1).unwrap_err(),
            c.checkpoint().map(|_| ()).unwrap_err(),
            db.create_collection("d", CollectionConfig::new(3, Metric::L2))
                .map(|_| ())
                .unwrap_err(),
            db.drop_collection("c").unwrap_err(),
            db.create_snapshot("c", vellum::SnapshotKind::Full)
                .map(|_| ())
                .unwrap_err(),
        ] {
            assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
        }
        // A second read-only handle, and a writer, may open beside it.
        let other = Database::open_read_only_with_fs(fs.clone(), root, options()).unwrap();
        assert_eq!(other.collection("c").unwrap().len(), 129);
        drop((c, db, other));
        assert!(
            tree(fs.as_ref(), root) == before,
            "round {round}: a byte changed"
        );
    }
    // The writable open does change things (it cuts the tail, removes the leftover): the
    // read-only one had something to leave alone.
    drop(Database::open_with_fs(fs.clone(), root, options()).unwrap());
    assert!(tree(fs.as_ref(), root) != before);
}

#[test]
fn a_read_only_open_reads_everything_and_changes_nothing_sim() {
    let fs = SimFs::new();
    a_read_only_open_reads_everything_and_changes_nothing(fs.shared(), Path::new("/db"));
}

#[test]
fn a_read_only_open_reads_everything_and_changes_nothing_real() {
    let dir = tempfile::tempdir().unwrap();
    a_read_only_open_reads_everything_and_changes_nothing(RealFs::shared(), dir.path());
}

#[test]
fn a_read_only_open_issues_no_mutating_file_system_call() {
    let fs = SimFs::new();
    let root = Path::new("/db");
    make(&fs.shared(), root);
    fs.record_ops();
    let db = Database::open_read_only_with_fs(fs.shared(), root, options()).unwrap();
    let c = db.collection("c").unwrap();
    c.search(&vector(3), 5).unwrap();
    assert!(c.verify().unwrap().is_ok());
    drop((c, db));
    let ops = fs.op_log();
    assert!(!ops.is_empty(), "the log recorded the open");
    let mutations: Vec<_> = ops.iter().filter(|k| k.is_mutation()).collect();
    assert!(mutations.is_empty(), "{mutations:?}");
}

#[test]
fn a_read_only_open_runs_beside_a_writer_and_sees_what_it_acknowledged() {
    let fs = SimFs::new();
    let root = Path::new("/db");
    make(&fs.shared(), root);
    let writer = Database::open_with_fs(fs.shared(), root, options()).unwrap();
    let w = writer.collection("c").unwrap();
    w.upsert(Point::new(7000, vector(7000))).unwrap();
    let reader = Database::open_read_only_with_fs(fs.shared(), root, options()).unwrap();
    let r = reader.collection("c").unwrap();
    assert_eq!(r.get(7000).unwrap().unwrap().vector, vector(7000));
    assert_eq!(r.len(), w.len());
    // The writer goes on undisturbed.
    w.upsert(Point::new(7001, vector(7001))).unwrap();
    w.checkpoint().unwrap();
}

#[test]
fn a_read_only_open_of_a_directory_that_is_not_a_database_creates_nothing() {
    let fs = SimFs::new();
    let e = Database::open_read_only_with_fs(fs.shared(), "/nothing", options()).unwrap_err();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e}");
    assert!(!fs.exists(Path::new("/nothing")).unwrap());
    fs.create_dir_all(Path::new("/empty")).unwrap();
    let e = Database::open_read_only_with_fs(fs.shared(), "/empty", options()).unwrap_err();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e}");
    assert!(fs.list_dir(Path::new("/empty")).unwrap().is_empty());
}

/// A read-only handle cannot save a graph it builds, so it never starts the background
/// indexer: its tail is searched exactly. The hook would hold an indexer inside its first
/// chunk, so one started by the open would still be running when the stats are read.
#[test]
fn a_read_only_open_searches_its_tail_exactly_and_never_indexes_it() {
    let fs = SimFs::new();
    let root = Path::new("/db");
    {
        let writer = options().with_background_indexing(false);
        let db = Database::open_with_fs(fs.shared(), root, writer).unwrap();
        let config = CollectionConfig::new(3, Metric::L2).hnsw(HnswParams::default());
        let c = db.create_collection("c", config).unwrap();
        c.upsert_batch((0..300).map(|i| Point::new(i, vector(i))))
            .unwrap();
        assert_eq!(c.stats().index_pending, 300);
    }
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let hook = std::sync::Arc::new(move || {
        // Returns once the sender is gone (dropped before the database, even on a panic).
        let _ = release_rx.lock().unwrap().recv();
    });
    let db = Database::open_read_only_with_fs(fs.shared(), root, options().with_indexer_hook(hook))
        .unwrap();
    let release = release_tx;
    let c = db.collection("c").unwrap();
    let hits = c.search(&vector(7), 1).unwrap();
    assert_eq!((hits[0].id, hits[0].distance), (7, 0.0));
    let stats = c.stats();
    assert!(
        !stats.indexer_running,
        "a read-only open started the indexer"
    );
    assert_eq!((stats.index_pending, stats.indexed), (300, 0));
    drop(release);
}
