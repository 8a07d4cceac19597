//! Several writer threads, background checkpoints, and a power cut (property P19 at the
//! facade): every batch a writer saw acknowledged is recovered whole; every recovered batch
//! was written by someone (acknowledged or in flight); no batch is ever partly there.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use vellum::fs::{CrashHarness, CrashModel, CrashPoints, CrashReport, SimFs};
use vellum::{CollectionConfig, Database, DatabaseOptions, HnswParams, Metric, Point};

const WRITERS: u64 = 3;
const BATCHES: u64 = 12;

fn options() -> DatabaseOptions {
    DatabaseOptions::default()
        .with_checkpoint_after_ops(10)
        .with_checkpoint_poll_interval(Duration::from_millis(1))
        .with_wal_segment_size_bytes(16 << 10)
        .with_slots_per_segment(16)
}

/// Batch `b` of writer `w` upserts ids `w*1000 + b*10 + {0,1,2}`, each with a vector that
/// names the batch: a recovered batch is all three ids or none.
fn batch(w: u64, b: u64) -> Vec<Point> {
    (0..3)
        .map(|j| {
            let id = w * 1000 + b * 10 + j;
            Point::new(id, vec![w as f32, b as f32, j as f32, 1.0])
        })
        .collect()
}

#[derive(Debug, Default)]
struct Outcome {
    acked: BTreeSet<(u64, u64)>,
    attempted: BTreeSet<(u64, u64)>,
}

fn scenario(fs: &SimFs) -> Outcome {
    let out = Mutex::new(Outcome::default());
    let Ok(db) = Database::open_with_fs(fs.shared(), "/db", options()) else {
        return Outcome::default();
    };
    let Ok(c) = db.create_collection(
        "c",
        CollectionConfig::new(4, Metric::L2).hnsw(HnswParams {
            m: 4,
            ef_construction: 16,
            ef_search: 16,
            seed: 1,
        }),
    ) else {
        return Outcome::default();
    };
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (c, out) = (c.clone(), &out);
            s.spawn(move || {
                for b in 0..BATCHES {
                    out.lock().unwrap().attempted.insert((w, b));
                    if c.upsert_batch(batch(w, b)).is_err() {
                        return;
                    }
                    out.lock().unwrap().acked.insert((w, b));
                    if b % 4 == 3 {
                        // Give the background checkpointer a chance to run mid-stream.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            });
        }
    });
    // Let the background checkpointer catch up (bounded), so every run checkpoints.
    for _ in 0..500 {
        if c.stats().generation >= 1 || fs.is_powered_off() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    out.into_inner().unwrap()
}

fn check(image: &SimFs, out: &Outcome) -> Result<(), String> {
    let db = Database::open_with_fs(
        image.shared(),
        "/db",
        options().with_background_checkpoints(false),
    )
    .map_err(|e| format!("reopen: {e}"))?;
    let Ok(c) = db.collection("c") else {
        return if out.acked.is_empty() {
            Ok(())
        } else {
            Err("collection vanished".into())
        };
    };
    let mut per_batch: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for id in c.ids() {
        let p = c
            .get(id)
            .map_err(|e| e.to_string())?
            .ok_or("listed id missing")?;
        let (w, b) = (p.vector[0] as u64, p.vector[1] as u64);
        if batch(w, b).iter().all(|q| q.id != id) {
            return Err(format!("id {id} holds a vector of batch ({w},{b})"));
        }
        *per_batch.entry((w, b)).or_default() += 1;
    }
    for (key, n) in &per_batch {
        if *n != 3 {
            return Err(format!("batch {key:?} is torn: {n} of 3 points"));
        }
        if !out.attempted.contains(key) {
            return Err(format!("batch {key:?} was never written"));
        }
    }
    for key in &out.acked {
        if !per_batch.contains_key(key) {
            return Err(format!("acknowledged batch {key:?} lost"));
        }
    }
    common::graph_and_tail_agree(&c)?;
    Ok(())
}

#[test]
fn concurrent_writers_with_background_checkpoints_never_lose_or_tear_a_batch() {
    // The scenario really checkpoints in the background while writers run.
    let clean = SimFs::new();
    let out = scenario(&clean);
    assert_eq!(out.acked.len() as u64, WRITERS * BATCHES);
    let db = Database::open_with_fs(
        clean.shared(),
        "/db",
        options().with_background_checkpoints(false),
    )
    .unwrap();
    let generation = db.collection("c").unwrap().stats().generation;
    assert!(
        generation >= 1,
        "no background checkpoint ran during the scenario"
    );
    drop(db);
    let mut total = CrashReport::default();
    for seed in 0..3u64 {
        total.add(
            CrashHarness {
                model: CrashModel::torn_512(),
                images_per_point: 8,
                points: CrashPoints::Sample(40),
                seed,
            }
            .run(scenario, check),
        );
    }
    println!("concurrent facade writers: {total}");
    assert!(total.images > 200);
}
