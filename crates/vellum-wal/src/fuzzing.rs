//! Fuzz target logic, kept in the crate so that `cargo test` replays the corpora
//! (`tests/fuzz_corpus.rs`) and `cargo fuzz` runs the same code (`fuzz/fuzz_targets/wal_*`).
//! Not part of the public API. Each function panics when it finds a bug.
//!
//! ```sh
//! cargo install cargo-fuzz            # once; works on the stable toolchain with:
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run wal_segment_bytes -- -max_total_time=300
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run wal_model_ops -- -max_len=512
//! cargo test -p vellum-wal --test fuzz_corpus   # replay fuzz/corpus/wal_* as tests
//! ```
//!
//! A crashing input lands in `fuzz/artifacts/<target>/`; copy it into
//! `fuzz/corpus/<target>/` (named for what it found) so it replays forever.

use std::path::Path;

use vellum_fs::{CrashModel, Fs, SimFs};

use crate::format::{
    FRAME_HEADER_BYTES, FRAME_KIND_OFFSET, FrameHeader, SEGMENT_HEADER_BYTES, SegmentHeader,
    frame_crc, segment_name,
};
use crate::{Error, RecoveryMode, SyncPolicy, Wal, WalOptions};

const DIR: &str = "/fuzz/wal";

fn read_all(wal: &Wal) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let first = wal.stats().first_lsn;
    wal.iter_from(first)?
        .map(|r| r.map(|r| (r.lsn, r.data)))
        .collect()
}

