//! Snapshots through the facade: export to a file or a chunk stream, import into another
//! database, incremental chains, hostile archives, and a crash at every step of a restore.

mod common;

use std::path::{Path, PathBuf};

use vellum::fs::{CrashHarness, CrashModel, CrashPoints, Fs, RealFs, SimFs};
use vellum::{
    ChunkReceiver, CollectionConfig, Database, DatabaseOptions, Error, HnswParams, Metric, Point,
};

fn options() -> DatabaseOptions {
    common::options(64 << 10, 128)
}

fn vector(i: u64) -> Vec<f32> {
    (0..16)
        .map(|d| ((i * 17 + d * 3) % 89) as f32 / 89.0)
        .collect()
}

fn config() -> CollectionConfig {
    CollectionConfig::new(16, Metric::Cosine).hnsw(HnswParams {
        m: 8,
        ef_construction: 40,
        ef_search: 64,
        seed: 2,
    })
}

fn fill(db: &Database, name: &str, ids: std::ops::Range<u64>) {
    let c = match db.collection(name) {
        Ok(c) => c,
        Err(_) => db.create_collection(name, config()).unwrap(),
    };
    let ids: Vec<u64> = ids.collect();
    for chunk in ids.chunks(100) {
        c.upsert_batch(
            chunk
                .iter()
                .map(|&i| Point::new(i, vector(i)).with_payload(format!("p{i}"))),
        )
        .unwrap();
        // Snapshots carry the whole graph (their sizes below assume it).
        c.wait_indexed().unwrap();
    }
}

fn answers(db: &Database, name: &str) -> Vec<Vec<u64>> {
    let c = db.collection(name).unwrap();
    (0..20)
        .map(|q| {
            c.search(&vector(q * 7 + 1), 5)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect()
        })
        .collect()
}

#[test]
fn a_snapshot_file_imported_into_another_database_answers_the_same_queries() {
    let dir = tempfile::tempdir().unwrap();
    let a = Database::open(dir.path().join("a"), options()).unwrap();
    fill(&a, "docs", 0..600);
    // A checkpoint before the export's own: the exported generation then carries files
    // an older generation wrote, without that generation's manifest.
    a.collection("docs").unwrap().checkpoint().unwrap();
    a.collection("docs").unwrap().delete(5).unwrap();
    let archive = dir.path().join("docs.vsnap");
    let summary = a
        .export_snapshot("docs", &archive, vellum::Compression::None)
        .unwrap();
    assert!(
        summary.archive_bytes > 64 << 10,
        "more than 64 KiB (regression R11, docs/PROPERTIES.md)"
    );
    // Writes after the export are not in the snapshot.
    fill(&a, "docs", 600..610);
    let b = Database::open(dir.path().join("b"), options()).unwrap();
    let copy = b.import_snapshot(&[archive], "docs-copy").unwrap();
    assert_eq!(copy.len(), 599);
    // Carried files are the imported generation's own, not traces of a missing one.
    let report = copy.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(
        copy.get(7).unwrap().unwrap().payload.as_deref(),
        Some(&b"p7"[..])
    );
    assert!(copy.get(5).unwrap().is_none());
    assert!(copy.get(605).unwrap().is_none());
    let a_original = {
        let c = a.collection("docs").unwrap();
        for i in 600..610 {
            c.delete(i).unwrap();
        }
        answers(&a, "docs")
    };
    assert_eq!(answers(&b, "docs-copy"), a_original);
    // The copy keeps working and survives a reopen: its log continues after the snapshot.
    copy.upsert(Point::new(9999, vector(9999))).unwrap();
    drop((copy, b));
    let b = Database::open(dir.path().join("b"), options()).unwrap();
    let copy = b.collection("docs-copy").unwrap();
    assert_eq!(copy.len(), 600);
    assert!(copy.verify().unwrap().is_ok());
}

#[test]
fn a_chunk_stream_received_out_of_order_restores_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    let a = Database::open(dir.path().join("a"), options()).unwrap();
    fill(&a, "c", 0..300);
    let mut chunks = Vec::new();
    a.export_snapshot_chunks("c", 16 << 10, &mut |chunk| {
        chunks.push(chunk);
        Ok(())
    })
    .unwrap();
    assert!(chunks.len() > 3, "several chunks: {}", chunks.len());
    chunks.reverse();
    let fs = RealFs::shared();
    let staging = dir.path().join("incoming");
    let mut receiver = ChunkReceiver::open(fs, &staging, Default::default()).unwrap();
    for chunk in &chunks {
        receiver.receive(chunk).unwrap();
    }
    let archive = dir.path().join("received.vsnap");
    receiver.finish(&archive).unwrap();
    let b = Database::open(dir.path().join("b"), options()).unwrap();
    b.import_snapshot(&[archive], "c").unwrap();
    assert_eq!(answers(&b, "c"), answers(&a, "c"));
}

