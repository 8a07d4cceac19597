//! Byte-level damage, run on the simulated and on the real file system (properties
//! P4, P5, P6 and P11 of docs/PROPERTIES.md): a tail cut at every byte offset, a tail overwritten with zeros or
//! garbage, every bit of a middle record flipped, a missing segment, a bad header, stale
//! frames in preallocated space. Outcomes per recovery mode.

mod common;

use std::path::PathBuf;

use common::*;
use vellum_fs::SimFs;
use vellum_wal::{Error, RecoveryMode, SyncPolicy, Wal, WalOptions};

const LEN: usize = 50;
/// Header, then frames of 32 + 50 bytes padded to 88.
const FRAME: usize = 88;
const PAYLOAD_END: usize = 32 + LEN;

fn frame_start(i: usize) -> usize {
    32 + i * FRAME
}

fn opts() -> WalOptions {
    small_opts(SyncPolicy::Always)
}

fn write(disk: &dyn Disk, opts: WalOptions, n: u32) -> Vec<(u64, Vec<u8>)> {
    let (wal, _) = Wal::open(disk.fs(), disk.dir(), opts).unwrap();
    let out: Vec<_> = (0..n)
        .map(|i| {
            let p = payload(0, i, 0, 1, LEN);
            (wal.append(&p).unwrap(), p)
        })
        .collect();
    drop(wal);
    out
}

fn open(disk: &dyn Disk, mode: RecoveryMode) -> Result<(Wal, vellum_wal::Recovery), Error> {
    Wal::open(disk.fs(), disk.dir(), with_mode(opts(), mode))
}

fn torn_tail_at_every_offset(disk: &dyn Disk, step: usize) -> usize {
    let acked = write(disk, opts(), 6);
    let seg = segments(disk)[0].clone();
    let orig = disk.read(&seg);
    let mut cases = 0;
    for zeros in [true, false] {
        let mut cut = frame_start(3);
        while cut <= frame_start(6) {
            disk.tamper(&seg, &mut |b| {
                *b = orig[..cut].to_vec();
                if zeros {
                    b.resize(orig.len(), 0);
                }
            });
            // Frames whose payload ends by `cut` are whole; the next one is torn unless the
            // bytes of it that remain are all zero.
            let whole = (0..6)
                .filter(|i| frame_start(*i) + PAYLOAD_END <= cut)
                .count();
            let torn_from = frame_start(whole);
            let torn = whole < 6 && orig[torn_from..cut.max(torn_from)].iter().any(|&x| x != 0);
            let expect = &acked[..whole];

            let abs = open(disk, RecoveryMode::AbsoluteConsistency);
            match (&abs, torn) {
                (Err(Error::TornTail { offset, lsn, .. }), true) => {
                    assert_eq!((*offset, *lsn), (torn_from as u64, whole as u64 + 1));
                }
                (Ok(_), false) => {}
                _ => panic!("cut {cut} (zeros {zeros}): AbsoluteConsistency gave {abs:?}"),
            }
            drop(abs);
            let (wal, rec) = open(disk, RecoveryMode::Salvage).unwrap();
            assert_eq!(read_all(&wal).unwrap(), expect, "salvage at cut {cut}");
            assert!(wal.append(b"x").is_err(), "salvage is read-only");
            drop(wal);
            assert_eq!(rec.tail_cut.is_some(), torn);

            let (wal, rec) = open(disk, RecoveryMode::TolerateTornTail).unwrap();
            assert_eq!(rec.tail_cut.is_some(), torn, "cut {cut} zeros {zeros}");
            assert_eq!(read_all(&wal).unwrap(), expect, "cut {cut}");
            drop(wal);
            let (wal, rec) = open(disk, RecoveryMode::TolerateTornTail).unwrap();
            assert!(rec.tail_cut.is_none(), "the first open cut the tail");
            let lsn = wal.append(b"after the cut").unwrap();
            assert_eq!(lsn, whole as u64 + 1);
            drop(wal);
            let (wal, rec) = open(disk, RecoveryMode::AbsoluteConsistency).unwrap();
            assert!(rec.tail_cut.is_none());
            let got = read_all(&wal).unwrap();
            assert_eq!(&got[..whole], expect);
            assert_eq!(got[whole], (lsn, b"after the cut".to_vec()));
            cases += 1;
            cut += step;
        }
    }
    cases
}

