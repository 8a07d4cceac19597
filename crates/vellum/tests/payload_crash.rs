//! Crash sweep of the payload store and a payload index: writes, removals and checkpoints
//! whose runs are compacted both ways (mostly-garbage runs copied forward, and the smallest merged when
//! there are more than 16), with the power cut around every sync. After every crash image:
//! every acknowledged payload reads back bit-exact (plus, at most, the batch in flight),
//! `verify` finds nothing (it compares the index file with the payloads), the index counts
//! what the payloads hold, and a second recovery sees the same.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use vellum::fs::{CrashHarness, CrashModel, CrashPoints, CrashReport, SimFs};
use vellum::{
    CollectionConfig, Condition, Database, DatabaseOptions, Filter, Metric, PayloadIndexKind,
    Point, WriteBatch,
};

const DIM: usize = 2;

type Model = BTreeMap<u64, Option<Vec<u8>>>;

#[derive(Debug, Clone)]
enum Op {
    /// Upsert these ids with a payload of this version (or none).
    Write(Vec<u64>, Option<u64>),
    Delete(u64),
    Checkpoint,
}

fn payload(id: u64, version: u64) -> Vec<u8> {
    let pad = "x".repeat((id % 7) as usize * 9);
    format!("{{\"id\":{id},\"v\":{version},\"pad\":\"{pad}\"}}").into_bytes()
}

/// Eighteen checkpoints of new ids (no run becomes garbage, so the run count passes 16 and
/// the smallest are merged), then rounds that overwrite and remove old ids (so runs become
/// mostly garbage and are copied forward).
fn history() -> Vec<Op> {
    let mut ops = Vec::new();
    for round in 0..18u64 {
        ops.push(Op::Write((round * 4..round * 4 + 4).collect(), Some(round)));
        ops.push(Op::Checkpoint);
    }
    // Single changes: few enough for the index to write deltas beside its whole file.
    for round in 26..32u64 {
        ops.push(Op::Write(vec![round * 2], Some(round)));
        ops.push(Op::Checkpoint);
    }
    for round in 18..26u64 {
        let start = (round * 11) % 72;
        ops.push(Op::Write(
            (start..start + 9).map(|i| i % 72).collect(),
            Some(round),
        ));
        ops.push(Op::Write(vec![(start + 20) % 72], None));
        ops.push(Op::Delete((start + 30) % 72));
        ops.push(Op::Checkpoint);
    }
    ops
}

fn options() -> DatabaseOptions {
    common::options(16 << 10, 64)
        .with_retained_checkpoints(2)
        .with_max_payload_runs(16)
}

fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Write(ids, version) => {
            for &id in ids {
                model.insert(id, version.map(|v| payload(id, v)));
            }
        }
        Op::Delete(id) => {
            model.remove(id);
        }
        Op::Checkpoint => {}
    }
}

#[derive(Debug, Default)]
struct Outcome {
    created: bool,
    /// Set once the payload index was durably created.
    indexed: bool,
    acked: Model,
    in_flight: Option<Op>,
    /// Most payload runs a generation held, and whether the count ever fell.
    most_runs: u64,
    runs_fell: bool,
}

fn scenario(fs: &SimFs) -> Outcome {
    let mut out = Outcome::default();
    let Ok(db) = Database::open_with_fs(fs.shared(), "/db", options()) else {
        return out;
    };
    let Ok(c) = db.create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat()) else {
        return out;
    };
    // An index on the version: every crash image must answer from it as the payloads do.
    if c.create_payload_index("v", PayloadIndexKind::Integer)
        .is_err()
    {
        return out;
    }
    out.created = true;
    let mut last_runs = 0;
    for op in history() {
        let result = match &op {
            Op::Write(ids, version) => {
                let mut batch = WriteBatch::new();
                for &id in ids {
                    let p = Point::new(id, common::vector(id, DIM));
                    batch.upsert(match version {
                        Some(v) => p.with_payload(payload(id, *v)),
                        None => p,
                    });
                }
                c.write(batch).map(drop)
            }
            Op::Delete(id) => c.delete(*id).map(drop),
            Op::Checkpoint => c.checkpoint().map(drop),
        };
        if result.is_err() {
            out.in_flight = Some(op);
            return out;
        }
        apply(&mut out.acked, &op);
        let runs = c.stats().payload_runs;
        out.most_runs = out.most_runs.max(runs);
        out.runs_fell |= runs < last_runs;
        last_runs = runs;
    }
    out
}