#[test]
fn an_incremental_chain_of_depth_three_restores_and_retention_keeps_parents() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options()).unwrap();
    fill(&db, "c", 0..200);
    let full = db.create_snapshot("c", vellum::SnapshotKind::Full).unwrap();
    fill(&db, "c", 200..250);
    let inc1 = db
        .create_snapshot("c", vellum::SnapshotKind::Incremental)
        .unwrap();
    db.collection("c").unwrap().delete(3).unwrap();
    fill(&db, "c", 250..260);
    let inc2 = db
        .create_snapshot("c", vellum::SnapshotKind::Incremental)
        .unwrap();
    fill(&db, "c", 260..270);
    let inc3 = db
        .create_snapshot("c", vellum::SnapshotKind::Incremental)
        .unwrap();
    assert_eq!(inc3.parent, Some(inc2.id));
    assert_eq!(inc1.parent, Some(full.id));
    let list = db.list_snapshots("c").unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[0].id, inc3.id, "newest first");
    let restored = db
        .restore_snapshot("c", &inc2.id.to_hex(), "at-inc2")
        .unwrap();
    assert_eq!(restored.len(), 259);
    assert!(restored.get(3).unwrap().is_none());
    assert!(restored.get(265).unwrap().is_none());
    // Keep one: its whole parent chain stays.
    let removed = db.retain_snapshots("c", 1).unwrap();
    assert!(
        removed.is_empty(),
        "parents of the kept snapshot are kept: {removed:?}"
    );
    let again = db
        .restore_snapshot("c", &inc3.id.to_hex(), "at-inc3")
        .unwrap();
    assert_eq!(again.len(), 269);
}

#[test]
fn a_damaged_or_foreign_archive_is_a_typed_error_and_nothing_appears() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), options()).unwrap();
    fill(&db, "c", 0..100);
    let archive = dir.path().join("c.vsnap");
    db.export_snapshot("c", &archive, vellum::Compression::Zstd)
        .unwrap();
    let bytes = std::fs::read(&archive).unwrap();
    let truncated = dir.path().join("t.vsnap");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = db.import_snapshot(&[truncated], "t").unwrap_err();
    assert!(matches!(e, Error::Snapshot(_)), "{e}");
    // An archive of plain files (not a collection) is refused too: by name if it holds a
    // file a collection never has, and for the missing description otherwise.
    let fs = RealFs::new();
    let foreign = |name: &str| {
        let plain = dir.path().join("plain").join(name.replace('/', "_"));
        std::fs::create_dir_all(plain.join(name).parent().unwrap()).unwrap();
        std::fs::write(plain.join(name), vec![1u8; 1000]).unwrap();
        let files = vellum_snapshot_format::list_generation(&fs, &plain).unwrap();
        let archive = plain.with_extension("vsnap");
        vellum_snapshot_format::export_to_file(
            &fs,
            &files,
            &vellum_snapshot_format::ExportOptions::full(
                vellum_snapshot_format::SnapshotId::from_seed(1),
                1,
            ),
            &archive,
        )
        .unwrap();
        archive
    };
    let e = db.import_snapshot(&[foreign("x")], "f").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Snapshot(vellum_snapshot_format::Error::RefusedName { .. })
        ),
        "{e}"
    );
    let e = db
        .import_snapshot(&[foreign("vectors/segment-00000000.vec")], "f")
        .unwrap_err();
    assert!(matches!(e, Error::SnapshotMismatch { .. }), "{e}");
    let names: Vec<String> = db.list_collections().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["c".to_owned()]);
    drop(db);
    let db = Database::open(dir.path().join("db"), options()).unwrap();
    assert_eq!(db.list_collections().len(), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("db/collections"))
            .unwrap()
            .count(),
        1,
        "no leftovers"
    );
}

#[test]
fn a_crash_at_any_step_of_an_import_leaves_the_old_state_or_the_whole_new_collection() {
    // Build the archive once on a simulated disk, then crash an import at every step.
    let src = SimFs::new();
    {
        let db = Database::open_with_fs(src.shared(), "/src", options()).unwrap();
        fill(&db, "c", 0..40);
        db.export_snapshot("c", "/src.vsnap", vellum::Compression::None)
            .unwrap();
    }
    let archive = src.read_file(Path::new("/src.vsnap")).unwrap();
    let report = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 4,
        points: CrashPoints::AroundSyncs,
        seed: 11,
    }
    .run(
        |fs| {
            let f = fs.create(Path::new("/in.vsnap")).and_then(|f| {
                f.write_at(&archive, 0)?;
                f.sync_data()?;
                fs.sync_dir(Path::new("/"))
            });
            if f.is_err() {
                return (false, false);
            }
            let Ok(db) = Database::open_with_fs(fs.shared(), "/db", options()) else {
                return (false, false);
            };
            let Ok(c) = db.create_collection("keep", config()) else {
                return (false, false);
            };
            if c.upsert(Point::new(1, vector(1))).is_err() {
                return (false, false);
            }
            (
                true,
                db.import_snapshot(&[PathBuf::from("/in.vsnap")], "copy")
                    .is_ok(),
            )
        },
        |image, &(setup, imported)| {
            let db =
                Database::open_with_fs(image.shared(), "/db", options()).map_err(|e| e.to_string());
            let db = match db {
                Ok(db) => db,
                Err(e) if !setup => return if e.contains("power") { Err(e) } else { Ok(()) },
                Err(e) => return Err(e),
            };
            if setup && db.collection("keep").map(|c| c.len()).unwrap_or(0) != 1 {
                return Err("the existing collection changed".into());
            }
            match db.collection("copy") {
                Ok(c) => {
                    let report = c.verify().map_err(|e| e.to_string())?;
                    if c.len() == 40 && report.is_ok() {
                        Ok(())
                    } else {
                        Err(format!(
                            "a partial import is visible: {} points, {:?}",
                            c.len(),
                            report.problems
                        ))
                    }
                }
                Err(_) if !imported => Ok(()),
                Err(_) => Err("an acknowledged import vanished".into()),
            }
        },
    );
    println!("snapshot import: {report}");
    assert!(report.images > 50);
}
