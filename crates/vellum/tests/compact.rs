//! Compaction (issue 14, item 3): after deletes, `Collection::compact` gives the space back
//! (emptied vector segments removed), every point reads and searches as before, the graph
//! and the pending tail still hold every live slot exactly once, and a crash at any moment
//! of it recovers every acknowledged point.

mod common;

use std::collections::BTreeSet;

use vellum::fs::{CrashHarness, CrashModel, CrashPoints, DynFs, SimFs};
use vellum::{CollectionConfig, Database, DatabaseOptions, HnswParams, Metric, Point, WriteBatch};

const DIM: usize = 8;

fn options() -> DatabaseOptions {
    // 64 slots per segment: 300 points fill five.
    common::options(16 << 10, 64)
}

fn config(hnsw: bool) -> CollectionConfig {
    let c = CollectionConfig::new(DIM, Metric::L2);
    if hnsw {
        c.hnsw(HnswParams {
            m: 8,
            ef_construction: 32,
            ef_search: 32,
            seed: 5,
        })
    } else {
        c.flat()
    }
}

/// A vector no other id has (the first component is the id).
fn vector(id: u64) -> Vec<f32> {
    let mut v = common::vector(id, DIM);
    v[0] = id as f32;
    v
}

fn point(id: u64) -> Point {
    Point::new(id, vector(id)).with_payload(id.to_le_bytes().to_vec())
}

/// Ids deleted by the scenario: nine in ten.
fn doomed(id: u64) -> bool {
    !id.is_multiple_of(10)
}

/// Every live id reads back with its vector and payload, and is its own nearest neighbour.
fn check_points(c: &vellum::Collection, live: &BTreeSet<u64>) -> Result<(), String> {
    let ids: BTreeSet<u64> = c.ids().into_iter().collect();
    if &ids != live {
        return Err(format!("{} ids, expected {}", ids.len(), live.len()));
    }
    for &id in live {
        let p = c
            .get(id)
            .map_err(|e| e.to_string())?
            .ok_or("a live id is missing")?;
        if p.vector != vector(id) || p.payload != Some(id.to_le_bytes().to_vec()) {
            return Err(format!("id {id} reads back changed"));
        }
        let hit = c.search(&p.vector, 1).map_err(|e| e.to_string())?;
        if hit.first().map(|h| h.id) != Some(id) {
            return Err(format!("a search for {id} found {hit:?}"));
        }
    }
    Ok(())
}

fn compaction_gives_the_space_back_and_every_point_stays(fs: DynFs, root: &std::path::Path) {
    for hnsw in [false, true] {
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        let name = if hnsw { "hnsw" } else { "flat" };
        let c = db.create_collection(name, config(hnsw)).unwrap();
        for start in (0..300).step_by(50) {
            c.upsert_batch((start..start + 50).map(point)).unwrap();
        }
        for id in (0..300).filter(|&id| doomed(id)) {
            c.delete(id).unwrap();
        }
        let before = c.stats().vector_segment_bytes;
        let report = c.compact().unwrap();
        let live: BTreeSet<u64> = (0..300).filter(|&id| !doomed(id)).collect();
        assert_eq!(report.segments_before, 5, "{name}");
        assert_eq!(report.segments_after, 1, "{name}: {report:?}");
        assert!(report.moved > 0 && report.moved <= 30, "{name}: {report:?}");
        assert!(c.stats().vector_segment_bytes < before, "{name}");
        check_points(&c, &live).unwrap_or_else(|e| panic!("{name}: {e}"));
        common::graph_and_tail_agree(&c).unwrap_or_else(|e| panic!("{name}: {e}"));
        drop((c, db));
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        let c = db.collection(name).unwrap();
        check_points(&c, &live).unwrap_or_else(|e| panic!("{name} reopened: {e}"));
        common::graph_and_tail_agree(&c).unwrap_or_else(|e| panic!("{name} reopened: {e}"));
    }
}

on_both_file_systems!(compaction_gives_the_space_back_and_every_point_stays);

