//! Shared helpers for the vellum-wal integration tests: payloads that say who wrote them,
//! the recovery oracle, and a byte-tampering seam over both file systems.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vellum_fs::{DynFs, Fs, RealFs, SimFs};
use vellum_wal::{RecoveryMode, SyncPolicy, Wal, WalOptions};

pub const DIR: &str = "/db/wal";

/// Small segments so scenarios rotate often and crash images stay cheap.
pub fn small_opts(policy: SyncPolicy) -> WalOptions {
    WalOptions {
        segment_size_bytes: 1024,
        max_record_bytes: 256,
        sync_policy: policy,
        // Segments grow in steps, so crashes land mid-growth too.
        preallocate_step_bytes: 256,
        ..WalOptions::default()
    }
}

pub fn with_mode(mut o: WalOptions, mode: RecoveryMode) -> WalOptions {
    o.recovery_mode = mode;
    o
}

/// A payload naming its writer: thread, sequence number, index within its batch and the
/// batch size, then filler derived from them (so a torn or stale copy cannot pass).
pub fn payload(thread: u8, seq: u32, idx: u8, batch: u8, len: usize) -> Vec<u8> {
    let mut p = vec![thread];
    p.extend_from_slice(&seq.to_le_bytes());
    p.push(idx);
    p.push(batch);
    let seed = u32::from(thread) * 7919 + seq * 31 + u32::from(idx);
    while p.len() < len.max(7) {
        p.push((seed as usize + p.len() * 13) as u8);
    }
    p
}

/// (thread, seq, idx, batch) of a payload made by [`payload`], if it is one.
pub fn payload_id(p: &[u8]) -> Option<(u8, u32, u8, u8)> {
    if p.len() < 7 {
        return None;
    }
    let id = (
        p[0],
        u32::from_le_bytes([p[1], p[2], p[3], p[4]]),
        p[5],
        p[6],
    );
    (payload(id.0, id.1, id.2, id.3, p.len()) == p).then_some(id)
}

/// What a scenario did: acknowledged records by LSN, every payload it tried to append, and
/// the highest LSN it asked `truncate_before` for.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub acked: BTreeMap<u64, Vec<u8>>,
    pub attempted: BTreeSet<Vec<u8>>,
    pub truncate_max: u64,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.acked.extend(other.acked);
        self.attempted.extend(other.attempted);
        self.truncate_max = self.truncate_max.max(other.truncate_max);
    }
}

/// Reads every record of an open log.
pub fn read_all(wal: &Wal) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let first = wal.stats().first_lsn;
    let it = wal
        .iter_from(first)
        .map_err(|e| format!("iter_from({first}): {e}"))?;
    it.map(|r| {
        r.map(|r| (r.lsn, r.data))
            .map_err(|e| format!("iterating: {e}"))
    })
    .collect()
}

