//! Golden database directories, written by earlier versions and committed: every version
//! this one claims to read must open with the same points, payloads and search answers.
//!
//! Write the fixture of the current version (only when the format changes; rename
//! `database-next` to the new version and note it in docs/format/database.md):
//! `VELLUM_WRITE_FIXTURE=1 cargo test -p vellum --test golden`

mod common;

use std::path::{Path, PathBuf};

use vellum::{
    CollectionConfig, Condition, Database, DatabaseOptions, Filter, HnswParams, Metric,
    PayloadIndexKind, Point, QuantKind, Quantization, SearchParams,
};

fn options() -> DatabaseOptions {
    // The quantized collection of version 5 on has 40 points: trained at its first.
    common::options(16 << 10, 16).with_quantizer_train_min_points(1)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn vector(id: u64, dim: usize, version: u64) -> Vec<f32> {
    // The first component tells every id apart; the rest vary with the version.
    (0..dim as u64)
        .map(|d| match d {
            0 => id as f32 * 0.5,
            _ => ((id * 13 + d * 5 + version * 3) % 17) as f32 + 0.25 * d as f32,
        })
        .collect()
}

fn payload(id: u64) -> Option<Vec<u8>> {
    id.is_multiple_of(3)
        .then(|| format!("{{\"id\":{id}}}").into_bytes())
}

/// What every fixture holds: per collection, ids 0..40 upserted (version 1), a checkpoint,
/// then ids 30..40 upserted again (version 2) and ids 5, 6, 7 deleted, left in the log.
fn expected(id: u64, dim: usize) -> Option<Vec<f32>> {
    match id {
        5..=7 => None,
        30..=39 => Some(vector(id, dim, 2)),
        0..=39 => Some(vector(id, dim, 1)),
        _ => None,
    }
}

const COLLECTIONS: [(&str, usize); 2] = [("flat", 3), ("graph", 4)];

/// From version 5 on, a third collection with int8 codes (catalog 2, `quantizer` file).
const COLLECTIONS_V5: [(&str, usize); 3] = [("flat", 3), ("graph", 4), ("quantized", 5)];

fn collections_of(name: &str) -> &'static [(&'static str, usize)] {
    match name {
        "database-v1" | "database-v2" | "database-v3" | "database-v4" => &COLLECTIONS,
        _ => &COLLECTIONS_V5,
    }
}