/// Opens in both refusing modes; each must be `Corruption` naming the segment `name`, the
/// frame's `offset` and `lsn`. Returns the message.
fn refused_as_corruption(
    disk: &dyn Disk,
    name: &str,
    offset: usize,
    lsn: u64,
    case: &str,
) -> String {
    let mut text = String::new();
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        match open(disk, mode) {
            Err(e @ Error::Corruption { .. }) => {
                text = e.to_string();
                assert!(text.contains(name), "{text}");
                assert!(text.contains(&format!("offset {offset}")), "{text}");
                assert!(text.contains(&format!("LSN {lsn}")), "{text}");
            }
            other => panic!("{case}, {mode:?}: expected corruption, got {other:?}"),
        }
    }
    text
}

fn bit_flips_in_a_middle_record(disk: &dyn Disk, step: usize) -> usize {
    let acked = write(disk, opts(), 8);
    let seg = segments(disk)[0].clone();
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let start = frame_start(3);
    let mut flips = 0;
    for bit in (0..PAYLOAD_END * 8).step_by(step) {
        let byte = start + bit / 8;
        disk.tamper(&seg, &mut |b| b[byte] ^= 1 << (bit % 8));
        refused_as_corruption(disk, &name, start, 4, &format!("bit {bit}"));
        let (wal, rec) = open(disk, RecoveryMode::Salvage).unwrap();
        assert_eq!(rec.damage.len(), 1, "bit {bit}");
        assert_eq!((rec.damage[0].lsn, rec.damage[0].offset), (4, start as u64));
        let got = read_all(&wal).unwrap();
        let want: Vec<_> = acked.iter().filter(|(l, _)| *l != 4).cloned().collect();
        assert_eq!(got, want, "salvage keeps the rest (bit {bit})");
        drop(wal);
        disk.tamper(&seg, &mut |b| b[byte] ^= 1 << (bit % 8));
        flips += 1;
    }
    // Restored: opens cleanly.
    let (wal, _) = open(disk, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(read_all(&wal).unwrap(), acked);
    flips
}

fn tail_overwritten(disk: &dyn Disk, garbage: bool) {
    let acked = write(disk, opts(), 6);
    let seg = segments(disk)[0].clone();
    disk.tamper(&seg, &mut |b| {
        let mut x = 0x9E37_79B9u32;
        for v in &mut b[frame_start(4)..] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *v = if garbage { (x as u8) | 1 } else { 0 };
        }
    });
    let abs = open(disk, RecoveryMode::AbsoluteConsistency);
    assert_eq!(abs.is_err(), garbage, "{abs:?}");
    drop(abs);
    let (wal, rec) = open(disk, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(rec.tail_cut.is_some(), garbage);
    assert_eq!(read_all(&wal).unwrap(), &acked[..4]);
    let lsn = wal.append(b"again").unwrap();
    assert_eq!(lsn, 5);
    drop(wal);
    let (wal, _) = open(disk, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(read_all(&wal).unwrap().len(), 5);
}

/// Three or more segments; returns (acked, segment paths).
fn multi_segment(disk: &dyn Disk) -> (Vec<(u64, Vec<u8>)>, Vec<PathBuf>) {
    let acked = write(disk, opts(), 30);
    let segs = segments(disk);
    assert!(segs.len() >= 3, "{segs:?}");
    (acked, segs)
}

fn missing_middle_segment_is_a_hole(disk: &dyn Disk) {
    let (acked, segs) = multi_segment(disk);
    disk.fs().remove_file(&segs[1]).unwrap();
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        match open(disk, mode) {
            Err(Error::Hole { before, after, .. }) => {
                assert_eq!((before, after), (segs[0].clone(), segs[2].clone()));
            }
            other => panic!("{mode:?}: expected a hole, got {other:?}"),
        }
    }
    let (wal, rec) = open(disk, RecoveryMode::Salvage).unwrap();
    assert_eq!(rec.damage.len(), 1);
    let got = read_all(&wal).unwrap();
    assert!(got.len() < acked.len() && got[0] == acked[0]);
    assert_eq!(got.last(), acked.last());
}

fn corruption_at_the_end_of_a_sealed_segment(disk: &dyn Disk) {
    let (acked, segs) = multi_segment(disk);
    let (wal, rec) = open(disk, RecoveryMode::TolerateTornTail).unwrap();
    drop(wal);
    let end = rec.segments[0].valid_bytes as usize;
    // The last byte of the last frame of the first segment (its own tail).
    disk.tamper(&segs[0], &mut |b| b[end - 10] ^= 0x40);
    match open(disk, RecoveryMode::TolerateTornTail) {
        Err(Error::Corruption { segment, lsn, .. }) => {
            assert_eq!(segment, segs[0]);
            assert_eq!(lsn, rec.segments[0].last_lsn);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let (wal, rec) = open(disk, RecoveryMode::Salvage).unwrap();
    assert_eq!(rec.damage.len(), 2, "{:?}", rec.damage); // the frame, then the LSN gap
    assert_eq!(read_all(&wal).unwrap().len(), acked.len() - 1);
}

fn bad_segment_header(disk: &dyn Disk) {
    let (_, segs) = multi_segment(disk);
    disk.tamper(&segs[0], &mut |b| b[21] ^= 1);
    assert!(matches!(
        open(disk, RecoveryMode::TolerateTornTail),
        Err(Error::BadSegmentHeader { .. })
    ));
    let (_, rec) = open(disk, RecoveryMode::Salvage).unwrap();
    assert_eq!(rec.damage.len(), 1);
}

/// Property P6: valid frames of another segment (another salt) copied into the preallocated
/// space after the last frame never validate.
fn stale_frames_never_validate(disk: &dyn Disk) {
    let (acked, segs) = multi_segment(disk);
    let (wal, rec) = open(disk, RecoveryMode::TolerateTornTail).unwrap();
    drop(wal);
    let donor = disk.read(&segs[0]);
    let last = rec.segments.last().unwrap().clone();
    let at = last.valid_bytes as usize;
    let stale = donor[32..rec.segments[0].valid_bytes as usize].to_vec();
    disk.tamper(&last.path, &mut |b| {
        let n = stale.len().min(b.len() - at);
        b[at..at + n].copy_from_slice(&stale[..n]);
    });
    let (wal, rec2) = open(disk, RecoveryMode::TolerateTornTail).unwrap();
    assert!(
        rec2.tail_cut.is_some(),
        "stale bytes are a torn tail, not records"
    );
    assert_eq!(rec2.tail_cut.unwrap().dropped_frames, 0);
    assert_eq!(read_all(&wal).unwrap(), acked);
}

#[test]
fn a_torn_tail_at_every_byte_offset_is_cut_and_appending_works_sim() {
    let n = torn_tail_at_every_offset(&SimFs::new(), 1);
    println!("torn tail sweep (sim): {n} cut offsets");
}

#[test]
fn a_torn_tail_at_every_byte_offset_is_cut_and_appending_works_real() {
    let n = torn_tail_at_every_offset(&RealDisk::new(), 7);
    println!("torn tail sweep (real fs): {n} cut offsets");
}

#[test]
fn any_flipped_bit_of_a_middle_record_is_reported_not_truncated_sim() {
    bit_flips_in_a_middle_record(&SimFs::new(), 1);
}

#[test]
fn any_flipped_bit_of_a_middle_record_is_reported_not_truncated_real() {
    bit_flips_in_a_middle_record(&RealDisk::new(), 5);
}

#[test]
fn a_tail_overwritten_with_garbage_or_zeros_is_cut() {
    tail_overwritten(&SimFs::new(), true);
    tail_overwritten(&SimFs::new(), false);
    tail_overwritten(&RealDisk::new(), true);
    tail_overwritten(&RealDisk::new(), false);
}

#[test]
fn a_missing_middle_segment_is_reported_as_a_hole() {
    missing_middle_segment_is_a_hole(&SimFs::new());
    missing_middle_segment_is_a_hole(&RealDisk::new());
}

#[test]
fn damage_at_the_end_of_a_sealed_segment_is_corruption() {
    corruption_at_the_end_of_a_sealed_segment(&SimFs::new());
    corruption_at_the_end_of_a_sealed_segment(&RealDisk::new());
}

#[test]
fn a_bad_segment_header_is_reported() {
    bad_segment_header(&SimFs::new());
    bad_segment_header(&RealDisk::new());
}

#[test]
fn stale_frames_in_preallocated_space_never_validate() {
    stale_frames_never_validate(&SimFs::new());
    stale_frames_never_validate(&RealDisk::new());
}

/// The last frame reached the disk whole and was damaged afterwards (bit rot, a stray
/// write): no crash leaves that, so it is refused with its segment, offset and LSN instead
/// of being cut as a torn tail (which would silently drop an acknowledged record).
fn damage_to_a_whole_last_frame(disk: &dyn Disk, step: usize) -> usize {
    let acked = write(disk, opts(), 6);
    let seg = segments(disk)[0].clone();
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let start = frame_start(5);
    let orig = disk.read(&seg);
    // The checksum and every payload byte (header fields are checked on their own: a bad
    // kind or length there reads as a torn frame, which is what a crash can also leave).
    let bytes: Vec<usize> = (0..4).chain(32..PAYLOAD_END).step_by(step).collect();
    for &at in &bytes {
        disk.tamper(&seg, &mut |b| b[start + at] ^= 0x5A);
        let text = refused_as_corruption(disk, &name, start, 6, &format!("byte {at}"));
        assert!(text.contains("damaged after it was written"), "{text}");
        let mut damaged = orig.clone();
        damaged[start + at] ^= 0x5A;
        assert_eq!(
            disk.read(&seg),
            damaged,
            "a refused open changed the segment"
        );
        let (wal, rec) = open(disk, RecoveryMode::Salvage).unwrap();
        assert_eq!(rec.damage.len(), 1, "byte {at}");
        assert_eq!((rec.damage[0].lsn, rec.damage[0].offset), (6, start as u64));
        assert_eq!(read_all(&wal).unwrap(), &acked[..5]);
        drop(wal);
        disk.tamper(&seg, &mut |b| b[start + at] ^= 0x5A);
    }
    let (wal, rec) = open(disk, RecoveryMode::AbsoluteConsistency).unwrap();
    assert!(rec.tail_cut.is_none());
    assert_eq!(read_all(&wal).unwrap(), acked);
    bytes.len()
}

#[test]
fn damage_to_a_last_frame_that_reached_the_disk_whole_is_refused_not_cut_sim() {
    let n = damage_to_a_whole_last_frame(&SimFs::new(), 1);
    println!("damaged last frame (sim): {n} bytes");
}

#[test]
fn damage_to_a_last_frame_that_reached_the_disk_whole_is_refused_not_cut_real() {
    let n = damage_to_a_whole_last_frame(&RealDisk::new(), 5);
    println!("damaged last frame (real fs): {n} bytes");
}

/// Every state a crash can leave the last frame in is still a torn tail, cut at open: a
/// prefix of it (a short write, or in-order writeback, at any byte), or any one of its
/// sectors missing (sectors reach the disk in any order). The frame spans several sectors
/// and starts inside one.
fn every_crash_tear_of_a_long_last_frame(disk: &dyn Disk, step: usize) -> usize {
    let o = WalOptions {
        segment_size_bytes: 8192,
        max_record_bytes: 2048,
        ..opts()
    };
    let (wal, _) = Wal::open(disk.fs(), disk.dir(), o).unwrap();
    let mut acked = Vec::new();
    for i in 0..3 {
        let p = payload(0, i, 0, 1, 40);
        acked.push((wal.append(&p).unwrap(), p));
    }
    let long = payload(0, 9, 0, 1, 1500);
    let last = wal.append(&long).unwrap();
    drop(wal);
    let seg = segments(disk)[0].clone();
    let orig = disk.read(&seg);
    let start = 32 + 3 * 80; // three frames of 32 + 40 + end mark, padded to 80
    let end = start + (32 + 1500 + 1_usize).div_ceil(8) * 8; // padded, the mark last
    assert_eq!(orig[end - 1], vellum_wal::FRAME_END_MARK);
    // Each tear is the byte range that never arrived (and reads as zeros).
    let mut tears: Vec<(usize, usize)> = Vec::new();
    // (Keeping nothing of it is a clean end, and keeping its payload whole leaves a valid
    // frame: neither is a tear.)
    for keep in (start + 1..start + 32 + 1500).step_by(step) {
        tears.push((keep, end));
    }
    let mut sector = start / 512 * 512;
    while sector < end {
        tears.push((sector.max(start), (sector + 512).min(end)));
        sector += 512;
    }
    for (i, &(a, z)) in tears.iter().enumerate() {
        disk.tamper(&seg, &mut |b| {
            b.clone_from(&orig);
            b[a..z].fill(0);
        });
        let (wal, rec) =
            Wal::open(disk.fs(), disk.dir(), o).unwrap_or_else(|e| panic!("tear {i} refused: {e}"));
        if orig[start..a].iter().all(|&b| b == 0) && z == end {
            // What the tear kept of the frame is zeros (its first bytes depend on the
            // segment's random salt, about one run in 400): the same as keeping nothing, a
            // clean end with nothing to cut.
            assert!(rec.tail_cut.is_none(), "tear {i}: a clean end was cut");
            assert_eq!(read_all(&wal).unwrap(), acked, "tear {i}");
            continue;
        }
        let cut = rec.tail_cut.unwrap_or_else(|| panic!("tear {i} not cut"));
        assert_eq!((cut.lsn, cut.offset), (last, start as u64), "tear {i}");
        assert_eq!(read_all(&wal).unwrap(), acked, "tear {i}");
    }
    tears.len()
}

#[test]
fn every_tear_a_crash_can_leave_in_a_long_last_frame_is_cut_not_refused_sim() {
    let n = every_crash_tear_of_a_long_last_frame(&SimFs::new(), 1);
    println!("crash tears of the last frame (sim): {n}");
}

#[test]
fn every_tear_a_crash_can_leave_in_a_long_last_frame_is_cut_not_refused_real() {
    let n = every_crash_tear_of_a_long_last_frame(&RealDisk::new(), 13);
    println!("crash tears of the last frame (real fs): {n}");
}

/// A crash can lose the last frame's end mark while its payload arrived (the mark sits in
/// another sector, or past the end of the file): the frame is valid, and opening puts the
/// mark back, so damage to that frame later is still refused rather than cut as a tear.
fn a_lost_end_mark_is_restored(disk: &dyn Disk, truncate: bool) {
    let acked = write(disk, opts(), 6);
    let seg = segments(disk)[0].clone();
    let end = frame_start(6);
    disk.tamper(&seg, &mut |b| {
        if truncate {
            b.truncate(end - 3);
        } else {
            b[end - 1] = 0;
        }
    });
    let (wal, rec) = open(disk, RecoveryMode::TolerateTornTail).unwrap();
    assert!(rec.tail_cut.is_none(), "a valid frame was cut");
    assert_eq!(read_all(&wal).unwrap(), acked);
    drop(wal);
    assert_eq!(disk.read(&seg)[end - 1], vellum_wal::FRAME_END_MARK);
    disk.tamper(&seg, &mut |b| b[frame_start(5) + 40] ^= 0x5A);
    assert!(matches!(
        open(disk, RecoveryMode::TolerateTornTail),
        Err(Error::Corruption { lsn: 6, .. })
    ));
}

#[test]
fn a_lost_end_mark_is_restored_at_open_sim() {
    a_lost_end_mark_is_restored(&SimFs::new(), false);
    a_lost_end_mark_is_restored(&SimFs::new(), true);
}

#[test]
fn a_lost_end_mark_is_restored_at_open_real() {
    a_lost_end_mark_is_restored(&RealDisk::new(), false);
    a_lost_end_mark_is_restored(&RealDisk::new(), true);
}