/// The oracle: recovered = every acknowledged record (at or above the truncation point) +
/// a prefix of the rest, in LSN order, no holes, no partial batch, nothing never written.
pub fn check_records(recovered: &[(u64, Vec<u8>)], out: &Outcome) -> Result<(), String> {
    let by_lsn: BTreeMap<u64, &Vec<u8>> = recovered.iter().map(|(l, d)| (*l, d)).collect();
    for w in recovered.windows(2) {
        if w[1].0 != w[0].0 + 1 {
            return Err(format!("hole between LSN {} and {}", w[0].0, w[1].0));
        }
    }
    for (lsn, data) in &out.acked {
        if *lsn < out.truncate_max {
            continue;
        }
        match by_lsn.get(lsn) {
            Some(d) if *d == data => {}
            Some(_) => return Err(format!("acknowledged LSN {lsn} came back with other bytes")),
            None => {
                return Err(format!(
                    "acknowledged LSN {lsn} lost (recovered {:?})",
                    recovered.first().map(|r| r.0)..=recovered.last().map(|r| r.0)
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut batches: BTreeMap<(u8, u32), (u8, u8)> = BTreeMap::new();
    let mut last_seq: BTreeMap<u8, (u32, u8)> = BTreeMap::new();
    for (lsn, data) in recovered {
        if !out.attempted.contains(data) {
            return Err(format!("LSN {lsn} holds bytes that were never appended"));
        }
        if !seen.insert(data.clone()) {
            return Err(format!("LSN {lsn} repeats a record"));
        }
        let (t, seq, idx, n) = payload_id(data).ok_or("unparseable payload")?;
        if let Some(prev) = last_seq.insert(t, (seq, idx))
            && prev >= (seq, idx)
        {
            return Err(format!("thread {t}'s records out of order at LSN {lsn}"));
        }
        let e = batches.entry((t, seq)).or_insert((0, n));
        e.0 += 1;
    }
    let first = recovered.first().map_or(0, |r| r.0);
    for ((t, seq), (got, n)) in batches {
        // A batch cut by truncation at the start is whole anyway (a batch is one frame).
        if got != n {
            return Err(format!(
                "partial batch: thread {t} seq {seq} has {got} of {n} records (first LSN {first})"
            ));
        }
    }
    Ok(())
}

/// Opens the log on `fs` and checks it against `out`; then reopens and demands the same
/// records. Returns the records.
pub fn reopen_and_check(
    fs: DynFs,
    opts: WalOptions,
    out: &Outcome,
) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let (wal, _) = Wal::open(Arc::clone(&fs), DIR, opts).map_err(|e| format!("open: {e}"))?;
    let first = read_all(&wal)?;
    check_records(&first, out)?;
    drop(wal);
    let (wal, rec) = Wal::open(fs, DIR, opts).map_err(|e| format!("second open: {e}"))?;
    if rec.tail_cut.is_some() {
        return Err("second open found a torn tail the first should have cut".into());
    }
    let second = read_all(&wal)?;
    if second != first {
        return Err("second open recovered different records".into());
    }
    Ok(first)
}

/// After recovery: append two records (acknowledged), crash again, and check every image
/// holds the recovered records plus both new ones. Returns images checked.
pub fn append_after_recovery_then_crash(
    image: &SimFs,
    opts: WalOptions,
    recovered: &[(u64, Vec<u8>)],
    seed: u64,
) -> Result<usize, String> {
    let never = WalOptions {
        sync_policy: SyncPolicy::Never,
        ..opts
    };
    let (wal, _) = Wal::open(image.shared(), DIR, never).map_err(|e| format!("open: {e}"))?;
    let mut expect: Vec<(u64, Vec<u8>)> = recovered.to_vec();
    for i in 0..2u32 {
        let p = payload(200, i, 0, 1, 40 + i as usize * 90);
        let lsn = wal
            .append(&p)
            .map_err(|e| format!("append after recovery: {e}"))?;
        expect.push((lsn, p));
    }
    wal.sync()
        .map_err(|e| format!("sync after recovery: {e}"))?;
    // An unacknowledged one that may or may not survive.
    let extra = payload(201, 0, 0, 1, 100);
    let extra_lsn = wal.append(&extra).map_err(|e| format!("append: {e}"))?;
    drop(wal);
    image.cut_power();
    let mut n = 0;
    for img in image.crash_images(&vellum_fs::CrashModel::torn_512(), 4, seed) {
        let (wal, _) = Wal::open(img.shared(), DIR, opts)
            .map_err(|e| format!("open after second crash: {e}"))?;
        let got = read_all(&wal)?;
        let base = &got[..got.len().min(expect.len())];
        if base != expect.as_slice() {
            return Err(format!(
                "after append-then-crash: expected {} records, got {}",
                expect.len(),
                got.len()
            ));
        }
        match got.get(expect.len()) {
            None => {}
            Some((l, d)) if *l == extra_lsn && *d == extra => {}
            Some((l, _)) => return Err(format!("unexpected record at LSN {l} after second crash")),
        }
        if got.len() > expect.len() + 1 {
            return Err("records beyond what was appended after the second crash".into());
        }
        n += 1;
    }
    Ok(n)
}

/// Tampering with bytes on disk, on either file system (for the byte-level tests).
pub trait Disk {
    fn fs(&self) -> DynFs;
    fn dir(&self) -> PathBuf;
    fn tamper(&self, path: &Path, f: &mut dyn FnMut(&mut Vec<u8>));
    fn read(&self, path: &Path) -> Vec<u8>;
}

impl Disk for SimFs {
    fn fs(&self) -> DynFs {
        self.shared()
    }
    fn dir(&self) -> PathBuf {
        PathBuf::from(DIR)
    }
    fn tamper(&self, path: &Path, f: &mut dyn FnMut(&mut Vec<u8>)) {
        assert!(
            Fs::exists(self, path).unwrap(),
            "tamper target {path:?} must exist"
        );
        SimFs::tamper(self, path, |b| f(b)).unwrap();
    }
    fn read(&self, path: &Path) -> Vec<u8> {
        self.read_file(path).unwrap()
    }
}

/// The real file system under a temporary directory.
pub struct RealDisk {
    pub tmp: tempfile::TempDir,
}

impl RealDisk {
    pub fn new() -> Self {
        RealDisk {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
}

impl Disk for RealDisk {
    fn fs(&self) -> DynFs {
        RealFs::shared()
    }
    fn dir(&self) -> PathBuf {
        self.tmp.path().join("wal")
    }
    fn tamper(&self, path: &Path, f: &mut dyn FnMut(&mut Vec<u8>)) {
        let mut b = std::fs::read(path).expect("tamper target must exist");
        f(&mut b);
        std::fs::write(path, &b).unwrap();
    }
    fn read(&self, path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }
}

/// The segment files of a log, in order.
pub fn segments(disk: &dyn Disk) -> Vec<PathBuf> {
    let fs = disk.fs();
    let dir = disk.dir();
    fs.list_dir(&dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .map(|n| dir.join(n))
        .collect()
}

/// A group sync fails while another thread's append must rotate. Deterministic: the
/// leader is held after its failed sync (`AFTER_GROUP_SYNC`), and the appender is held
/// where a rotation waits for it (`ROTATION_AWAITS_GROUP_SYNC`). `Err` if the rotation
/// went ahead instead of waiting: it would seal, with a sync that proves nothing, a
/// segment whose last frames the failed sync dropped. Returns what was durably
/// acknowledged (records synced before the fault) and everything attempted.
pub fn rotation_beside_a_failed_group_sync(fs: &SimFs) -> Result<Outcome, String> {
    use vellum_fs::{Fault, FaultRule, OpKind};
    use vellum_wal::fail_points::{AFTER_GROUP_SYNC, ROTATION_AWAITS_GROUP_SYNC};
    let (wal, _) = Wal::open(fs.shared(), DIR, small_opts(SyncPolicy::Never))
        .map_err(|e| format!("open: {e}"))?;
    let mut out = Outcome::default();
    for i in 0..3 {
        let p = payload(0, i, 0, 1, 100);
        out.attempted.insert(p.clone());
        out.acked
            .insert(wal.append(&p).map_err(|e| e.to_string())?, p);
    }
    wal.sync().map_err(|e| format!("first sync: {e}"))?;
    let p = payload(0, 3, 0, 1, 100);
    out.attempted.insert(p.clone());
    wal.append(&p).map_err(|e| e.to_string())?;
    let leader_held = fs.pause_at(AFTER_GROUP_SYNC);
    fs.inject(FaultRule::nth_of(OpKind::SyncData, 1, Fault::Eio));
    let attempts: Vec<Vec<u8>> = (0..12).map(|i| payload(1, i, 0, 1, 100)).collect();
    out.attempted.extend(attempts.iter().cloned());
    let segments_before = wal.stats().segments;
    std::thread::scope(|s| {
        let leader = s.spawn(|| wal.sync());
        if !leader_held.wait_reached(std::time::Duration::from_secs(30)) {
            return Err("the group sync never reached its end".to_string());
        }
        let rotation_held = fs.pause_at(ROTATION_AWAITS_GROUP_SYNC);
        let appender = s.spawn(|| {
            for p in &attempts {
                wal.append(p)?;
                if wal.stats().segments > segments_before {
                    break;
                }
            }
            Ok::<(), vellum_wal::Error>(())
        });
        let mut waited = false;
        while !appender.is_finished() {
            if rotation_held.wait_reached(std::time::Duration::from_millis(10)) {
                waited = true;
                break;
            }
        }
        drop(rotation_held);
        drop(leader_held);
        let synced = leader.join().expect("leader thread");
        let appended = appender.join().expect("appender thread");
        if !waited {
            return Err(format!(
                "the rotation did not wait for the failed group sync (append: {appended:?})"
            ));
        }
        if synced.is_ok() || appended.is_ok() {
            return Err(format!(
                "acknowledged across a failed sync: sync {synced:?}, append {appended:?}"
            ));
        }
        Ok(())
    })?;
    if !wal.is_poisoned() {
        return Err("the failed sync did not poison the log".into());
    }
    Ok(out)
}

/// Proptest cases: `default` unless `PROPTEST_CASES` says otherwise.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