fn config(name: &str, dim: usize) -> CollectionConfig {
    let base = CollectionConfig::new(dim, Metric::L2);
    let hnsw = base.hnsw(HnswParams {
        m: 4,
        ef_construction: 32,
        ef_search: 32,
        seed: 3,
    });
    match name {
        "graph" => hnsw,
        "quantized" => hnsw.quantized(Quantization::int8()),
        _ => base.flat(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Opens a copy of the fixture `name`; `graph_from_file`: whether its HNSW graph is opened
/// from the checkpoint (a version 1 graph, keyed by point id, is rebuilt from the store).
fn check_fixture(name: &str, graph_from_file: bool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    copy_dir(&fixtures().join(name), &root);
    check_database(&root, name, graph_from_file);
}

/// Opens the database at `root` and checks it holds the fixture's contents.
fn check_database(root: &Path, name: &str, graph_from_file: bool) {
    let db = Database::open(root, options()).unwrap_or_else(|e| panic!("{name}: {e}"));
    for &(coll, dim) in collections_of(name) {
        let c = db.collection(coll).unwrap();
        assert_eq!(c.config(), config(coll, dim), "{name}/{coll}");
        let stats = c.stats();
        assert_eq!(stats.generation, 1, "{name}/{coll}");
        assert_eq!(stats.replayed_at_open, 13, "{name}/{coll}");
        if coll == "graph" {
            assert_eq!(
                stats.graph_loaded_from_checkpoint, graph_from_file,
                "{name}"
            );
        }
        if coll == "quantized" {
            assert_eq!(stats.quantization, Some(QuantKind::Int8), "{name}");
            assert_eq!(
                stats.quantizer_trained_points, 40,
                "the saved quantizer: {name}"
            );
        }
        let mut want = 0;
        for id in 0..45 {
            let got = c.get(id).unwrap();
            assert_eq!(
                got.as_ref().map(|p| p.vector.clone()),
                expected(id, dim),
                "{name}/{coll} id {id}"
            );
            if let Some(p) = got {
                want += 1;
                assert_eq!(p.payload, payload(id), "{name}/{coll} payload of {id}");
                let exact = SearchParams {
                    exact: true,
                    ..SearchParams::default()
                };
                assert_eq!(c.search(&p.vector, 1).unwrap()[0].id, id);
                assert_eq!(c.search_with(&p.vector, 1, &exact).unwrap()[0].id, id);
            }
        }
        assert_eq!(c.len(), want);
        assert!(c.verify().unwrap().is_ok(), "{name}/{coll}");
        // From version 4 on, the fixture has an integer index on the payload's "id".
        let indexed = !matches!(name, "database-v1" | "database-v2" | "database-v3");
        assert_eq!(
            c.payload_indexes().len(),
            usize::from(indexed),
            "{name}/{coll}"
        );
        for id in [0, 3, 5, 6, 33, 34] {
            let f = Filter::default().must(Condition::matches("id", id as i64));
            let want = u64::from(expected(id, dim).is_some() && payload(id).is_some());
            assert_eq!(c.count(Some(&f)).unwrap(), want, "{name}/{coll} id {id}");
        }
    }
}

#[test]
fn a_version_1_database_opens_with_its_points_payloads_and_answers() {
    check_fixture("database-v1", false);
}

#[test]
fn a_version_2_database_opens_with_its_graph_from_the_checkpoint() {
    check_fixture("database-v2", true);
}

#[test]
fn a_version_3_database_opens_with_its_payloads_from_mapped_runs() {
    check_fixture("database-v3", true);
}

#[test]
fn a_version_4_database_opens_with_its_payload_index() {
    check_fixture("database-v4", true);
}

#[test]
fn a_version_1_database_checkpointed_by_this_version_reopens_with_its_graph_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    copy_dir(&fixtures().join("database-v1"), &root);
    {
        let db = Database::open(&root, options()).unwrap();
        db.checkpoint_all().unwrap();
    }
    let db = Database::open(&root, options()).unwrap();
    let c = db.collection("graph").unwrap();
    assert!(c.stats().graph_loaded_from_checkpoint);
    assert_eq!(c.stats().vectors_read_since_open, 0);
    // The payload map of version 1 became a payload run.
    assert_eq!(c.stats().payload_runs, 1);
    for id in 0..45 {
        let got = c.get(id).unwrap();
        assert_eq!(
            got.and_then(|p| p.payload),
            expected(id, 4).and(payload(id)),
            "{id}"
        );
    }
    for id in [0, 12, 35] {
        let v = expected(id, 4).unwrap();
        assert_eq!(c.search(&v, 1).unwrap()[0].id, id);
    }
}

/// Writes the fixture's contents with this version into a new database at `root`.
fn write_fixture(root: &Path) {
    {
        let db = Database::open(root, options()).unwrap();
        for (coll, dim) in COLLECTIONS_V5 {
            let c = db.create_collection(coll, config(coll, dim)).unwrap();
            for chunk in (0..40u64).collect::<Vec<_>>().chunks(8) {
                c.upsert_batch(chunk.iter().map(|&id| {
                    let p = Point::new(id, vector(id, dim, 1));
                    match payload(id) {
                        Some(bytes) => p.with_payload(bytes),
                        None => p,
                    }
                }))
                .unwrap();
            }
            // Creating the index checkpoints (generation 1, as before indexes).
            c.create_payload_index("id", PayloadIndexKind::Integer)
                .unwrap();
            c.upsert_batch((30..40u64).map(|id| {
                let p = Point::new(id, vector(id, dim, 2));
                match payload(id) {
                    Some(bytes) => p.with_payload(bytes),
                    None => p,
                }
            }))
            .unwrap();
            for id in 5..8 {
                c.delete(id).unwrap();
            }
        }
        db.sync().unwrap();
    }
    std::fs::remove_file(root.join(vellum::LOCK_FILE)).unwrap();
}

#[test]
fn the_fixture_writer_of_this_version_makes_a_database_the_checks_accept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    write_fixture(&root);
    check_database(&root, "freshly written", true);
    if std::env::var_os("VELLUM_WRITE_FIXTURE").is_some() {
        let next = fixtures().join("database-next");
        let _ = std::fs::remove_dir_all(&next);
        write_fixture(&next);
        println!("wrote {}", next.display());
    }
}

#[test]
fn a_version_5_database_opens_with_its_quantizer_and_codes() {
    check_fixture("database-v5", true);
}
