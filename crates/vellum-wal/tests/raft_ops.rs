//! The index-addressed operations a consensus log needs (append at an LSN, with or without
//! a durability callback; `truncate_after`; `reset`; prefix purge by `truncate_before`),
//! proven like the rest of the log: behaviour on both file systems, then random operation
//! sequences with the power cut at every step and every image checked against a model of
//! which log states the crash may leave (docs/PROPERTIES.md P22).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{DIR, cases};
use parking_lot::Mutex;
use proptest::prelude::*;
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, DynFs, RealFs, SimFs};
use vellum_wal::{Error, SyncPolicy, Wal, WalOptions};

fn opts(policy: SyncPolicy) -> WalOptions {
    WalOptions {
        segment_size_bytes: 1024,
        max_record_bytes: 256,
        sync_policy: policy,
        preallocate_step_bytes: 256,
        ..WalOptions::default()
    }
}

/// A record naming the operation that wrote it, its LSN and a filler of `len` bytes.
fn rec(op: u32, lsn: u64, len: usize) -> Vec<u8> {
    let mut r = op.to_le_bytes().to_vec();
    r.extend_from_slice(&lsn.to_le_bytes());
    r.extend((0..len).map(|i| (i as u64 ^ lsn ^ (u64::from(op) * 31)) as u8 | 1));
    r
}

fn read_all(wal: &Wal) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let st = wal.stats();
    wal.iter_from(st.first_lsn)
        .map_err(|e| e.to_string())?
        .map(|r| r.map(|r| (r.lsn, r.data)).map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn append_at_refuses_a_gap_and_an_overlap_and_truncate_after_lets_indexes_be_reused() {
    for fs in [SimFs::new().shared(), RealFs::shared()] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(Arc::clone(&fs), &path, opts(SyncPolicy::Always)).unwrap();
        assert_eq!(
            wal.append_at(1, &[rec(0, 1, 10), rec(0, 2, 10)]).unwrap(),
            1..=2
        );
        let gap = wal.append_at(4, &[rec(0, 4, 10)]).unwrap_err();
        assert!(
            matches!(
                gap,
                Error::NotNextLsn {
                    given: 4,
                    next_lsn: 3
                }
            ),
            "{gap}"
        );
        let overlap = wal.append_at(2, &[rec(1, 2, 10)]).unwrap_err();
        assert!(
            matches!(
                overlap,
                Error::NotNextLsn {
                    given: 2,
                    next_lsn: 3
                }
            ),
            "{overlap}"
        );
        for lsn in 3..=40 {
            wal.append_at(lsn, &[rec(0, lsn, 60)]).unwrap();
        }
        assert!(wal.stats().segments > 2, "the test spans segments");
        wal.truncate_after(7).unwrap();
        assert_eq!(wal.stats().last_lsn, 7);
        assert!(wal.stats().synced_lsn <= 7);
        wal.append_at(8, &[rec(1, 8, 30), rec(1, 9, 30)]).unwrap();
        let expect: Vec<(u64, Vec<u8>)> = (1..=9)
            .map(|l| {
                (
                    l,
                    if l <= 7 {
                        rec(0, l, if l <= 2 { 10 } else { 60 })
                    } else {
                        rec(1, l, 30)
                    },
                )
            })
            .collect();
        assert_eq!(read_all(&wal).unwrap(), expect);
        drop(wal);
        let (wal, _) = Wal::open(fs, &path, opts(SyncPolicy::Always)).unwrap();
        assert_eq!(
            read_all(&wal).unwrap(),
            expect,
            "the cut and the new records survive reopen"
        );
    }
}

