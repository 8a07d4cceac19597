//! The Raft log store under power cuts: votes, appends, conflict truncations, purges and
//! purges past the end (a reset), with the power cut at every file-system operation; every
//! crash image must open to a log openraft can start from, holding every acknowledged
//! entry and vote and nothing that was cut (docs/PROPERTIES.md P23).

use std::collections::BTreeMap;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, Vote};
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, SimFs};
use vellum_raft::{Entry, LogId, LogStore};

const DIR: &str = "/node/raft";

fn id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: id(term, index),
        payload: EntryPayload::Blank,
    }
}

/// The log as acknowledged: entries by index (their term), the purged id, the vote term.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    entries: BTreeMap<u64, u64>,
    purged: Option<LogId>,
    vote: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    Vote(u64),
    Append(u64, std::ops::Range<u64>),
    TruncateFrom(u64),
    Purge(u64, u64),
}

fn script() -> Vec<Op> {
    vec![
        Op::Vote(1),
        Op::Append(1, 0..10),
        Op::TruncateFrom(6),
        Op::Vote(2),
        Op::Append(2, 6..14),
        Op::Purge(2, 8),
        Op::Purge(2, 30),
        Op::Vote(3),
        Op::Append(3, 31..36),
        Op::TruncateFrom(33),
        Op::Append(3, 33..35),
    ]
}

fn apply(m: &Model, op: &Op) -> Model {
    let mut m = m.clone();
    match op {
        Op::Vote(t) => m.vote = Some(*t),
        Op::Append(t, r) => {
            for i in r.clone() {
                m.entries.insert(i, *t);
            }
        }
        Op::TruncateFrom(i) => m.entries.retain(|k, _| k < i),
        Op::Purge(t, i) => {
            m.purged = Some(id(*t, *i));
            m.entries.retain(|k, _| k > i);
        }
    }
    m
}

/// What the scenario got through: the model before the operation a power cut stopped (or
/// the final one), and that operation.
#[derive(Debug, Default)]
struct Outcome {
    before: Model,
    stopped_at: Option<Op>,
}

fn scenario(fs: &SimFs) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = Outcome::default();
        let Ok(mut log) = LogStore::open(fs.shared(), std::path::Path::new(DIR)) else {
            out.stopped_at = Some(Op::Vote(0));
            return out;
        };
        for op in script() {
            let r = match &op {
                Op::Vote(t) => log.save_vote(&Vote::new(*t, 1)).await,
                Op::Append(t, r) => log.blocking_append(r.clone().map(|i| entry(*t, i))).await,
                Op::TruncateFrom(i) => {
                    let t = out.before.entries.get(i).copied().unwrap_or(1);
                    log.truncate(id(t, *i)).await
                }
                Op::Purge(t, i) => log.purge(id(*t, *i)).await,
            };
            if r.is_err() {
                out.stopped_at = Some(op);
                return out;
            }
            out.before = apply(&out.before, &op);
        }
        out
    })
}

fn check(fs: &SimFs, out: &Outcome) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut log = LogStore::open(fs.shared(), std::path::Path::new(DIR))
            .map_err(|e| format!("open: {e}"))?;
        let state = log.get_log_state().await.map_err(|e| e.to_string())?;
        let vote = log.read_vote().await.map_err(|e| e.to_string())?;
        let entries = log
            .try_get_log_entries(0..u64::MAX)
            .await
            .map_err(|e| e.to_string())?;
        let got = Model {
            entries: entries
                .iter()
                .map(|e| (e.log_id.index, e.log_id.leader_id.term))
                .collect(),
            purged: state.last_purged_log_id,
            vote: vote.map(|v| v.leader_id.term),
        };
        // Entries are contiguous from the purge point to the last log id.
        let from = got.purged.map_or(0, |p| p.index + 1);
        let last = state.last_log_id.map_or(0, |l| l.index + 1);
        if got.entries.keys().copied().ne(from..last.max(from)) {
            return Err(format!(
                "entries are not contiguous after the purge: {got:?}"
            ));
        }
        let before = &out.before;
        let after = out.stopped_at.as_ref().map(|op| apply(before, op));
        let fits = |m: &Model| -> bool {
            let purged_ok = got.purged == m.purged;
            let vote_ok = got.vote == m.vote;
            let from = m.purged.map_or(0, |p| p.index + 1);
            let entries_ok = got.entries.iter().all(|(i, t)| m.entries.get(i) == Some(t))
                && m.entries
                    .keys()
                    .filter(|i| **i >= from)
                    .all(|i| got.entries.contains_key(i));
            purged_ok && vote_ok && entries_ok
        };
        // An append a cut stopped may have made any prefix of its entries durable.
        let partial_append = match (&out.stopped_at, &after) {
            (Some(Op::Append(..)), Some(a)) => {
                got.purged == before.purged
                    && got.vote == before.vote
                    && got.entries.iter().all(|(i, t)| a.entries.get(i) == Some(t))
                    && before.entries.keys().all(|i| got.entries.contains_key(i))
            }
            _ => false,
        };
        if fits(before) || after.as_ref().is_some_and(fits) || partial_append {
            Ok(())
        } else {
            Err(format!(
                "recovered {got:?}; allowed {before:?} or {after:?} (stopped at {:?})",
                out.stopped_at
            ))
        }
    })
}

#[test]
fn every_crash_image_of_votes_appends_truncations_and_purges_opens_to_an_allowed_log() {
    let mut total = 0;
    for model in [CrashModel::torn_512(), CrashModel::any_subset()] {
        let report = CrashHarness {
            model,
            images_per_point: 16,
            points: CrashPoints::EveryOp,
            seed: 23,
        }
        .run(scenario, check);
        println!("raft log store crash sweep: {report}");
        total += report.images;
    }
    assert!(total > 400, "{total} images");
}
