//! Crash properties on the simulated file system (P1–P4, P6, P7, P14, P15 and P19 of
//! docs/PROPERTIES.md): random operation sequences from several threads, the power cut at many moments,
//! every image reopened and checked against what was acknowledged.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, Fs, SimFs};
use vellum_wal::{SyncPolicy, Wal, WalOptions};

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Batch(u8, usize),
    Sync,
    Truncate,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..200).prop_map(Op::Append),
        2 => (1u8..5, 1usize..60).prop_map(|(n, l)| Op::Batch(n, l)),
        1 => Just(Op::Sync),
        1 => Just(Op::Truncate),
    ]
}

fn policy() -> impl Strategy<Value = SyncPolicy> {
    prop_oneof![
        3 => Just(SyncPolicy::Always),
        2 => Just(SyncPolicy::Never),
        1 => Just(SyncPolicy::Interval(Duration::from_millis(1))),
    ]
}

/// One thread's work; stops at the first error (after a power cut every call fails).
fn run_thread(wal: &Wal, t: u8, ops: &[Op], policy: SyncPolicy) -> Outcome {
    let mut out = Outcome::default();
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let always = policy == SyncPolicy::Always;
    for (seq, op) in ops.iter().enumerate() {
        let seq = seq as u32;
        match op {
            Op::Append(len) => {
                let p = payload(t, seq, 0, 1, *len);
                out.attempted.insert(p.clone());
                match wal.append(&p) {
                    Ok(lsn) if always => {
                        out.acked.insert(lsn, p);
                    }
                    Ok(lsn) => pending.push((lsn, p)),
                    Err(_) => break,
                }
            }
            Op::Batch(n, len) => {
                let ps: Vec<Vec<u8>> = (0..*n).map(|i| payload(t, seq, i, *n, *len)).collect();
                out.attempted.extend(ps.iter().cloned());
                match wal.append_batch(&ps) {
                    Ok(lsns) => {
                        for (lsn, p) in lsns.zip(ps) {
                            if always {
                                out.acked.insert(lsn, p);
                            } else {
                                pending.push((lsn, p));
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
            Op::Sync => match wal.sync() {
                Ok(_) => out.acked.extend(pending.drain(..)),
                Err(_) => break,
            },
            Op::Truncate => {
                let lsn = wal.stats().synced_lsn;
                out.truncate_max = out.truncate_max.max(lsn);
                if wal.truncate_before(lsn).is_err() {
                    break;
                }
            }
        }
    }
    out
}

fn scenario(fs: &SimFs, opts: WalOptions, threads: &[Vec<Op>]) -> Outcome {
    let Ok((wal, _)) = Wal::open(fs.shared(), DIR, opts) else {
        return Outcome::default();
    };
    let wal = Arc::new(wal);
    let mut out = Outcome::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = threads
            .iter()
            .enumerate()
            .map(|(t, ops)| {
                let wal = Arc::clone(&wal);
                s.spawn(move || run_thread(&wal, t as u8, ops, opts.sync_policy))
            })
            .collect();
        for h in handles {
            out.merge(h.join().expect("writer thread panicked"));
        }
    });
    out
}

/// Runs the harness; every image is reopened twice and checked, and every 8th also gets
/// appends after recovery and a second crash. Returns images checked.
fn crash_check(opts: WalOptions, threads: &[Vec<Op>], harness: CrashHarness) -> usize {
    let extra = AtomicUsize::new(0);
    let n = AtomicUsize::new(0);
    let report = harness.run(
        |fs| scenario(fs, opts, threads),
        |image, out| {
            let default_opts = WalOptions {
                sync_policy: SyncPolicy::Always,
                ..opts
            };
            let recovered = reopen_and_check(image.shared(), default_opts, out)?;
            if n.fetch_add(1, Ordering::Relaxed).is_multiple_of(8) {
                let k = append_after_recovery_then_crash(image, default_opts, &recovered, 7)?;
                extra.fetch_add(k, Ordering::Relaxed);
            }
            Ok(())
        },
    );
    report.images + extra.load(Ordering::Relaxed)
}

static IMAGES: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(96),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn acknowledged_records_survive_any_crash_with_concurrent_writers(
        threads in prop::collection::vec(prop::collection::vec(op(), 1..30), 1..5),
        policy in policy(),
        seed in any::<u64>(),
    ) {
        let harness = CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 32,
            points: CrashPoints::Sample(80),
            seed,
        };
        let n = crash_check(small_opts(policy), &threads, harness);
        let total = IMAGES.fetch_add(n, Ordering::Relaxed) + n;
        println!("property case: {n} crash images ({total} so far in this test)");
    }
}

#[test]
fn short_sequences_hold_at_every_operation_and_every_image() {
    let threads = vec![vec![
        Op::Append(100),
        Op::Batch(3, 50),
        Op::Append(200),
        Op::Append(10),
    ]];
    let mut total = 0;
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let harness = CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 64,
            points: CrashPoints::EveryOp,
            seed: 11,
        };
        total += crash_check(small_opts(policy), &threads, harness);
    }
    println!("every-op crash test: {total} crash images checked");
}