/// Rewrites the header CRC and, walking frame by frame, every frame CRC of a segment, so the
/// fuzzer gets past the checksums to the structure behind them.
fn fix_checksums(seg: &mut [u8]) {
    if seg.len() < SEGMENT_HEADER_BYTES {
        return;
    }
    let crc = crc32fast::hash(&seg[..SEGMENT_HEADER_BYTES - 4]);
    seg[SEGMENT_HEADER_BYTES - 4..SEGMENT_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    let Ok(h) = SegmentHeader::decode(seg) else {
        return;
    };
    let mut pos = SEGMENT_HEADER_BYTES;
    while pos + FRAME_HEADER_BYTES <= seg.len() {
        let Ok(f) = FrameHeader::decode(&seg[pos..]) else {
            return;
        };
        let end = pos + FRAME_HEADER_BYTES + f.payload_len as usize;
        if end > seg.len() {
            return;
        }
        let crc = frame_crc(
            h.salt,
            &seg[pos + FRAME_KIND_OFFSET..pos + FRAME_HEADER_BYTES],
            &seg[pos + FRAME_HEADER_BYTES..end],
        );
        seg[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos += f.frame_len(h.version) as usize;
    }
}

/// Arbitrary bytes as one to three segment files: open in every recovery mode and read
/// everything back. Never a panic, a hang or an unbounded allocation; what opens must read
/// back in LSN order, reopen the same, and accept appends (default mode).
///
/// Input: byte 0 = flags (bits 0–1: segments, bit 2: fix checksums, bit 3: small max
/// record), bytes 1–2 = split points, the rest = the segment bytes.
pub fn segment_bytes(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (splits, body) = rest.split_at(rest.len().min(2));
    let parts = usize::from(flags & 3).max(1);
    let mut cuts = vec![0usize];
    for i in 1..parts {
        let s = splits.get(i - 1).copied().unwrap_or(0) as usize;
        cuts.push((body.len() * s / 256).max(*cuts.last().unwrap_or(&0)));
    }
    cuts.push(body.len());
    let fs = SimFs::new();
    let dir = Path::new(DIR);
    if fs.create_dir_all(dir).is_err() {
        return;
    }
    for (i, w) in cuts.windows(2).enumerate() {
        let mut seg = body[w[0]..w[1]].to_vec();
        if flags & 4 != 0 {
            fix_checksums(&mut seg);
        }
        // Name it by its header's LSN when it has one, so name checks pass too.
        let lsn = SegmentHeader::decode(&seg).map_or(1 + i as u64 * 1000, |h| h.first_lsn);
        let path = dir.join(segment_name(lsn));
        let Ok(file) = fs.create(&path) else { return };
        if file.write_at(&seg, 0).is_err() {
            return;
        }
    }
    let opts = WalOptions {
        segment_size_bytes: 1 << 16,
        max_record_bytes: if flags & 8 != 0 { 64 } else { 4096 },
        preallocate: false,
        ..WalOptions::default()
    };
    for mode in [
        RecoveryMode::Salvage,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateTornTail,
    ] {
        let o = WalOptions {
            recovery_mode: mode,
            ..opts
        };
        let Ok((wal, rec)) = Wal::open(fs.shared(), DIR, o) else {
            continue;
        };
        let Ok(records) = read_all(&wal) else {
            // Only Salvage may meet damage it skipped around; the other modes validated
            // every frame they will read.
            assert_eq!(mode, RecoveryMode::Salvage, "validated log failed to read");
            continue;
        };
        let total: usize = records.iter().map(|r| r.1.len()).sum();
        assert!(total <= data.len(), "more record bytes than input bytes");
        assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "LSN order");
        if mode != RecoveryMode::Salvage {
            assert!(records.windows(2).all(|w| w[1].0 == w[0].0 + 1), "no holes");
            assert_eq!(records.last().map_or(rec.last_lsn, |r| r.0), rec.last_lsn);
        }
        if mode == RecoveryMode::TolerateTornTail {
            let lsn = match wal.append(b"fuzz") {
                Ok(lsn) => lsn,
                Err(Error::LsnExhausted { .. }) => continue,
                Err(e) => panic!("append after recovery: {e}"),
            };
            drop(wal);
            let (wal, rec2) = Wal::open(fs.shared(), DIR, o).expect("reopen after append");
            assert!(rec2.tail_cut.is_none(), "tail cut twice");
            let again = read_all(&wal).expect("read after reopen");
            assert_eq!(again.len(), records.len() + 1);
            assert_eq!(again.last(), Some(&(lsn, b"fuzz".to_vec())));
        }
    }
}

/// A model-based run: operations decoded from `data` (appends, batches, syncs,
/// truncations, clean reopens and crashes with a random crash image) against a plain
/// model of what is acknowledged. After every crash the log must hold every acknowledged
/// record and a prefix of the rest; after a clean reopen, everything.
pub fn model_ops(data: &[u8]) {
    let Some((&cfg, mut ops)) = data.split_first() else {
        return;
    };
    let opts = WalOptions {
        segment_size_bytes: 512,
        max_record_bytes: 256,
        sync_policy: if cfg & 1 == 0 {
            SyncPolicy::Always
        } else {
            SyncPolicy::Never
        },
        preallocate: cfg & 2 == 0,
        preallocate_step_bytes: if cfg & 8 == 0 { 4 << 20 } else { 128 },
        ..WalOptions::default()
    };
    let model = if cfg & 4 == 0 {
        CrashModel::torn_512()
    } else {
        CrashModel::any_subset()
    };
    let mut fs = SimFs::new();
    let (mut wal, _) = Wal::open(fs.shared(), DIR, opts).expect("open a new log");
    // Acknowledged records (durable) and appended-but-unsynced ones, in LSN order.
    let mut durable: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut truncated_below = 0u64;
    let mut counter = 0u32;
    let mut steps = 0;
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        steps += 1;
        if steps > 200 {
            break;
        }
        let arg = ops.first().copied().unwrap_or(0);
        match op % 8 {
            0..=2 => {
                ops = ops.get(1..).unwrap_or(&[]);
                counter += 1;
                let p = record(counter, usize::from(arg) % 200);
                let lsn = wal.append(&p).expect("append");
                pending.push((lsn, p));
            }
            3 => {
                ops = ops.get(1..).unwrap_or(&[]);
                let n = 1 + usize::from(arg % 4);
                let ps: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        counter += 1;
                        record(counter, usize::from(arg) % 40)
                    })
                    .collect();
                let lsns = wal.append_batch(&ps).expect("append batch");
                pending.extend(lsns.zip(ps));
            }
            4 => {
                wal.sync().expect("sync");
            }
            5 => {
                let lsn = wal.stats().synced_lsn;
                wal.truncate_before(lsn).expect("truncate");
                truncated_below = truncated_below.max(lsn);
            }
            6 => {
                // Crash: pick one image of the moment.
                ops = ops.get(1..).unwrap_or(&[]);
                drop(wal);
                fs.cut_power();
                let image = fs
                    .crash_images(&model, 8, u64::from(arg))
                    .nth(usize::from(arg % 8))
                    .unwrap_or_else(|| fs.crash_drop_unsynced());
                fs = image;
                let (w, _) = Wal::open(fs.shared(), DIR, opts).expect("reopen after a crash");
                wal = w;
                let got = read_all(&wal).expect("read after a crash");
                check(&got, &durable, &pending, truncated_below, false);
                durable = got;
                pending.clear();
                continue;
            }
            _ => {
                // Clean reopen (process restart, no power loss): everything is there.
                drop(wal);
                let (w, _) = Wal::open(fs.shared(), DIR, opts).expect("clean reopen");
                wal = w;
                let got = read_all(&wal).expect("read after reopen");
                check(&got, &durable, &pending, truncated_below, true);
                durable = got;
                pending.clear();
                continue;
            }
        }
        if opts.sync_policy == SyncPolicy::Always || op % 8 == 4 {
            durable.append(&mut pending);
        }
    }
    let got = read_all(&wal).expect("final read");
    let mut all = durable;
    all.append(&mut pending);
    check(&got, &all, &[], truncated_below, true);
}

