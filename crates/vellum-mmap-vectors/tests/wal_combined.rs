//! Store + checkpoint + WAL together, the way the facade uses them: every upsert/delete is
//! appended to the WAL (synced: acknowledged) and then applied to the store; a checkpoint
//! flushes the store, publishes a generation covering the last LSN, then truncates the WAL
//! below the oldest retained generation's LSN. A crash anywhere (mid-append, mid-checkpoint,
//! mid-truncation, any subset of dirty map pages written back, torn sectors) must reopen as
//! checkpoint + WAL replay = the acknowledged state (plus possibly the one in-flight record),
//! from the current generation *and* from the older retained one (regression R4, docs/PROPERTIES.md), and a
//! replay applied twice gives the same state (idempotent).

mod common;

use std::path::Path;

use common::*;
use proptest::prelude::*;
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, CrashReport, SimFs, WriteSurvival};
use vellum_mmap_vectors::{StoreCheckpoint, VectorStore};
use vellum_wal::{Wal, WalOptions};

const WAL_DIR: &str = "/db/wal";

#[derive(Debug, Clone, Copy)]
enum Op {
    Upsert(u64, u64),
    Delete(u64),
    Checkpoint,
}

fn encode(op: Op) -> Vec<u8> {
    match op {
        Op::Upsert(id, version) => {
            let mut out = vec![1u8];
            out.extend_from_slice(&id.to_le_bytes());
            for x in vector(id, version) {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out
        }
        Op::Delete(id) => {
            let mut out = vec![2u8];
            out.extend_from_slice(&id.to_le_bytes());
            out
        }
        Op::Checkpoint => unreachable!("checkpoints are not logged"),
    }
}

/// Applies a WAL record to the store (and to a model).
fn apply(store: &mut VectorStore, model: &mut Model, record: &[u8]) -> Result<(), String> {
    let id = u64::from_le_bytes(record[1..9].try_into().map_err(|_| "short record")?);
    match record[0] {
        1 => {
            let v: Vec<f32> = record[9..]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            store.upsert(id, &v).map_err(|e| e.to_string())?;
            model.insert(id, v);
        }
        2 => {
            store.delete(id).map_err(|e| e.to_string())?;
            model.remove(&id);
        }
        k => return Err(format!("unknown record kind {k}")),
    }
    Ok(())
}

fn wal_options() -> WalOptions {
    WalOptions {
        segment_size_bytes: 1024,
        max_record_bytes: 256,
        ..WalOptions::default()
    }
}

/// Recovery as the facade does it: checkpoint (current, or an older retained generation),
/// then the WAL from the record after the generation's LSN. Returns the store and the
/// replayed model. With `twice`, the replay is applied a second time (idempotence).
fn recover(
    fs: &SimFs,
    generation: Option<u64>,
    twice: bool,
) -> Result<(VectorStore, Model, Wal, vellum_checkpoint::Checkpointer), String> {
    let (cp, loaded) =
        vellum_checkpoint::Checkpointer::open(fs.shared(), Path::new(CK_DIR), ck_config())
            .map_err(|e| format!("checkpoint open: {e}"))?;
    let loaded = match generation {
        Some(g) => Some(
            cp.load_generation(g)
                .map_err(|e| format!("load {g}: {e}"))?,
        ),
        None => loaded,
    };
    let mut store = VectorStore::open(
        fs.shared(),
        Path::new(STORE_DIR),
        store_config(),
        loaded.as_ref().map(|l| StoreCheckpoint {
            loaded: l,
            file_prefix: "",
            oldest_retained_generation: cp.oldest_retained_generation().unwrap_or(1),
        }),
    )
    .map_err(|e| format!("store open: {e}"))?;
    let mut model: Model = store
        .iter()
        .map(|r| r.map(|(id, v)| (id, v.to_vec())))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("checkpointed vector: {e}"))?;
    let (wal, _) =
        Wal::open(fs.shared(), WAL_DIR, wal_options()).map_err(|e| format!("wal open: {e}"))?;
    let from = loaded
        .as_ref()
        .map_or(wal.stats().first_lsn, |l| l.wal_lsn() + 1);
    for pass in 0..if twice { 2 } else { 1 } {
        let iter = wal
            .iter_from(from)
            .map_err(|e| format!("WAL from {from} (pass {pass}): {e}"))?;
        for record in iter {
            let record = record.map_err(|e| format!("WAL read: {e}"))?;
            apply(&mut store, &mut model, &record.data)?;
        }
    }
    Ok((store, model, wal, cp))
}

#[derive(Debug, Default)]
struct Outcome {
    acked: Model,
    /// The state if the record in flight when the power went out survived.
    with_inflight: Option<Model>,
}