#[test]
fn maintenance_compacts_past_the_threshold_once_and_never_below_it() {
    let fs = SimFs::new();
    let root = std::path::Path::new("/db");
    let db = Database::open_with_fs(fs.shared(), root, options()).unwrap();
    let c = db.create_collection("c", config(false)).unwrap();
    for start in (0..300).step_by(50) {
        c.upsert_batch((start..start + 50).map(point)).unwrap();
    }
    // 70% live of five segments' slots (210 of 320): above the default 0.5.
    for id in (0..300).filter(|id| (1..=3).contains(&(id % 10))) {
        c.delete(id).unwrap();
    }
    assert_eq!(db.maintain().unwrap().compactions, 0);
    // 30 of 320 slots live: compacted, once.
    for id in (0..300).filter(|&id| doomed(id)) {
        c.delete(id).unwrap();
    }
    let report = db.maintain().unwrap();
    assert_eq!(
        (report.compactions, report.segments_removed),
        (1, 4),
        "{report:?}"
    );
    assert_eq!(db.maintain().unwrap().compactions, 0);
    let live: BTreeSet<u64> = (0..300).filter(|&id| !doomed(id)).collect();
    check_points(&c, &live).unwrap();
    drop((c, db));

    // Turned off: the same deletes leave the segments alone.
    let off = options().with_auto_compaction(None);
    let db = Database::open_with_fs(fs.shared(), root, off).unwrap();
    let c = db.create_collection("d", config(false)).unwrap();
    for start in (0..300).step_by(50) {
        c.upsert_batch((start..start + 50).map(point)).unwrap();
    }
    for id in (0..300).filter(|&id| doomed(id)) {
        c.delete(id).unwrap();
    }
    assert_eq!(db.maintain().unwrap().compactions, 0);
    assert_eq!(c.compact().unwrap().segments_after, 1);
    drop((c, db));
    let err = Database::open_with_fs(fs.shared(), root, options().with_auto_compaction(Some(1.0)))
        .unwrap_err();
    assert!(err.to_string().contains("fraction"), "{err}");
}

/// What the scenario had acknowledged when it stopped, and the state its one failed write
/// may also have reached.
#[derive(Debug, Default)]
struct Acked {
    live: BTreeSet<u64>,
    maybe: Option<BTreeSet<u64>>,
}

fn scenario(fs: &SimFs) -> Acked {
    let mut acked = Acked::default();
    let Ok(db) = Database::open_with_fs(fs.shared(), "/db", options()) else {
        return acked;
    };
    let Ok(c) = db.create_collection("c", config(true)) else {
        return acked;
    };
    let ids: Vec<u64> = (0..300).collect();
    for chunk in ids.chunks(50) {
        let mut next = acked.live.clone();
        next.extend(chunk);
        if c.upsert_batch(chunk.iter().map(|&id| point(id))).is_err() {
            acked.maybe = Some(next);
            return acked;
        }
        acked.live = next;
    }
    let mut batch = WriteBatch::new();
    for id in (0..300).filter(|&id| doomed(id)) {
        batch.delete(id);
    }
    let after: BTreeSet<u64> = acked
        .live
        .iter()
        .copied()
        .filter(|&id| !doomed(id))
        .collect();
    if c.write(batch).is_err() {
        acked.maybe = Some(after);
        return acked;
    }
    acked.live = after;
    // Compaction changes no point: whatever it reached, the same points are acknowledged.
    let _ = c.compact();
    acked
}

fn check(image: &SimFs, acked: &Acked) -> Result<(), String> {
    let db = Database::open_with_fs(image.shared(), "/db", options()).map_err(|e| e.to_string())?;
    let c = match db.collection("c") {
        Ok(c) => c,
        Err(_) if acked.live.is_empty() => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let result = check_points(&c, &acked.live);
    match (&result, &acked.maybe) {
        (Err(_), Some(maybe)) => check_points(&c, maybe)?,
        _ => result?,
    }
    common::graph_and_tail_agree(&c)
}

#[test]
fn a_crash_anywhere_in_a_compaction_recovers_every_acknowledged_point() {
    let report = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 3,
        points: CrashPoints::AroundSyncs,
        seed: 0xC0C0,
    }
    .run(scenario, check);
    println!("compaction crash sweep: {report}");
    assert!(report.images > 100, "{report}");
}