#[test]
fn group_commit_with_sixteen_writers_holds_at_every_sync() {
    let threads: Vec<Vec<Op>> = (0..16).map(|t| vec![Op::Append(20 + t * 5); 3]).collect();
    let harness = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 24,
        points: CrashPoints::AroundSyncs,
        seed: 3,
    };
    let n = crash_check(small_opts(SyncPolicy::Always), &threads, harness);
    println!("group commit crash test: {n} crash images checked");
}

#[test]
fn rotation_and_truncation_hold_under_ordered_and_4k_torn_writeback() {
    let threads = vec![
        vec![
            Op::Append(150),
            Op::Append(150),
            Op::Truncate,
            Op::Append(150),
            Op::Sync,
        ],
        vec![
            Op::Batch(4, 40),
            Op::Append(180),
            Op::Append(180),
            Op::Truncate,
        ],
    ];
    let mut total = 0;
    for model in [
        CrashModel::torn_4k(),
        CrashModel::any_subset(),
        CrashModel::drop_unsynced(),
    ] {
        for policy in [SyncPolicy::Always, SyncPolicy::Never] {
            let harness = CrashHarness {
                model,
                images_per_point: 16,
                points: CrashPoints::AroundSyncs,
                seed: 5,
            };
            total += crash_check(small_opts(policy), &threads, harness);
        }
    }
    println!("rotation/truncation crash test: {total} crash images checked");
}

#[test]
fn truncation_removes_a_prefix_of_segments_and_never_leaves_a_hole() {
    let opts = small_opts(SyncPolicy::Always);
    let harness = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 64,
        points: CrashPoints::EveryOp,
        seed: 21,
    };
    let report = harness.run(
        |fs| {
            let mut out = Outcome::default();
            let Ok((wal, _)) = Wal::open(fs.shared(), DIR, opts) else {
                return out;
            };
            for i in 0..30 {
                let p = payload(0, i, 0, 1, 50);
                out.attempted.insert(p.clone());
                match wal.append(&p) {
                    Ok(lsn) => {
                        out.acked.insert(lsn, p);
                    }
                    Err(_) => return out,
                }
            }
            out.truncate_max = 25;
            let _ = wal.truncate_before(25);
            out
        },
        |image, out| reopen_and_check(image.shared(), opts, out).map(|_| ()),
    );
    println!("truncation crash test: {report}");
}

/// Truncating below every record (a checkpoint that covers the whole log) rotates away a
/// grown active segment; a crash at any point of that keeps every record after it and
/// leaves no hole, and the log goes on in the fresh segment.
#[test]
fn truncating_below_every_record_rotates_away_the_grown_active_segment() {
    let opts = WalOptions {
        segment_size_bytes: 64 << 10,
        ..small_opts(SyncPolicy::Always)
    };
    let scenario = |fs: &SimFs| {
        let mut out = Outcome::default();
        let Ok((wal, _)) = Wal::open(fs.shared(), DIR, opts) else {
            return out;
        };
        let append = |out: &mut Outcome, i: u32| {
            let p = payload(0, i, 0, 1, 50);
            out.attempted.insert(p.clone());
            match wal.append(&p) {
                Ok(lsn) => {
                    out.acked.insert(lsn, p);
                    true
                }
                Err(_) => false,
            }
        };
        for i in 0..30 {
            if !append(&mut out, i) {
                return out;
            }
        }
        out.truncate_max = 31;
        if wal.truncate_before(31).is_err() {
            return out;
        }
        for i in 30..35 {
            if !append(&mut out, i) {
                return out;
            }
        }
        out
    };
    // Without a crash: one segment is left, small, holding the five later records.
    let fs = SimFs::new();
    let out = scenario(&fs);
    assert_eq!(out.acked.len(), 35);
    let names = fs.list_dir(std::path::Path::new(DIR)).unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    let len = fs
        .open(&std::path::Path::new(DIR).join(&names[0]))
        .unwrap()
        .len()
        .unwrap();
    assert!(len <= 512, "the fresh segment is {len} bytes");
    let report = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 32,
        points: CrashPoints::EveryOp,
        seed: 31,
    }
    .run(scenario, |image, out| {
        reopen_and_check(image.shared(), opts, out).map(|_| ())
    });
    println!("truncation of the whole log crash test: {report}");
}