fn run(fs: &SimFs, ops: &[Op]) -> Outcome {
    let mut out = Outcome::default();
    let Ok((mut store, mut model, wal, mut cp)) = recover(fs, None, false) else {
        return out;
    };
    for &op in ops {
        match op {
            Op::Checkpoint => {
                let lsn = wal.stats().last_lsn;
                let Ok(info) = store.checkpoint(&mut cp, lsn, b"") else {
                    return out;
                };
                // The WAL keeps every record the oldest retained generation needs.
                if wal
                    .truncate_before(info.oldest_retained_wal_lsn + 1)
                    .is_err()
                {
                    return out;
                }
            }
            _ => {
                let record = encode(op);
                let mut next = model.clone();
                apply_model(&mut next, &record);
                out.with_inflight = Some(next);
                if wal.append(&record).is_err() {
                    return out;
                }
                if apply(&mut store, &mut model, &record).is_err() {
                    // Acknowledged by the WAL even though the store stopped.
                    out.acked = out.with_inflight.take().unwrap_or_default();
                    return out;
                }
                out.acked = model.clone();
                out.with_inflight = None;
            }
        }
    }
    out
}

fn apply_model(model: &mut Model, record: &[u8]) {
    let id = u64::from_le_bytes(record[1..9].try_into().expect("8 bytes"));
    if record[0] == 1 {
        let v = record[9..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        model.insert(id, v);
    } else {
        model.remove(&id);
    }
}

fn matches(out: &Outcome, got: &Model) -> bool {
    *got == out.acked || out.with_inflight.as_ref() == Some(got)
}

fn check(image: &SimFs, out: &Outcome) -> Result<(), String> {
    // From the older retained generation, on a copy: its LSN plus the retained WAL must
    // reach the same state.
    let copy = image.crash_drop_unsynced();
    let (cp, _) =
        vellum_checkpoint::Checkpointer::open(copy.shared(), Path::new(CK_DIR), ck_config())
            .map_err(|e| e.to_string())?;
    let retained = cp.retained_generations();
    drop(cp);
    let mut from_oldest = None;
    if retained.len() >= 2 {
        let (_, model, _, _) = recover(&copy, Some(retained[0]), false)
            .map_err(|e| format!("from retained generation {}: {e}", retained[0]))?;
        if !matches(out, &model) {
            return Err(format!(
                "from retained generation {}: {} vectors, acknowledged {}",
                retained[0],
                model.len(),
                out.acked.len()
            ));
        }
        from_oldest = Some(model);
    }
    let (store, model, _, _) = recover(image, None, true)?;
    if !matches(out, &model) {
        return Err(format!(
            "recovered {} vectors {:?}, acknowledged {} {:?}",
            model.len(),
            model.keys().collect::<Vec<_>>(),
            out.acked.len(),
            out.acked.keys().collect::<Vec<_>>()
        ));
    }
    if from_oldest.is_some_and(|m| m != model) {
        return Err("the older generation replays to a different state".into());
    }
    same_as(&store, &model)?;
    drop(store);
    // Recovery again (after a clean crash) gives the same state.
    let again = image.crash_drop_unsynced();
    let (_, model2, _, _) = recover(&again, None, false)?;
    if model2 != model {
        return Err("a second recovery differs from the first".into());
    }
    Ok(())
}

/// Three rounds of: fill, checkpoint, update/delete, checkpoint, delete more (slots freed,
/// then reused), checkpoint, and writes after the last checkpoint that only the WAL holds.
fn standard_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for round in 0..3u64 {
        let b = round * 20;
        for id in b..b + 6 {
            ops.push(Op::Upsert(id, 1));
        }
        ops.push(Op::Checkpoint);
        ops.extend([
            Op::Upsert(b, 2),
            Op::Delete(b + 1),
            Op::Upsert(b + 7, 1),
            Op::Upsert(b + 8, 1),
        ]);
        ops.push(Op::Checkpoint);
        ops.extend([
            Op::Delete(b),
            Op::Delete(b + 7),
            Op::Upsert(b + 2, 5),
            Op::Upsert(b + 9, 1),
        ]);
        ops.push(Op::Checkpoint);
        ops.extend([
            Op::Upsert(b + 10, 1),
            Op::Delete(b + 2),
            Op::Upsert(b + 3, 3),
        ]);
    }
    ops
}

#[test]
fn store_checkpoint_and_wal_recover_the_acknowledged_state_after_any_crash() {
    let ops = standard_ops();
    let mut total = CrashReport::default();
    for (model, images) in [
        (CrashModel::torn_512(), 32),
        (
            CrashModel {
                writes: WriteSurvival::Prefix,
                ..CrashModel::torn_4k()
            },
            8,
        ),
    ] {
        let report = CrashHarness {
            model,
            images_per_point: images,
            points: CrashPoints::EveryOp,
            seed: 0xC0B1,
        }
        .run(|fs| run(fs, &ops), check);
        println!("store+checkpoint+WAL crash sweep ({model:?}): {report}");
        total.add(report);
    }
    println!(
        "store+checkpoint+WAL crash images checked in all: {}",
        total.images
    );
    assert!(total.images > 5_000);
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..8, 0u64..4).prop_map(|(id, v)| Op::Upsert(id, v)),
        3 => (0u64..8).prop_map(Op::Delete),
        1 => Just(Op::Checkpoint),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn random_operations_with_wal_recover_after_a_crash_anywhere(
        ops in proptest::collection::vec(op_strategy(), 1..30)
    ) {
        let report = CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 16,
            points: CrashPoints::Sample(60),
            seed: 0xAB,
        }
        .run(|fs| run(fs, &ops), check);
        println!("random store+WAL ops ({} ops): {report}", ops.len());
    }
}