#[test]
fn truncate_after_refuses_to_split_a_batch_frame_and_changes_nothing() {
    let fs = SimFs::new();
    let (wal, _) = Wal::open(fs.shared(), DIR, opts(SyncPolicy::Always)).unwrap();
    wal.append_batch(&[b"a".as_slice(), b"b", b"c"]).unwrap();
    let err = wal.truncate_after(1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TruncateInsideBatch {
                lsn: 1,
                first: 1,
                last: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(wal.stats().last_lsn, 3);
    wal.truncate_after(0).unwrap();
    assert_eq!(
        wal.stats().last_lsn,
        0,
        "a cut at a frame boundary (before it) is allowed"
    );
}

#[test]
fn reset_empties_the_log_and_starts_it_at_the_given_lsn_across_reopen() {
    for fs in [SimFs::new().shared(), RealFs::shared()] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(Arc::clone(&fs), &path, opts(SyncPolicy::Always)).unwrap();
        for lsn in 1..=30 {
            wal.append_at(lsn, &[rec(0, lsn, 80)]).unwrap();
        }
        wal.reset(1000).unwrap();
        let st = wal.stats();
        assert_eq!((st.first_lsn, st.last_lsn, st.segments), (1000, 999, 1));
        wal.append_at(1000, &[rec(1, 1000, 5)]).unwrap();
        drop(wal);
        let (wal, rec_) = Wal::open(Arc::clone(&fs), &path, opts(SyncPolicy::Always)).unwrap();
        assert_eq!((rec_.first_lsn, rec_.last_lsn), (1000, 1000));
        assert_eq!(read_all(&wal).unwrap(), vec![(1000, rec(1, 1000, 5))]);
        // Backwards works too (a snapshot older than a conflicting log).
        wal.reset(5).unwrap();
        assert_eq!(wal.append_at(5, &[rec(2, 5, 5)]).unwrap(), 5..=5);
    }
}

#[test]
fn durability_callbacks_fire_once_each_in_lsn_order_under_every_policy() {
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let fs = SimFs::new();
        let (wal, _) = Wal::open(fs.shared(), DIR, opts(policy)).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for lsn in 1..=200u64 {
            let seen = Arc::clone(&seen);
            let done = Box::new(move |r: vellum_wal::Result<u64>| seen.lock().push(r.unwrap()));
            wal.append_at_then(lsn, &[rec(0, lsn, 20)], done).unwrap();
        }
        // A cut settles first: every callback before it has fired.
        wal.truncate_after(150).unwrap();
        assert_eq!(*seen.lock(), (1..=200).collect::<Vec<_>>());
        assert!(wal.stats().syncs >= 1);
        drop(wal);
    }
}

#[test]
fn callbacks_get_the_error_when_the_power_is_cut_before_their_sync() {
    let fs = SimFs::new();
    let (wal, _) = Wal::open(fs.shared(), DIR, opts(SyncPolicy::Never)).unwrap();
    fs.cut_power();
    let outcome = Arc::new(Mutex::new(None));
    let o = Arc::clone(&outcome);
    let done = Box::new(move |r: vellum_wal::Result<u64>| *o.lock() = Some(r.is_ok()));
    // The write itself may or may not be refused; if it is accepted, its callback fails.
    if wal.append_at_then(1, &[rec(0, 1, 10)], done).is_ok() {
        drop(wal);
        assert_eq!(*outcome.lock(), Some(false));
    }
}

