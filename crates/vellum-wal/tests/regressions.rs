//! Regression tests for the seed systems' failures (regressions R1–R3 and R5 of docs/PROPERTIES.md)
//! and for the lessons learned building this crate.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use vellum_fs::{CrashModel, FailAction, Fault, FaultRule, Fs, OpKind, SimFs};
use vellum_wal::{SyncPolicy, Wal, WalOptions};

fn records(fs: &SimFs, opts: WalOptions) -> Vec<(u64, Vec<u8>)> {
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).expect("open");
    read_all(&wal).expect("read")
}

/// Regression R1: a torn tail was skipped once but not cut off, the next append
/// landed after the garbage, and every later recovery failed. Here the tail holds a stale
/// but valid frame right where the new append's successor would be: if the cut were not
/// physical and durable, it would come back after the new record.
#[test]
fn torn_tail_is_cut_durably_before_the_next_append() {
    let opts = small_opts(SyncPolicy::Never);
    let fs = SimFs::new();
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    for i in 0..3 {
        wal.append(&payload(0, i, 0, 1, 60)).unwrap();
    }
    wal.sync().unwrap();
    // Two more, both reach the disk, then the first of them is torn as a crash tears a
    // write: its tail never arrived and reads as the zeros that were there before.
    let a = wal.append(&payload(0, 3, 0, 1, 60)).unwrap();
    let b = wal.append(&payload(0, 4, 0, 1, 60)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let seg = segments(&fs)[0].clone();
    let frame_a = 32 + 3 * 96; // header + three frames of 32 + 60 + end mark, padded to 96
    fs.tamper(&seg, |b| b[frame_a + 40..frame_a + 96].fill(0))
        .unwrap();

    // `a` was synced by the second sync, but `b` (written before that sync) carries a
    // synced LSN below `a`, so nothing proves `a` durable: a torn tail, cut at `a`.
    let (wal, rec) = Wal::open(fs.shared(), DIR, opts).unwrap();
    let cut = rec.tail_cut.expect("torn tail reported");
    assert_eq!(
        (cut.lsn, cut.offset, cut.dropped_frames),
        (a, frame_a as u64, 1)
    );
    assert_eq!(rec.last_lsn, a - 1);
    // A new record of the same size takes LSN `a`; the stale `b` sits right after it.
    let fresh = payload(9, 0, 0, 1, 60);
    assert_eq!(wal.append(&fresh).unwrap(), a);
    drop(wal);
    fs.cut_power();
    let mut n = 0;
    for image in fs.crash_images(&CrashModel::any_subset(), 64, 1) {
        let got = records(&image, opts);
        assert!(
            got.len() <= a as usize,
            "stale LSN {b} came back after the cut: {got:?}"
        );
        if got.len() == a as usize {
            assert_eq!(got.last().unwrap().1, fresh);
        }
        // And the next recovery after that works too.
        assert_eq!(records(&image, opts), got);
        n += 1;
    }
    println!("regression R1: {n} crash images checked");
}

/// Regression R2: sequence numbers lived in a lazily saved manifest and were
/// reused after a crash. LSNs here live in the log itself.
#[test]
fn lsns_continue_after_a_crash_without_any_explicit_sync() {
    let fs = SimFs::new();
    let opts = small_opts(SyncPolicy::Always);
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    let mut last = 0;
    for i in 0..150 {
        last = wal.append(&payload(0, i, 0, 1, 8)).unwrap();
    }
    assert_eq!(last, 150);
    drop(wal);
    fs.cut_power();
    let image = fs.crash_drop_unsynced();
    let (wal, rec) = Wal::open(image.shared(), DIR, opts).unwrap();
    assert_eq!(rec.last_lsn, 150);
    assert_eq!(wal.append(b"next").unwrap(), 151);
}

/// Regression R3: acknowledged writes sat in a user-space buffer. Here an
/// append under `Always` returns only after `sync_data`, and under `Never` the bytes have at
/// least been handed to the file system (a process crash loses nothing).
#[test]
fn nothing_acknowledged_sits_in_a_user_space_buffer() {
    let fs = SimFs::new();
    let (wal, _) = Wal::open(fs.shared(), DIR, small_opts(SyncPolicy::Always)).unwrap();
    for i in 0..20 {
        let lsn = wal.append(&payload(0, i, 0, 1, 30)).unwrap();
        // Power cut right after the acknowledgement: the record is on disk.
        let image = fs.crash_drop_unsynced();
        let (w2, _) = Wal::open(image.shared(), DIR, small_opts(SyncPolicy::Always)).unwrap();
        assert_eq!(w2.stats().last_lsn, lsn);
    }
    drop(wal);

    let fs = SimFs::new();
    let (wal, _) = Wal::open(fs.shared(), DIR, small_opts(SyncPolicy::Never)).unwrap();
    let lsn = wal.append(b"in the page cache").unwrap();
    // Process crash (no power loss): the live file system still has it.
    std::mem::forget(wal);
    let (w2, _) = Wal::open(fs.shared(), DIR, small_opts(SyncPolicy::Never)).unwrap();
    assert_eq!(w2.stats().last_lsn, lsn);
}

/// Regression R5: the advertised group commit never called fsync. Here many
/// concurrent `Always` appenders share syncs, every acknowledged record is durable, and the
/// number of syncs is smaller than the number of appends.
#[test]
fn group_commit_really_syncs_and_shares_syncs() {
    let fs = SimFs::new();
    let opts = WalOptions {
        segment_size_bytes: 1 << 20,
        ..small_opts(SyncPolicy::Always)
    };
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    let wal = Arc::new(wal);
    let before = fs.stats().file_syncs;
    std::thread::scope(|s| {
        for t in 0..16u8 {
            let wal = Arc::clone(&wal);
            s.spawn(move || {
                for i in 0..50 {
                    wal.append(&payload(t, i, 0, 1, 20)).unwrap();
                }
            });
        }
    });
    let syncs = fs.stats().file_syncs - before;
    let stats = wal.stats();
    assert_eq!(stats.last_lsn, 800);
    assert_eq!(stats.synced_lsn, 800);
    assert!((1..=800).contains(&syncs), "{syncs} syncs");
    println!("group commit: 800 appends from 16 threads took {syncs} syncs");
    let image = fs.crash_drop_unsynced();
    let got = records(&image, opts);
    assert_eq!(got.len(), 800, "every acknowledged record is durable");
}

/// Group commit must wait for a sync that started after the frame was written: a sync
/// failing under a waiting appender fails that appender (and poisons the log), never
/// acknowledges it.
#[test]
fn a_failed_group_sync_fails_every_waiter_and_poisons_the_log() {
    let fs = SimFs::new();
    let (wal, _) = Wal::open(fs.shared(), DIR, small_opts(SyncPolicy::Always)).unwrap();
    wal.append(b"durable").unwrap();
    fs.inject(FaultRule::nth_of(OpKind::SyncData, 1, Fault::Eio));
    let err = wal.append(b"never acknowledged").unwrap_err();
    assert!(err.to_string().contains("sync_data"), "{err}");
    assert!(wal.is_poisoned());
    let again = wal.append(b"after").unwrap_err();
    assert!(again.is_poisoned(), "{again}");
    assert!(again.to_string().contains("reopen"), "{again}");
    assert!(wal.sync().unwrap_err().is_poisoned());
    // No retry: the failed sync was the last sync_data call.
    let syncs = fs.stats().file_syncs;
    let _ = wal.sync();
    assert_eq!(fs.stats().file_syncs, syncs);
    drop(wal);
    fs.clear_faults();
    fs.cut_power();
    let image = fs.crash_drop_unsynced();
    let got = records(&image, small_opts(SyncPolicy::Always));
    assert_eq!(got, vec![(1, b"durable".to_vec())]);
}

/// Reopening after a process crash (no power loss) must make the recovered tail durable
/// before new frames claim it synced; otherwise a later power loss could tear the old tail
/// under a new frame that vouches for it, which recovery would report as corruption.
#[test]
fn reopening_without_a_crash_syncs_the_recovered_tail_before_vouching_for_it() {
    let opts = small_opts(SyncPolicy::Never);
    let fs = SimFs::new();
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    for i in 0..4 {
        wal.append(&payload(0, i, 0, 1, 50)).unwrap();
    }
    drop(wal); // process exit: nothing synced
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    wal.append(&payload(1, 0, 0, 1, 50)).unwrap();
    drop(wal);
    fs.cut_power();
    let mut n = 0;
    for image in fs.crash_images(&CrashModel::torn_512(), 256, 2) {
        let (wal, _) = Wal::open(image.shared(), DIR, opts)
            .unwrap_or_else(|e| panic!("image {n}: a legitimate crash was refused: {e}"));
        assert!(read_all(&wal).unwrap().len() >= 4);
        n += 1;
    }
    println!("reopen without crash: {n} crash images checked");
}

/// A segment's creation is interrupted at the rename: the temporary file is removed at the
/// next open and the log works on.
#[test]
fn an_interrupted_segment_creation_leaves_nothing_behind() {
    let fs = SimFs::new();
    let opts = small_opts(SyncPolicy::Always);
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    fs.arm_fail_point(
        vellum_wal::fail_points::SEGMENT_BEFORE_RENAME,
        1,
        FailAction::PowerCut,
    );
    let mut acked = Vec::new();
    for i in 0..40 {
        match wal.append(&payload(0, i, 0, 1, 120)) {
            Ok(lsn) => acked.push(lsn),
            Err(_) => break,
        }
    }
    assert_eq!(
        fs.fail_point_hits(vellum_wal::fail_points::SEGMENT_BEFORE_RENAME),
        1
    );
    drop(wal);
    for image in fs.crash_images(&CrashModel::torn_512(), 32, 4) {
        let (wal, rec) = Wal::open(image.shared(), DIR, opts).unwrap();
        assert!(rec.last_lsn >= *acked.last().unwrap());
        let names = image.list_dir(Path::new(DIR)).unwrap();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        wal.append(b"more").unwrap();
    }
}

/// The group-commit and rotation scenario on the real file system: every acknowledged
/// record is read back after reopening, in LSN order, batches whole.
#[test]
fn concurrent_writers_on_the_real_file_system_read_back_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let opts = WalOptions {
        segment_size_bytes: 4 << 10,
        ..small_opts(SyncPolicy::Always)
    };
    let (wal, _) = Wal::open(vellum_fs::RealFs::shared(), &dir, opts).unwrap();
    let wal = Arc::new(wal);
    let mut out = Outcome::default();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u8)
            .map(|t| {
                let wal = Arc::clone(&wal);
                s.spawn(move || {
                    let mut o = Outcome::default();
                    for i in 0..25u32 {
                        if i % 5 == 4 {
                            let ps: Vec<Vec<u8>> =
                                (0..3).map(|k| payload(t, i, k, 3, 30)).collect();
                            o.attempted.extend(ps.iter().cloned());
                            let lsns = wal.append_batch(&ps).unwrap();
                            o.acked.extend(lsns.zip(ps));
                        } else {
                            let p = payload(t, i, 0, 1, 20 + usize::from(t) * 20);
                            o.attempted.insert(p.clone());
                            o.acked.insert(wal.append(&p).unwrap(), p);
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
    assert!(wal.stats().segments > 1, "the scenario rotates");
    drop(wal);
    let (wal, rec) = Wal::open(vellum_fs::RealFs::shared(), &dir, opts).unwrap();
    assert!(rec.tail_cut.is_none());
    let got = read_all(&wal).unwrap();
    check_records(&got, &out).unwrap();
    assert_eq!(got.len(), out.acked.len());
    let removed = wal.truncate_before(got[got.len() / 2].0).unwrap();
    assert!(removed > 0);
    drop(wal);
    let (wal, _) = Wal::open(vellum_fs::RealFs::shared(), &dir, opts).unwrap();
    let after = read_all(&wal).unwrap();
    assert_eq!(after.last(), got.last());
    assert!(after[0].0 <= got[got.len() / 2].0);
}

/// `Interval` really syncs in the background: once the synced LSN covers a record (polled,
/// no timing assumed), a power cut keeps it.
#[test]
fn the_interval_policy_syncs_in_the_background() {
    let fs = SimFs::new();
    let opts = small_opts(SyncPolicy::Interval(std::time::Duration::from_millis(2)));
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    let lsn = wal.append(b"synced by the background thread").unwrap();
    let mut waited = 0;
    while wal.stats().synced_lsn < lsn {
        std::thread::sleep(std::time::Duration::from_millis(5));
        waited += 1;
        assert!(waited < 12_000, "the background sync never ran");
    }
    let image = fs.crash_drop_unsynced();
    assert_eq!(
        records(&image, opts),
        vec![(lsn, b"synced by the background thread".to_vec())]
    );
    drop(wal);
}

/// An empty record is a record: acknowledged with an LSN, so read back with that LSN, alone
/// in its frame or inside a batch, before and after a reopen.
fn empty_records_are_read_back(disk: &dyn Disk) {
    let opts = small_opts(SyncPolicy::Always);
    let (wal, _) = Wal::open(disk.fs(), disk.dir(), opts).unwrap();
    assert_eq!(wal.append(b"first").unwrap(), 1);
    assert_eq!(wal.append(b"").unwrap(), 2);
    assert_eq!(wal.append_batch(&[&b"x"[..], b"", b"y"]).unwrap(), 3..=5);
    assert_eq!(wal.append_batch(&[&b""[..], b""]).unwrap(), 6..=7);
    assert_eq!(wal.append(b"last").unwrap(), 8);
    let expect: Vec<(u64, Vec<u8>)> = [&b"first"[..], b"", b"x", b"", b"y", b"", b"", b"last"]
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u64 + 1, d.to_vec()))
        .collect();
    assert_eq!(read_all(&wal).unwrap(), expect, "before reopen");
    let from_two: Vec<u64> = wal.iter_from(2).unwrap().map(|r| r.unwrap().lsn).collect();
    assert_eq!(from_two, (2..=8).collect::<Vec<_>>());
    drop(wal);
    let (wal, rec) = Wal::open(disk.fs(), disk.dir(), opts).unwrap();
    assert_eq!(rec.last_lsn, 8);
    assert_eq!(read_all(&wal).unwrap(), expect, "after reopen");
}

#[test]
fn empty_records_are_read_back_sim() {
    empty_records_are_read_back(&SimFs::new());
}

#[test]
fn empty_records_are_read_back_real() {
    empty_records_are_read_back(&RealDisk::new());
}
