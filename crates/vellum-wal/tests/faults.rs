//! Injected faults (properties P12, P13 and P14 of docs/PROPERTIES.md): EIO, ENOSPC and short writes at every
//! n-th operation of a standard scenario; the log stops (fail-stop), nothing is
//! acknowledged after the fault, and reopening recovers every acknowledged record, both on
//! the live file system and on every crash image.

mod common;

use std::sync::Arc;

use common::*;
use vellum_fs::{CrashModel, FailAction, Fault, FaultRule, OpKind, SimFs};
use vellum_wal::{SyncPolicy, Wal, WalOptions};

fn opts() -> WalOptions {
    small_opts(SyncPolicy::Always)
}

/// Appends, a batch, a sync, rotations and a truncation. Returns what was acknowledged;
/// panics if anything is acknowledged after the first error.
fn standard(fs: &SimFs) -> Outcome {
    let mut out = Outcome::default();
    let Ok((wal, _)) = Wal::open(fs.shared(), DIR, opts()) else {
        return out;
    };
    let mut failed = false;
    for i in 0..26u32 {
        let result = match i {
            4 => {
                let ps: Vec<Vec<u8>> = (0..3).map(|k| payload(0, i, k, 3, 40)).collect();
                out.attempted.extend(ps.iter().cloned());
                wal.append_batch(&ps)
                    .map(|lsns| out.acked.extend(lsns.zip(ps)))
            }
            6 | 15 => wal.sync().map(|_| ()),
            9 | 20 => {
                let lsn = wal.stats().synced_lsn;
                out.truncate_max = lsn;
                wal.truncate_before(lsn).map(|_| ())
            }
            _ => {
                let p = payload(0, i, 0, 1, 100);
                out.attempted.insert(p.clone());
                wal.append(&p).map(|lsn| {
                    out.acked.insert(lsn, p);
                })
            }
        };
        match result {
            Ok(()) => assert!(!failed, "call {i} succeeded after an earlier failure"),
            Err(e) => {
                if failed {
                    assert!(e.is_poisoned(), "after a failure: {e}");
                }
                failed = true;
            }
        }
    }
    out
}

fn sweep(fault: Fault) -> (usize, usize) {
    let dry = SimFs::new();
    dry.record_ops();
    standard(&dry);
    let total = dry.op_log().len() as u64;
    let mut images = 0;
    for n in 1..=total {
        let fs = SimFs::new();
        fs.inject(FaultRule::nth_op(n, fault));
        let out = standard(&fs);
        fs.clear_faults();
        // Crash images of the moment after the failure: every acknowledged record is there.
        let crash: Vec<SimFs> = fs.crash_images(&CrashModel::torn_512(), 8, n).collect();
        for image in crash {
            reopen_and_check(image.shared(), opts(), &out)
                .unwrap_or_else(|e| panic!("{fault:?} at op {n}, crash image: {e}"));
            images += 1;
        }
        // Reopening on the live file system (a process restart) also recovers them.
        reopen_and_check(fs.shared(), opts(), &out)
            .unwrap_or_else(|e| panic!("{fault:?} at op {n}, live reopen: {e}"));
    }
    (total as usize, images)
}

#[test]
fn eio_at_every_operation_loses_nothing_acknowledged() {
    let (ops, images) = sweep(Fault::Eio);
    println!("EIO sweep: {ops} fault points, {images} crash images checked");
}

#[test]
fn enospc_at_every_operation_loses_nothing_acknowledged() {
    let (ops, images) = sweep(Fault::Enospc);
    println!("ENOSPC sweep: {ops} fault points, {images} crash images checked");
}

#[test]
fn a_short_write_at_every_operation_loses_nothing_acknowledged() {
    let (ops, images) = sweep(Fault::ShortWrite);
    println!("short write sweep: {ops} fault points, {images} crash images checked");
}

#[test]
fn a_failed_sync_under_concurrent_writers_acknowledges_nothing_unsynced() {
    for n in 1..12 {
        let fs = SimFs::new();
        let (wal, _) = Wal::open(fs.shared(), DIR, opts()).unwrap();
        let wal = Arc::new(wal);
        fs.inject(FaultRule::nth_of(OpKind::SyncData, n, Fault::Eio));
        let mut out = Outcome::default();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u8)
                .map(|t| {
                    let wal = Arc::clone(&wal);
                    s.spawn(move || {
                        let mut o = Outcome::default();
                        for i in 0..6 {
                            let p = payload(t, i, 0, 1, 30);
                            o.attempted.insert(p.clone());
                            match wal.append(&p) {
                                Ok(lsn) => {
                                    o.acked.insert(lsn, p);
                                }
                                Err(_) => break,
                            }
                        }
                        o
                    })
                })
                .collect();
            for h in hs {
                out.merge(h.join().unwrap());
            }
        });
        assert!(wal.is_poisoned(), "the failed sync poisoned the log");
        drop(wal);
        fs.clear_faults();
        let image = fs.crash_drop_unsynced();
        reopen_and_check(image.shared(), opts(), &out)
            .unwrap_or_else(|e| panic!("EIO on sync {n}: {e}"));
    }
}

#[test]
fn a_rotation_waits_for_a_failing_group_sync_and_seals_nothing_it_dropped() {
    let fs = SimFs::new();
    let out = rotation_beside_a_failed_group_sync(&fs).unwrap();
    fs.clear_faults();
    let mut images = 0;
    for image in fs.crash_images(&CrashModel::torn_512(), 64, 7) {
        reopen_and_check(image.shared(), opts(), &out).unwrap_or_else(|e| panic!("{e}"));
        images += 1;
    }
    println!("rotation beside a failed group sync: {images} crash images checked");
}

#[test]
fn a_power_cut_inside_recovery_leaves_a_log_the_next_recovery_accepts() {
    // Build a torn tail, then cut the power at the tail cut inside open.
    let fs = SimFs::new();
    let never = small_opts(SyncPolicy::Never);
    let (wal, _) = Wal::open(fs.shared(), DIR, never).unwrap();
    let mut out = Outcome::default();
    for i in 0..3 {
        let p = payload(0, i, 0, 1, 60);
        out.attempted.insert(p.clone());
        out.acked.insert(wal.append(&p).unwrap(), p);
    }
    wal.sync().unwrap();
    for i in 3..6 {
        let p = payload(0, i, 0, 1, 60);
        out.attempted.insert(p.clone());
        wal.append(&p).unwrap();
    }
    drop(wal);
    fs.cut_power();
    let mut checked = 0;
    for image in fs.crash_images(&CrashModel::torn_512(), 64, 9) {
        image.arm_fail_point(
            vellum_wal::fail_points::TAIL_CUT_BEFORE_SYNC,
            1,
            FailAction::PowerCut,
        );
        let opened = Wal::open(image.shared(), DIR, never);
        if image.fail_point_hits(vellum_wal::fail_points::TAIL_CUT_BEFORE_SYNC) == 0 {
            // No torn tail in this image.
            assert!(opened.is_ok());
            continue;
        }
        assert!(opened.is_err());
        drop(opened);
        image.clear_faults();
        for again in image.crash_images(&CrashModel::torn_512(), 16, 3) {
            reopen_and_check(again.shared(), opts(), &out).unwrap();
            checked += 1;
        }
    }
    println!("crash inside recovery: {checked} crash images checked");
    assert!(checked > 0, "some image had a torn tail to cut");
}