// ---------------------------------------------------------------------------------------
// Crash sweep.

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` records of `len` bytes at the next LSN.
    Append(u8, usize),
    /// The same with a durability callback.
    AppendThen(u8, usize),
    /// Cut the last `k` records.
    TruncateBack(u8),
    /// Start over `k` LSNs after the last one.
    ResetAhead(u8),
    /// Drop segments below the LSN `k` before the last one.
    PurgeBack(u8),
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u8..4, 1usize..120).prop_map(|(n, l)| Op::Append(n, l)),
        4 => (1u8..4, 1usize..120).prop_map(|(n, l)| Op::AppendThen(n, l)),
        3 => (0u8..6).prop_map(Op::TruncateBack),
        1 => (0u8..50).prop_map(Op::ResetAhead),
        1 => (0u8..6).prop_map(Op::PurgeBack),
        1 => Just(Op::Sync),
    ]
}

/// What the log should hold: records by LSN, the next LSN, every record up to `durable`
/// is durable, records up to `purged` may be gone.
#[derive(Debug, Clone, Default)]
struct Model {
    recs: BTreeMap<u64, Vec<u8>>,
    next: u64,
    durable: u64,
    purged: u64,
}

/// A log state a crash may leave: consistent with `state`, holding its records from
/// `purged + 1` to `required`; `exact_next` when the log must start at `state.next` (a
/// reset that completed).
#[derive(Debug, Clone)]
struct Candidate {
    state: Model,
    required: u64,
    exact_next: bool,
}

#[derive(Debug, Default)]
struct Outcome {
    candidates: Vec<Candidate>,
}

fn scenario(fs: &SimFs, policy: SyncPolicy, ops: &[Op]) -> Outcome {
    let Ok((wal, _)) = Wal::open(fs.shared(), DIR, opts(policy)) else {
        return Outcome::default();
    };
    let mut m = Model {
        next: 1,
        ..Model::default()
    };
    let cb_durable = Arc::new(AtomicU64::new(0));
    for (i, op) in ops.iter().enumerate() {
        let i = i as u32;
        m.durable = m.durable.max(cb_durable.load(Ordering::Acquire));
        let before = m.clone();
        let last = m.next - 1;
        let (after, result, cands): (Model, vellum_wal::Result<()>, _) = match op {
            Op::Append(n, len) | Op::AppendThen(n, len) => {
                let recs: Vec<Vec<u8>> = (0..u64::from(*n))
                    .map(|k| rec(i, m.next + k, *len))
                    .collect();
                let mut after = m.clone();
                for (k, r) in recs.iter().enumerate() {
                    after.recs.insert(m.next + k as u64, r.clone());
                }
                after.next += u64::from(*n);
                let result = if matches!(op, Op::AppendThen(..)) {
                    let cb = Arc::clone(&cb_durable);
                    let done = Box::new(move |r: vellum_wal::Result<u64>| {
                        if let Ok(lsn) = r {
                            cb.fetch_max(lsn, Ordering::AcqRel);
                        }
                    });
                    wal.append_at_then(m.next, &recs, done).map(drop)
                } else {
                    let r = wal.append_at(m.next, &recs).map(drop);
                    if r.is_ok() && policy == SyncPolicy::Always {
                        after.durable = after.next - 1;
                    }
                    r
                };
                let c = vec![Candidate {
                    state: after.clone(),
                    required: before.durable,
                    exact_next: false,
                }];
                (after, result, c)
            }
            Op::TruncateBack(k) => {
                let to = last.saturating_sub(u64::from(*k)).max(m.purged);
                let mut after = m.clone();
                after.recs.retain(|l, _| *l <= to);
                after.next = to + 1;
                after.durable = to;
                let result = wal.truncate_after(to);
                cb_durable.store(0, Ordering::Release);
                let c = vec![Candidate {
                    state: before.clone(),
                    required: before.durable.min(to),
                    exact_next: false,
                }];
                (after, result, c)
            }
            Op::ResetAhead(k) => {
                let next = m.next + u64::from(*k);
                let after = Model {
                    recs: BTreeMap::new(),
                    next,
                    durable: next - 1,
                    purged: next - 1,
                };
                let result = wal.reset(next);
                cb_durable.store(0, Ordering::Release);
                let c = vec![
                    Candidate {
                        state: before.clone(),
                        required: before.durable,
                        exact_next: false,
                    },
                    Candidate {
                        state: after.clone(),
                        required: 0,
                        exact_next: true,
                    },
                ];
                (after, result, c)
            }
            Op::PurgeBack(k) => {
                let below = m.next.saturating_sub(u64::from(*k)).max(1);
                let mut after = m.clone();
                after.purged = after.purged.max(below - 1);
                let result = wal.truncate_before(below).map(drop);
                let c = vec![Candidate {
                    state: after.clone(),
                    required: before.durable,
                    exact_next: false,
                }];
                (after, result, c)
            }
            Op::Sync => {
                let mut after = m.clone();
                after.durable = after.next - 1;
                let result = wal.sync().map(drop);
                let c = vec![Candidate {
                    state: after.clone(),
                    required: before.durable,
                    exact_next: false,
                }];
                (after, result, c)
            }
        };
        if result.is_err() {
            // The power was cut during this operation (or just before it).
            return Outcome { candidates: cands };
        }
        m = after;
    }
    m.durable = m.durable.max(cb_durable.load(Ordering::Acquire));
    let required = m.durable;
    drop(wal);
    m.durable = m.durable.max(cb_durable.load(Ordering::Acquire));
    Outcome {
        candidates: vec![Candidate {
            state: m,
            required,
            exact_next: false,
        }],
    }
}

fn fits(got: &[(u64, Vec<u8>)], next: u64, c: &Candidate) -> Result<(), String> {
    let s = &c.state;
    if c.exact_next && (!got.is_empty() || next != s.next) {
        return Err(format!(
            "a completed reset must leave an empty log at {}",
            s.next
        ));
    }
    for (lsn, data) in got {
        if s.recs.get(lsn) != Some(data) {
            return Err(format!("LSN {lsn} holds a record the log never had there"));
        }
    }
    for lsn in s.purged + 1..=c.required {
        if s.recs.contains_key(&lsn) && !got.iter().any(|(l, _)| *l == lsn) {
            return Err(format!("durable LSN {lsn} is missing"));
        }
    }
    Ok(())
}

fn check(fs: DynFs, out: &Outcome) -> Result<(), String> {
    if out.candidates.is_empty() {
        return Ok(());
    }
    let (wal, _) = Wal::open(Arc::clone(&fs), DIR, opts(SyncPolicy::Always))
        .map_err(|e| format!("open: {e}"))?;
    let got = read_all(&wal)?;
    let next = wal.stats().last_lsn + 1;
    let verdicts: Vec<String> = out
        .candidates
        .iter()
        .filter_map(|c| fits(&got, next, c).err())
        .collect();
    if verdicts.len() == out.candidates.len() {
        return Err(format!(
            "recovered LSNs {:?} (next {next}) fit no allowed state: {verdicts:?}",
            got.iter().map(|(l, _)| *l).collect::<Vec<_>>()
        ));
    }
    // The log goes on from what was recovered: a cut and an append at the next index.
    let back = (wal.stats().first_lsn - 1).max(next.saturating_sub(2));
    wal.truncate_after(back)
        .map_err(|e| format!("truncate after recovery: {e}"))?;
    wal.append_at(back + 1, &[rec(999, back + 1, 33)])
        .map_err(|e| format!("append after recovery: {e}"))?;
    drop(wal);
    let (wal, _) =
        Wal::open(fs, DIR, opts(SyncPolicy::Always)).map_err(|e| format!("reopen: {e}"))?;
    let again = read_all(&wal)?;
    if again.last() != Some(&(back + 1, rec(999, back + 1, 33))) {
        return Err("the record appended after recovery is not the last one".into());
    }
    Ok(())
}

static IMAGES: AtomicU64 = AtomicU64::new(0);

fn sweep(ops: &[Op], policy: SyncPolicy, harness: CrashHarness) -> usize {
    let report = harness.run(
        |fs| scenario(fs, policy, ops),
        |image, out| check(image.shared(), out),
    );
    let total = IMAGES.fetch_add(report.images as u64, Ordering::Relaxed) + report.images as u64;
    println!("raft-log crash sweep: {report} ({total} images so far in this binary)");
    report.images
}

#[test]
fn a_cut_then_unsynced_appends_never_read_as_damage_at_any_crash() {
    // Twenty synced records, a cut at 10, then records 11.. written but not synced: a torn
    // new frame followed by a whole one must read as a torn tail, which it only can if the
    // frames written after the cut do not claim the cut LSNs were synced.
    let ops = vec![
        Op::Append(3, 100),
        Op::Append(3, 100),
        Op::Append(3, 100),
        Op::TruncateBack(5),
        Op::Append(3, 110),
        Op::Append(2, 20),
    ];
    let mut n = 0;
    for model in [CrashModel::torn_512(), CrashModel::any_subset()] {
        let harness = CrashHarness {
            model,
            images_per_point: 48,
            points: CrashPoints::EveryOp,
            seed: 41,
        };
        n += sweep(&ops, SyncPolicy::Never, harness);
    }
    assert!(n > 300, "{n} images");
}

#[test]
fn reset_is_atomic_at_every_crash_point() {
    let ops = vec![
        Op::Append(3, 100),
        Op::Append(3, 100),
        Op::ResetAhead(20),
        Op::AppendThen(2, 50),
        Op::ResetAhead(0),
        Op::Append(1, 10),
    ];
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let harness = CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 24,
            points: CrashPoints::EveryOp,
            seed: 43,
        };
        sweep(&ops, policy, harness);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(200),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_crash_during_random_raft_log_operations_leaves_an_allowed_log(
        ops in prop::collection::vec(op(), 1..24),
        always in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let policy = if always { SyncPolicy::Always } else { SyncPolicy::Never };
        let harness = CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 8,
            points: CrashPoints::Sample(60),
            seed,
        };
        sweep(&ops, policy, harness);
    }
}

#[test]
fn a_crash_during_a_cut_never_leaves_a_synced_frame_vouching_for_a_zeroed_one() {
    let ops = vec![
        Op::Append(2, 1),
        Op::Append(1, 60),
        Op::Append(1, 1),
        Op::Append(1, 1),
        Op::Append(2, 36),
        Op::Sync,
        Op::Append(1, 1),
        Op::TruncateBack(2),
    ];
    let harness = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 8,
        points: CrashPoints::EveryOp,
        seed: 1719457570181525869,
    };
    sweep(&ops, SyncPolicy::Never, harness);
}

#[test]
fn reads_from_any_lsn_of_a_large_segment_start_at_its_sparse_index_and_read_the_same() {
    // Segments of 16 MiB holding 4 KiB records: reads start at the last index mark before
    // the LSN (about every MiB) instead of the segment's first frame; the records read are
    // the same from every LSN, after appends, after a reopen (marks rebuilt by recovery) and
    // after a cut.
    let opts = WalOptions {
        segment_size_bytes: 16 << 20,
        max_record_bytes: 8 << 10,
        sync_policy: SyncPolicy::Never,
        ..WalOptions::default()
    };
    let fs = SimFs::new();
    // After the cut, records of another length: a mark left past the cut would point into
    // the middle of a new frame.
    let cut = std::cell::Cell::new(u64::MAX);
    let rec4k = |lsn: u64| {
        if lsn > cut.get() {
            rec(8, lsn, 3000)
        } else {
            rec(7, lsn, 4096)
        }
    };
    let check = |wal: &Wal, last: u64| {
        for from in (1..=last).step_by(97).chain([last]) {
            let got: Vec<u64> = wal
                .iter_from(from)
                .unwrap()
                .take(3)
                .map(|r| {
                    let r = r.unwrap();
                    assert_eq!(r.data, rec4k(r.lsn), "LSN {}", r.lsn);
                    r.lsn
                })
                .collect();
            let want: Vec<u64> = (from..=last.min(from + 2)).collect();
            assert_eq!(got, want, "reading from {from}");
        }
    };
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    for lsn in 1..=2000u64 {
        wal.append_at(lsn, &[rec4k(lsn)]).unwrap();
    }
    check(&wal, 2000);
    wal.sync().unwrap();
    drop(wal);
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    check(&wal, 2000);
    wal.truncate_after(1234).unwrap();
    cut.set(1234);
    for lsn in 1235..=1300u64 {
        wal.append_at(lsn, &[rec4k(lsn)]).unwrap();
    }
    check(&wal, 1300);
}