fn record(n: u32, len: usize) -> Vec<u8> {
    let mut p = n.to_le_bytes().to_vec();
    p.extend((0..len).map(|i| (i as u32).wrapping_mul(n) as u8));
    p
}

/// `got` must hold every record of `durable` at or above `truncated_below`, then a prefix
/// of `pending` (all of it when `complete`), contiguous, nothing else.
fn check(
    got: &[(u64, Vec<u8>)],
    durable: &[(u64, Vec<u8>)],
    pending: &[(u64, Vec<u8>)],
    truncated_below: u64,
    complete: bool,
) {
    // Records below the truncation point may remain (only whole segments go); those that
    // do must be the ones written.
    for r in got.iter().filter(|(l, _)| *l < truncated_below) {
        assert!(
            durable.contains(r) || pending.contains(r),
            "stale record at LSN {} below the truncation point",
            r.0
        );
    }
    let after: Vec<_> = got
        .iter()
        .filter(|(l, _)| *l >= truncated_below)
        .cloned()
        .collect();
    let want: Vec<_> = durable
        .iter()
        .filter(|(l, _)| *l >= truncated_below)
        .cloned()
        .collect();
    assert!(
        after.len() >= want.len() && after[..want.len()] == want[..],
        "acknowledged records lost or changed: have {} want at least {}",
        after.len(),
        want.len()
    );
    // Rotation syncs records the model still counts as pending, so a truncation point can
    // lie among them.
    let pending: Vec<_> = pending
        .iter()
        .filter(|(l, _)| *l >= truncated_below)
        .cloned()
        .collect();
    let extra = &after[want.len()..];
    assert!(extra.len() <= pending.len(), "records never appended");
    assert_eq!(
        extra,
        &pending[..extra.len()],
        "not a prefix of the unsynced records"
    );
    if complete {
        assert_eq!(extra.len(), pending.len(), "a clean reopen lost records");
    }
    assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + 1), "hole in LSNs");
}
