//! Crash tests of the store with its checkpoints: after any crash (at every operation,
//! including mid-checkpoint, with any subset of dirty map pages written back, torn at 512 B
//! or 4 KiB), reopening gives exactly the last acknowledged checkpoint's state (or the
//! in-flight one, whole), every retained older generation still opens intact (slots are
//! reused only when no retained generation references them), and the store keeps working.
//! Checkpoints also run split in three (prepare, writes meanwhile, then flush, commit and
//! publish), as the facade runs them without blocking writers: a slot the prepared
//! checkpoint names must survive deletes and replacements made while it is in flight, and
//! compaction's moves (`relocate`) made while it is in flight.
//! Properties P8, P9, P10, P11, P14 and P15 of docs/PROPERTIES.md.

mod common;

use common::*;
use proptest::prelude::*;
use vellum_checkpoint::Checkpointer;
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, CrashReport, SimFs, WriteSurvival};
use vellum_mmap_vectors::{PreparedCheckpoint, VectorStore};

#[derive(Debug, Clone, Copy)]
enum Op {
    Upsert(u64, u64),
    Delete(u64),
    Checkpoint,
    /// Prepares a checkpoint; the operations up to the next `Finish` (or `Checkpoint`) run
    /// while it is in flight.
    Begin,
    /// Flushes, commits and publishes the checkpoint begun last.
    Finish,
    /// Moves every vector it can down into a free slot (`compaction_moves` + `relocate`):
    /// the model does not change.
    Compact,
}

#[derive(Debug, Default)]
struct Outcome {
    /// `states[g]` = the model committed as generation `g` (`states[0]` is empty).
    states: Vec<Model>,
    /// The model of a checkpoint that was started but not acknowledged.
    inflight: Option<Model>,
    /// Acknowledged checkpoints that wrote a new id map base, and those that carried the
    /// base over with a delta.
    bases_written: usize,
    bases_carried: usize,
}

impl Outcome {
    /// Counts how generation `info` stored its id map.
    fn count_base(&mut self, cp: &Checkpointer, generation: u64) {
        let origin = cp
            .current()
            .and_then(|m| m.file(vellum_mmap_vectors::IDMAP_FILE))
            .expect("every generation holds an id map base")
            .origin_generation;
        if origin == generation {
            self.bases_written += 1;
        } else {
            self.bases_carried += 1;
        }
    }
}

impl Outcome {
    fn state_of(&self, generation: u64) -> Option<&Model> {
        let g = generation as usize;
        if g < self.states.len() {
            Some(&self.states[g])
        } else if g == self.states.len() {
            self.inflight.as_ref()
        } else {
            None
        }
    }
}

fn run(fs: &SimFs, ops: &[Op]) -> Outcome {
    let mut out = Outcome {
        states: vec![Model::new()],
        ..Outcome::default()
    };
    let Ok((mut cp, mut store, _)) = open(fs) else {
        return out;
    };
    let mut model = Model::new();
    // A prepared checkpoint and the LSN it covers.
    let mut begun: Option<(PreparedCheckpoint, u64)> = None;
    let finish = |store: &mut VectorStore,
                  cp: &mut Checkpointer,
                  out: &mut Outcome,
                  prepared: PreparedCheckpoint,
                  lsn: u64|
     -> bool {
        let Ok(flushed) = prepared.flush() else {
            return false;
        };
        let Ok(info) = cp.commit_carrying(lsn, b"", &flushed.files(), &flushed.carried()) else {
            return false;
        };
        if store.publish_checkpoint(flushed, &info).is_err() {
            return false;
        }
        assert_eq!(info.generation as usize, out.states.len());
        out.count_base(cp, info.generation);
        out.states
            .push(out.inflight.take().expect("a begun checkpoint"));
        true
    };
    for (lsn, op) in ops.iter().enumerate() {
        match *op {
            Op::Upsert(id, version) => {
                if store.upsert(id, &vector(id, version)).is_err() {
                    return out;
                }
                model.insert(id, vector(id, version));
            }
            Op::Delete(id) => {
                if store.delete(id).is_err() {
                    return out;
                }
                model.remove(&id);
            }
            Op::Checkpoint => {
                if let Some((prepared, at)) = begun.take()
                    && !finish(&mut store, &mut cp, &mut out, prepared, at)
                {
                    return out;
                }
                out.inflight = Some(model.clone());
                match store.checkpoint(&mut cp, lsn as u64, b"") {
                    Ok(info) => {
                        assert_eq!(info.generation as usize, out.states.len());
                        out.count_base(&cp, info.generation);
                        out.states.push(model.clone());
                        out.inflight = None;
                    }
                    Err(_) => return out,
                }
            }
            Op::Begin => {
                if begun.is_none() {
                    let prepared = store.prepare_checkpoint("").expect("nothing in flight");
                    out.inflight = Some(model.clone());
                    begun = Some((prepared, lsn as u64));
                }
            }
            Op::Finish => {
                if let Some((prepared, at)) = begun.take()
                    && !finish(&mut store, &mut cp, &mut out, prepared, at)
                {
                    return out;
                }
            }
            Op::Compact => {
                for id in store.compaction_moves() {
                    if store.relocate(id).is_err() {
                        return out;
                    }
                }
            }
        }
    }
    if let Some((prepared, at)) = begun.take() {
        finish(&mut store, &mut cp, &mut out, prepared, at);
    }
    out
}