fn read_state(fs: &SimFs, indexed: bool) -> Result<Option<Model>, String> {
    let db = Database::open_with_fs(fs.shared(), "/db", options())
        .map_err(|e| format!("reopen: {e}"))?;
    let Ok(c) = db.collection("c") else {
        return Ok(None);
    };
    let mut model = Model::new();
    for id in c.ids() {
        let p = c
            .get(id)
            .map_err(|e| format!("get {id}: {e}"))?
            .ok_or("listed id has no point")?;
        model.insert(id, p.payload);
    }
    let report = c.verify().map_err(|e| e.to_string())?;
    if !report.is_ok() {
        return Err(format!("verify after recovery: {:?}", report.problems));
    }
    if c.stats().payloads != model.values().filter(|p| p.is_some()).count() as u64 {
        return Err("the payload count disagrees with the payloads read".into());
    }
    // The index answers as the payloads do (verify above compared its file with them).
    // Created once acknowledged; maybe (all or nothing) when the crash cut its creation.
    let indexes = c.payload_indexes().len();
    if indexes > 1 || (indexed && indexes == 0) {
        return Err(format!("{indexes} payload indexes after recovery"));
    }
    for v in 0..32 {
        let filter = Filter::default().must(Condition::matches("v", v));
        let want = model
            .iter()
            .filter(|(id, p)| filter.matches(**id, p.as_deref()))
            .count() as u64;
        let got = c.count(Some(&filter)).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!(
                "the index counts {got} points with v = {v}, the payloads {want}"
            ));
        }
    }
    Ok(Some(model))
}

fn check(image: &SimFs, out: &Outcome) -> Result<(), String> {
    let Some(state) = read_state(image, out.indexed)? else {
        return if out.created {
            Err("the acknowledged collection vanished".into())
        } else {
            Ok(())
        };
    };
    let mut with_in_flight = out.acked.clone();
    if let Some(op) = &out.in_flight {
        apply(&mut with_in_flight, op);
    }
    if state != out.acked && state != with_in_flight {
        let differ: Vec<u64> = out
            .acked
            .keys()
            .chain(state.keys())
            .filter(|id| state.get(id) != out.acked.get(id))
            .copied()
            .collect();
        return Err(format!(
            "recovered payloads differ from the acknowledged ones at ids {differ:?} (and the \
             batch in flight does not explain it)"
        ));
    }
    let again = read_state(image, out.indexed)?.ok_or("collection vanished on the second open")?;
    if again != state {
        return Err("a second recovery gave a different state".into());
    }
    Ok(())
}

#[test]
fn the_history_compacts_runs_both_ways() {
    let out = scenario(&SimFs::new());
    assert!(out.in_flight.is_none());
    assert_eq!(out.most_runs, 16, "the run count reached its bound");
    assert!(out.runs_fell, "a compaction lowered the run count");
}

#[test]
fn every_acknowledged_payload_survives_a_crash_around_any_sync_of_writes_and_compactions() {
    let mut total = CrashReport::default();
    total.add(
        CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 4,
            points: CrashPoints::AroundSyncs,
            seed: 15,
        }
        .run(scenario, check),
    );
    println!("payload store crash sweep: {total}");
    assert!(total.images > 500, "{total}");
    let _ = Path::new("/db");
}
