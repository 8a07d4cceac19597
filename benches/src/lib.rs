//! Shared helpers for Vellum's benchmarks: the converted data sets, ground truth scoring,
//! and CPU-time measurement (the project machine is often shared, so benches report the
//! CPU time of the measuring thread next to wall time).
//!
//! The benches themselves live in `benches/benches/` (criterion) and `src/bin/` (bench
//! binaries that print tables for docs/BENCHMARKS.md). Peers are compiled only with the
//! `compare` feature.
#![forbid(unsafe_code)]

#[cfg(not(unix))]
compile_error!(
    "vellum-benches builds on Unix only: it counts the disk blocks files take (st_blocks, in \
     src/scale.rs and src/bin/seed_compare.rs) and times raw pwrite baselines \
     (src/bin/wal_bench.rs)"
);

pub mod latency;
#[cfg(feature = "seed-peers")]
pub mod latency_peers;
pub mod latency_report;
#[cfg(unix)]
pub mod scale;

use std::path::Path;
use std::time::{Duration, Instant};

use vellum_index::Metric;

/// Neighbours per query in every recall measurement.
pub const K: usize = 10;

/// A loaded data set with its exact ground truth.
#[derive(Debug)]
pub struct Dataset {
    pub name: String,
    pub metric: Metric,
    pub dim: usize,
    pub train: Vec<f32>,
    pub queries: Vec<f32>,
    /// Exact top-K ids per query, over `train`.
    pub truth: Vec<Vec<u64>>,
}

impl Dataset {
    pub fn rows(&self) -> usize {
        self.train.len() / self.dim
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.train[i * self.dim..(i + 1) * self.dim]
    }
    pub fn query(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }
    pub fn query_count(&self) -> usize {
        self.queries.len() / self.dim
    }
}

/// One point of the recall/QPS curve.
#[derive(Debug, Clone)]
pub struct CurvePoint {
    pub ef: usize,
    pub recall: f64,
    pub qps: f64,
    /// Queries per second of CPU time of the query thread (robust to other load).
    pub cpu_qps: f64,
}

/// CPU time this thread has run (Linux schedstat, nanoseconds); zero where unavailable.
/// Where a bench puts its databases unless told otherwise: `<name>-<pid>` under the target
/// directory the binary sits in (the nearest ancestor holding cargo's CACHEDIR.TAG), else
/// under $TMPDIR.
pub fn default_work_dir(name: &str) -> std::path::PathBuf {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|dir| dir.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(std::env::temp_dir);
    target.join(format!("{name}-{}", std::process::id()))
}

pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// CPU time (user + system) of the whole process, all threads (Linux, 100 Hz ticks).
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Recall@K of `found` against the exact `truth`.
pub fn recall_at_k(found: &[u64], truth: &[u64]) -> f64 {
    let k = K.min(truth.len());
    let hits = found
        .iter()
        .take(K)
        .filter(|id| truth[..k].contains(id))
        .count();
    hits as f64 / k.max(1) as f64
}

/// Runs every query once on this thread at one `ef` and scores it.
pub fn sweep_point(
    data: &Dataset,
    ef: usize,
    mut search: impl FnMut(&[f32]) -> Vec<u64>,
) -> CurvePoint {
    // One warm-up pass over a few queries so page faults are not counted as search.
    for i in 0..data.query_count().min(20) {
        search(data.query(i));
    }
    let mut found = Vec::with_capacity(data.query_count());
    let (start, cpu_start) = (Instant::now(), thread_cpu());
    for i in 0..data.query_count() {
        found.push(search(data.query(i)));
    }
    let (elapsed, cpu) = (
        start.elapsed().as_secs_f64(),
        (thread_cpu() - cpu_start).as_secs_f64(),
    );
    let total: f64 = found
        .iter()
        .zip(&data.truth)
        .map(|(f, t)| recall_at_k(f, t))
        .sum();
    let n = data.query_count() as f64;
    CurvePoint {
        ef,
        recall: total / n,
        qps: n / elapsed,
        cpu_qps: if cpu > 0.0 { n / cpu } else { 0.0 },
    }
}

/// Reads a converted matrix file (`benches/scripts/get-datasets.sh`): u32 rows, u32 dim,
/// then row-major little-endian f32.
/// The exact `K` nearest rows of `train` (row-major, `dim` wide) to each query, by a
/// parallel brute-force scan: the ground truth recall is measured against.
pub fn exact_truth(train: &[f32], dim: usize, queries: &[f32], metric: Metric) -> Vec<Vec<u64>> {
    use rayon::prelude::*;
    let source = vellum_index::FlatVectors::new(train, dim);
    let ids: Vec<u64> = (0..(train.len() / dim) as u64).collect();
    queries
        .par_chunks_exact(dim)
        .map(|q| {
            vellum_index::exact_search(&source, &ids, metric, q, K, None)
                .expect("exact search")
                .into_iter()
                .map(|n| n.id)
                .collect()
        })
        .collect()
}

pub fn read_matrix(path: &Path) -> std::io::Result<(usize, Vec<f32>)> {
    let bytes = std::fs::read(path)?;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is malformed", path.display()),
        )
    };
    if bytes.len() < 8 {
        return Err(bad());
    }
    let rows = u32::from_le_bytes(bytes[0..4].try_into().map_err(|_| bad())?) as usize;
    let dim = u32::from_le_bytes(bytes[4..8].try_into().map_err(|_| bad())?) as usize;
    if dim == 0 || bytes.len() != 8 + rows * dim * 4 {
        return Err(bad());
    }
    let data = bytes[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((dim, data))
}
