//! Injected I/O errors at the facade (properties P12 and P13, docs/PROPERTIES.md): an EIO, ENOSPC or short
//! write at the n-th operation of a standard scenario, swept over n. After the first failure
//! nothing more is acknowledged, the collection says "reopen", and a reopen recovers every
//! write acknowledged before the failure, bit-exact.

mod common;

use std::collections::BTreeMap;

use vellum::fs::{Fault, FaultRule, SimFs};
use vellum::{CollectionConfig, Database, DatabaseOptions, Error, HnswParams, Metric, Point};

fn options() -> DatabaseOptions {
    common::options(16 << 10, 16)
}

fn vector(i: u64) -> Vec<f32> {
    (0..4).map(|d| (i * 10 + d) as f32).collect()
}

type Model = BTreeMap<u64, Vec<f32>>;

/// Runs the scenario; returns what was acknowledged and whether a failure was seen.
fn scenario(fs: &SimFs) -> (Model, bool) {
    let mut acked = Model::new();
    let Ok(db) = Database::open_with_fs(fs.shared(), "/db", options()) else {
        return (acked, true);
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
        return (acked, true);
    };
    let mut failed = false;
    for i in 0..40u64 {
        let result = match i % 10 {
            9 => c.checkpoint().map(drop),
            7 => c.delete(i - 3).map(|_| {
                acked.remove(&(i - 3));
            }),
            _ => c.upsert(Point::new(i, vector(i))).map(|_| {
                acked.insert(i, vector(i));
            }),
        };
        match result {
            Ok(()) => {
                assert!(!failed, "an operation was acknowledged after a failure");
            }
            Err(e) => {
                if failed {
                    assert!(
                        e.is_poisoned() || matches!(e, Error::Poisoned { .. }),
                        "after a failure every write says reopen: {e}"
                    );
                }
                failed = true;
            }
        }
    }
    (acked, failed)
}

fn recovered(fs: &SimFs) -> Result<Option<Model>, String> {
    let db = Database::open_with_fs(fs.shared(), "/db", options())
        .map_err(|e| format!("reopen: {e}"))?;
    let Ok(c) = db.collection("c") else {
        return Ok(None);
    };
    let mut m = Model::new();
    for id in c.ids() {
        m.insert(
            id,
            c.get(id)
                .map_err(|e| e.to_string())?
                .ok_or("missing")?
                .vector,
        );
    }
    common::graph_and_tail_agree(&c)?;
    Ok(Some(m))
}

#[test]
fn an_io_error_at_any_operation_loses_nothing_acknowledged_and_stops_the_collection() {
    // Count the operations of a clean run.
    let clean = SimFs::new();
    let (all, failed) = scenario(&clean);
    assert!(!failed && all.len() > 20);
    let total_ops = clean.stats().ops;
    let mut runs = 0;
    for fault in [Fault::Eio, Fault::Enospc, Fault::ShortWrite] {
        for n in (1..=total_ops).step_by(3) {
            let fs = SimFs::new();
            fs.inject(FaultRule::nth_op(n, fault));
            let (acked, _) = scenario(&fs);
            // Reopen from what is durable: power cut now, unsynced bytes lost.
            fs.cut_power();
            let image = fs.crash_drop_unsynced();
            match recovered(&image) {
                Ok(Some(state)) => {
                    for (id, v) in &acked {
                        assert_eq!(
                            state.get(id),
                            Some(v),
                            "{fault:?} at op {n}: acknowledged id {id} lost"
                        );
                    }
                    // Nothing that was never written appears.
                    for id in state.keys() {
                        assert!(
                            all.contains_key(id) || acked.contains_key(id) || *id < 40,
                            "{fault:?} at op {n}: unknown id {id}"
                        );
                    }
                }
                Ok(None) => assert!(
                    acked.is_empty(),
                    "{fault:?} at op {n}: the collection vanished"
                ),
                Err(e) => panic!("{fault:?} at op {n}: {e}"),
            }
            runs += 1;
        }
    }
    println!("fault sweep: {runs} runs over {total_ops} operations");
}
