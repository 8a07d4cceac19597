//! The state machine under power cuts: whatever applied id a crash image reports, the
//! database holds every entry up to it (the collections were checkpointed before the id was
//! published), so applying the entries after it again rebuilds the state
//! (docs/REPLICATION.md, "The state machine and restarts").

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};
use vellum::DatabaseOptions;
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, SimFs};
use vellum_raft::{CollectionSpec, Entry, LogId, PointData, Request, StateMachine};

const DIR: &str = "/node/sm";

fn entry(index: u64, req: Request) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(req),
    }
}

/// Entry 1 creates the collection; entry `i` > 1 upserts point `i`.
fn entries(range: std::ops::Range<u64>) -> Vec<Entry> {
    range
        .map(|i| {
            let req = if i == 1 {
                Request::CreateCollection {
                    name: "c".into(),
                    spec: CollectionSpec::new(2, "l2"),
                }
            } else {
                Request::Upsert {
                    collection: "c".into(),
                    points: vec![PointData {
                        id: i,
                        vector: vec![i as f32, 1.0],
                        payload: None,
                    }],
                }
            };
            entry(i, req)
        })
        .collect()
}

fn options() -> DatabaseOptions {
    DatabaseOptions::default().with_background_checkpoints(false)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_crash_image_holds_every_entry_up_to_the_applied_id_it_reports() {
    let report = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 4,
        points: CrashPoints::EveryOp,
        seed: 5,
    }
    .run(
        |fs: &SimFs| {
            rt().block_on(async {
                let Ok(mut sm) =
                    StateMachine::open(fs.shared(), std::path::Path::new(DIR), options())
                else {
                    return;
                };
                if sm.apply(entries(1..30)).await.is_err() {
                    return;
                }
                // A snapshot build publishes the applied id (after checkpointing).
                let _ = sm.get_snapshot_builder().await;
                let _ = sm.apply(entries(30..40)).await;
                let _ = sm.get_snapshot_builder().await;
            })
        },
        |image: &SimFs, _: &()| {
            rt().block_on(async {
                let mut sm =
                    StateMachine::open(image.shared(), std::path::Path::new(DIR), options())
                        .map_err(|e| format!("open: {e}"))?;
                let (applied, _) = sm.applied_state().await.map_err(|e| e.to_string())?;
                let upto = applied.map_or(0, |l| l.index);
                if upto == 0 {
                    return Ok(());
                }
                let c = sm
                    .database()
                    .collection("c")
                    .map_err(|e| format!("applied {upto} but no collection: {e}"))?;
                for i in 2..=upto {
                    if c.get(i).map_err(|e| e.to_string())?.is_none() {
                        return Err(format!("applied id {upto} reported, point {i} missing"));
                    }
                }
                // Applying the rest again rebuilds everything.
                sm.apply(entries(upto + 1..40))
                    .await
                    .map_err(|e| e.to_string())?;
                let c = sm.database().collection("c").map_err(|e| e.to_string())?;
                if c.len() != 38 {
                    return Err(format!("{} points after applying the rest again", c.len()));
                }
                Ok(())
            })
        },
    );
    println!("state machine crash sweep: {report}");
    assert!(report.images > 50, "{report}");
}