fn check(image: &SimFs, out: &Outcome) -> Result<(), String> {
    let acked = out.states.len() as u64 - 1;
    // Older retained generation first, on a copy (opening a store removes segment files the
    // generation it opens does not need).
    let probe = image.crash_drop_unsynced();
    let (cp, store, loaded) = open(&probe)?;
    let generation = loaded.as_ref().map_or(0, |l| l.generation());
    drop((cp, store));
    if generation != acked && generation != acked + 1 {
        return Err(format!(
            "opened generation {generation}, acknowledged {acked}"
        ));
    }
    let want = out
        .state_of(generation)
        .ok_or_else(|| format!("generation {generation} was never started"))?;
    if generation >= 2 {
        let older = open_generation(&probe, generation - 1)?;
        same_as(&older, out.state_of(generation - 1).expect("older state"))
            .map_err(|e| format!("retained generation {}: {e}", generation - 1))?;
    }
    let (mut cp, mut store, _) = open(image)?;
    same_as(&store, want).map_err(|e| format!("generation {generation}: {e}"))?;
    // Recovery is repeatable and the store keeps working after it.
    let mut model = want.clone();
    for id in 0..6u64 {
        store
            .upsert(id + 100, &vector(id, 77))
            .map_err(|e| e.to_string())?;
        model.insert(id + 100, vector(id, 77));
    }
    if let Some(&first) = want.keys().next() {
        store.delete(first).map_err(|e| e.to_string())?;
        model.remove(&first);
    }
    store
        .checkpoint(&mut cp, 10_000, b"")
        .map_err(|e| format!("checkpoint after recovery: {e}"))?;
    drop((cp, store));
    let again = image.crash_drop_unsynced();
    let (_, store, _) = open(&again)?;
    same_as(&store, &model).map_err(|e| format!("after recovery + checkpoint: {e}"))
}

/// Updates, deletes, growth into new segments, slot reuse after checkpoints, reclaim of
/// trailing segments, and writes after the last checkpoint that must not show up.
fn standard_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for round in 0..3u64 {
        let b = round * 40;
        for id in b..b + 6 {
            ops.push(Op::Upsert(id, 1));
        }
        ops.push(Op::Checkpoint);
        for id in b..b + 3 {
            ops.push(Op::Upsert(id, 2));
        }
        ops.push(Op::Delete(b + 4));
        for id in b + 10..b + 14 {
            ops.push(Op::Upsert(id, 1));
        }
        ops.push(Op::Checkpoint);
        for id in [0, 1, 2, 10, 11, 12, 13] {
            ops.push(Op::Delete(b + id));
        }
        ops.push(Op::Checkpoint);
        for id in b + 20..b + 23 {
            ops.push(Op::Upsert(id, 1));
        }
        ops.push(Op::Checkpoint);
        ops.push(Op::Upsert(b + 3, 9));
        ops.push(Op::Delete(b + 5));
        ops.push(Op::Upsert(b + 30, 1));
        // A checkpoint in flight while the ids it names (some written since the last
        // checkpoint, so not yet durable anywhere) are replaced and deleted, and their
        // freed slots would be the first reused.
        ops.push(Op::Begin);
        ops.push(Op::Upsert(b + 3, 10));
        ops.push(Op::Delete(b + 30));
        ops.push(Op::Upsert(b + 31, 1));
        ops.push(Op::Upsert(b + 32, 1));
        ops.push(Op::Finish);
        ops.push(Op::Upsert(b + 31, 2));
        // Compaction: vectors move down into the slots freed above, with a checkpoint in
        // flight across the moves, then the old slots are released and trailing segments
        // reclaimed.
        ops.push(Op::Checkpoint);
        ops.push(Op::Checkpoint);
        ops.push(Op::Begin);
        ops.push(Op::Compact);
        ops.push(Op::Finish);
        ops.push(Op::Compact);
        ops.push(Op::Checkpoint);
        ops.push(Op::Checkpoint);
    }
    ops
}

