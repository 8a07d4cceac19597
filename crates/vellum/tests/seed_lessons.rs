//! Regression tests for the failures of the seed systems (regressions R1–R14 of docs/PROPERTIES.md) that the
//! facade owns: 8 (graph saved but never loaded), 9 (corruption tests that corrupted files
//! which did not exist), 14 (index rebuilt on the first search after a restart that followed
//! a write), plus corrupt and foreign files giving typed errors.

mod common;

use std::path::{Path, PathBuf};

use vellum::fs::{Fs, SimFs};
use vellum::{CollectionConfig, Database, DatabaseOptions, Error, HnswParams, Metric, Point};

fn options() -> DatabaseOptions {
    common::options(64 << 10, 256)
}

fn vector(i: u64) -> Vec<f32> {
    (0..8)
        .map(|d| ((i * 13 + d * 5) % 101) as f32 / 101.0)
        .collect()
}

fn build(fs: &SimFs, n: u64) {
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db
        .create_collection(
            "c",
            CollectionConfig::new(8, Metric::L2).hnsw(HnswParams {
                m: 8,
                ef_construction: 40,
                ef_search: 40,
                seed: 1,
            }),
        )
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        c.upsert_batch(
            chunk
                .iter()
                .map(|&i| Point::new(i, vector(i)).with_payload(format!("{i}"))),
        )
        .unwrap();
    }
    // As a bulk loader does: the whole graph, then the checkpoint that saves it.
    c.wait_indexed().unwrap();
    c.checkpoint().unwrap();
}

#[test]
fn opening_loads_the_saved_graph_and_reads_no_vector_whatever_the_size() {
    for n in [300u64, 3000] {
        let fs = SimFs::new();
        build(&fs, n);
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db.collection("c").unwrap();
        let s = c.stats();
        assert!(
            s.graph_loaded_from_checkpoint,
            "n={n}: the saved graph must be loaded"
        );
        assert_eq!(s.replayed_at_open, 0);
        assert_eq!(
            s.vectors_read_since_open, 0,
            "n={n}: opening read vectors (a rebuild?)"
        );
        assert_eq!(s.indexed, n);
        c.search(&vector(7), 10).unwrap();
        let after_search = c.stats().vectors_read_since_open;
        assert!(
            after_search > 0 && after_search < n.min(1000),
            "n={n}: one search read {after_search} vectors"
        );
    }
}

#[test]
fn a_write_after_a_restart_does_not_rebuild_the_index() {
    let n = 3000u64;
    let fs = SimFs::new();
    build(&fs, n);
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db.collection("c").unwrap();
    c.upsert(Point::new(n + 1, vector(n + 1))).unwrap();
    c.search(&vector(3), 10).unwrap();
    let reads = c.stats().vectors_read_since_open;
    // A rebuild would read every vector many times over; an insert plus a search read a few
    // hundred.
    assert!(
        reads < n / 3,
        "a write and a search after restart read {reads} vectors of {n}"
    );
    // And the restart after that write replays one record, still without a rebuild.
    drop((c, db));
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let s = db.collection("c").unwrap().stats();
    assert!(s.graph_loaded_from_checkpoint);
    assert_eq!(s.replayed_at_open, 1);
    assert_eq!(s.vectors_read_since_open, 0);
    assert_eq!(s.indexed + s.index_pending, n + 1);
}

/// Finds the one file under `dir` whose path contains `needle`, asserting it exists (regression
/// R9: a corruption test must corrupt something real).
fn find(fs: &SimFs, needle: &str) -> PathBuf {
    let hits: Vec<PathBuf> = fs
        .all_paths()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(needle) && !fs.is_dir(p).unwrap())
        .collect();
    assert!(
        !hits.is_empty(),
        "no file matching {needle:?} to corrupt: {:?}",
        fs.all_paths()
    );
    hits[0].clone()
}

fn flip(fs: &SimFs, path: &Path, offset_from_end: usize) {
    let before = fs.read_file(path).unwrap();
    assert!(
        before.len() > offset_from_end,
        "{} is too short to corrupt",
        path.display()
    );
    fs.tamper(path, |b| {
        let i = b.len() - 1 - offset_from_end;
        b[i] ^= 0x5A;
    })
    .unwrap();
    assert_ne!(
        fs.read_file(path).unwrap(),
        before,
        "the corruption changed nothing"
    );
}

