//! Measuring what grows with the data (issue 14): disk bytes and files of a directory, the
//! process's memory and open files, and the longest wait of a writer and a searcher that
//! probe a collection while something else (a checkpoint) holds it. Used by
//! `src/bin/scale_bench.rs`; only the public API of the `vellum` facade.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use vellum::{Collection, Point};

/// What a directory tree holds on disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskUsage {
    /// Sum of file lengths.
    pub apparent_bytes: u64,
    /// Blocks the file system allocated for them.
    pub allocated_bytes: u64,
    pub files: u64,
}

/// Walks `dir` (symlinks are not followed).
pub fn disk_usage(dir: &Path) -> DiskUsage {
    let mut usage = DiskUsage::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return usage;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let sub = disk_usage(&entry.path());
            usage.apparent_bytes += sub.apparent_bytes;
            usage.allocated_bytes += sub.allocated_bytes;
            usage.files += sub.files;
        } else {
            usage.apparent_bytes += meta.len();
            usage.allocated_bytes += meta.blocks() * 512;
            usage.files += 1;
        }
    }
    usage
}

/// A line of `/proc/self/status` (in KiB), e.g. `VmRSS` or `VmHWM`; 0 if unknown.
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// File descriptors this process holds open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The longest single operation of each probe while `work` ran.
#[derive(Debug, Clone, Copy)]
pub struct ProbeWaits {
    pub writer_max: Duration,
    pub writes: u64,
    pub searcher_max: Duration,
    pub searches: u64,
}

/// Runs `work` while one thread upserts single points (ids from `first_id`, vectors from
/// `vector`) and another searches with `query`, each in a loop; returns what `work`
/// returned and the longest wait each probe saw.
pub fn with_probes<R>(
    coll: &Collection,
    first_id: u64,
    vector: &(dyn Fn(u64) -> Vec<f32> + Sync),
    query: &[f32],
    work: impl FnOnce() -> R,
) -> (R, ProbeWaits) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let (mut max, mut n) = (Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                coll.upsert(Point::new(first_id + n, vector(first_id + n)))
                    .expect("probe write");
                max = max.max(t.elapsed());
                n += 1;
            }
            (max, n)
        });
        let searcher = s.spawn(|| {
            let (mut max, mut n) = (Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                coll.search(query, 10).expect("probe search");
                max = max.max(t.elapsed());
                n += 1;
            }
            (max, n)
        });
        // Let both probes start before the work begins.
        thread::sleep(Duration::from_millis(20));
        let out = work();
        stop.store(true, Ordering::Relaxed);
        let (writer_max, writes) = writer.join().expect("writer probe");
        let (searcher_max, searches) = searcher.join().expect("search probe");
        (
            out,
            ProbeWaits {
                writer_max,
                writes,
                searcher_max,
                searches,
            },
        )
    })
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1 << 20))
}