#[test]
fn any_crash_reopens_to_the_last_checkpoint_with_any_map_writeback() {
    let ops = standard_ops();
    // The scenario writes id map bases and carries them with deltas, both many times.
    let dry = run(&SimFs::new(), &ops);
    println!(
        "id map: {} bases written, {} carried with a delta",
        dry.bases_written, dry.bases_carried
    );
    assert!(dry.bases_written >= 3 && dry.bases_carried >= 3);
    let mut total = CrashReport::default();
    for (model, images) in [
        (CrashModel::torn_512(), 96),
        (
            CrashModel {
                writes: WriteSurvival::Prefix,
                ..CrashModel::torn_4k()
            },
            24,
        ),
        (CrashModel::drop_unsynced(), 1),
    ] {
        let report = CrashHarness {
            model,
            images_per_point: images,
            points: CrashPoints::EveryOp,
            seed: 0x5707E,
        }
        .run(|fs| run(fs, &ops), check);
        println!("store crash sweep ({model:?}): {report}");
        total.add(report);
    }
    println!("store crash images checked in all: {}", total.images);
    assert!(total.images > 5_000);
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..10, 0u64..4).prop_map(|(id, v)| Op::Upsert(id, v)),
        3 => (0u64..10).prop_map(Op::Delete),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Begin),
        1 => Just(Op::Finish),
        1 => Just(Op::Compact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn random_operations_crashed_anywhere_reopen_to_a_checkpointed_state(
        ops in proptest::collection::vec(op_strategy(), 1..40)
    ) {
        let report = CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 32,
            points: CrashPoints::AroundSyncs,
            seed: 0xAB,
        }
        .run(|fs| run(fs, &ops), check);
        println!("random store ops ({} ops): {report}", ops.len());
    }
}

#[test]
fn a_crash_during_recovery_still_recovers_the_checkpointed_state() {
    // Property P14: recovery removes leftover segments and orphaned checkpoint files; a crash at
    // any of its operations must leave a state the next recovery handles the same way.
    let ops = standard_ops();
    let fs = SimFs::new();
    let out = run(&fs, &ops);
    fs.cut_power();
    let want = out.states.last().expect("a checkpoint").clone();
    let mut images = 0;
    let mut points = 0;
    for image in fs.crash_images(&CrashModel::torn_512(), 8, 5) {
        let probe = image.crash_drop_unsynced();
        let before = probe.stats().ops;
        open(&probe).expect("recovery of a crash image");
        let recovery_ops = probe.stats().ops - before;
        for k in 0..=recovery_ops {
            let copy = image.crash_drop_unsynced();
            copy.cut_power_after(copy.stats().ops + k);
            let _ = open(&copy);
            copy.cut_power();
            for img in copy.crash_images(&CrashModel::torn_512(), 8, k) {
                let (_, store, _) = open(&img).unwrap_or_else(|e| panic!("after {k}: {e}"));
                same_as(&store, &want).unwrap_or_else(|e| panic!("after {k}: {e}"));
                images += 1;
            }
            points += 1;
        }
    }
    println!("store crash-during-recovery: checked {images} crash images at {points} crash points");
    assert!(images > 50);
}