#[test]
fn a_corrupt_catalog_is_a_typed_error_naming_the_file() {
    let fs = SimFs::new();
    build(&fs, 50);
    flip(&fs, &find(&fs, "/db/VELLUM"), 3);
    let e = Database::open_with_fs(fs.shared(), "/db", options()).unwrap_err();
    assert!(matches!(e, Error::BadDatabaseFile { .. }), "{e}");
    assert!(e.to_string().contains("VELLUM"), "{e}");
}

#[test]
fn a_corrupt_checkpoint_file_is_refused_or_rolled_back_from_the_previous_generation() {
    let fs = SimFs::new();
    build(&fs, 200);
    {
        // A second generation, so there is a previous one to fall back to.
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db.collection("c").unwrap();
        c.upsert(Point::new(10_000, vector(10_000))).unwrap();
        c.checkpoint().unwrap();
    }
    let graph = fs
        .all_paths()
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("/checkpoints/") && p.to_string_lossy().contains("graph")
        })
        .max()
        .expect("the newest generation's graph file exists");
    flip(&fs, &graph, 100);
    let e = common::open_all(fs.shared(), "/db", options()).unwrap_err();
    assert!(matches!(e, Error::CheckpointDamaged { .. }), "{e}");
    // With fallback, the previous generation plus the log give back everything.
    let db = Database::open_with_fs(
        fs.shared(),
        "/db",
        options().with_fallback_to_previous_checkpoint(true),
    )
    .unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), 201);
    assert_eq!(c.get(10_000).unwrap().unwrap().vector, vector(10_000));
}

#[test]
fn corruption_in_the_middle_of_the_log_is_reported_not_truncated() {
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(8, Metric::L2).flat())
        .unwrap();
    for i in 0..40 {
        c.upsert(Point::new(i, vector(i))).unwrap();
    }
    drop((c, db));
    let seg = find(&fs, "/wal/");
    let bytes = fs.read_file(&seg).unwrap();
    // Flip a byte a third of the way into the written part: valid records follow it.
    let written = bytes
        .iter()
        .rposition(|&b| b != 0)
        .expect("the log holds records");
    let at = written / 3;
    assert!(at > 128, "the log segment holds enough records");
    fs.tamper(&seg, |b| b[at] ^= 0xFF).unwrap();
    let e = common::open_all(fs.shared(), "/db", options()).unwrap_err();
    assert!(matches!(e, Error::Wal(_)), "{e}");
    assert!(
        e.to_string()
            .contains(&seg.file_name().unwrap().to_string_lossy().to_string()),
        "names the segment: {e}"
    );
}

#[test]
fn a_torn_vector_slot_is_detected_and_never_served() {
    let fs = SimFs::new();
    build(&fs, 100);
    let seg = find(&fs, "/vectors/");
    fs.tamper(&seg, |b| {
        // First slot follows the 4 KiB header.
        b[4096] ^= 0x01;
    })
    .unwrap();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db.collection("c").unwrap();
    let report = c.verify().unwrap();
    assert!(!report.is_ok(), "verify must report the damaged slot");
    let errors = (0..100).filter(|&i| c.get(i).is_err()).count();
    assert!(errors >= 1, "the damaged vector must not be served");
}

#[test]
fn foreign_files_in_a_collection_directory_do_not_break_opening() {
    let fs = SimFs::new();
    build(&fs, 20);
    let coll_dir = find(&fs, "/vectors/")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let stray = coll_dir.join("checkpoints").join("notes.txt");
    fs.create(&stray)
        .unwrap()
        .write_at(b"left by someone", 0)
        .unwrap();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 20);
}

#[test]
fn verify_checks_every_page_of_a_large_collection_and_names_the_damaged_id() {
    // More points than verify checks per hold of the lock: damage in a later page is found.
    let fs = SimFs::new();
    build(&fs, 5000);
    let damaged_id = 4500u64;
    {
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db.collection("c").unwrap();
        assert!(c.verify().unwrap().is_ok());
    }
    // Ids went in ascending order into the lowest free slots: slot 4500 is segment 17
    // (256 slots of 64 bytes each after the 4 KiB header), slot 148 there.
    let seg = find(&fs, "/vectors/segment-00000017");
    fs.tamper(&seg, |b| b[4096 + 148 * 64] ^= 0x01).unwrap();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db.collection("c").unwrap();
    let report = c.verify().unwrap();
    assert_eq!(report.vectors_checked, 5000);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains(&format!("id {damaged_id} ")),
        "{:?}",
        report.problems
    );
}
