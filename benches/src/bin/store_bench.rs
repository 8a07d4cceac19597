//! Vector store and checkpoint benchmark, on the real file system. Prints a
//! Markdown table for docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release -p vellum-benches --bin store_bench -- [DIR] [N]
//! cargo run --release -p vellum-benches --features velesdb --bin store_bench -- [DIR] [N]
//! ```
//!
//! DIR (default `./store-bench-tmp`) must be on the file system to measure; it is created
//! and removed. N (default 1,000,000) vectors. Rows:
//!
//! * random get-by-id over N x 128-d (each get reads the whole vector: a sum of its
//!   elements), Vellum vs a plain in-RAM `Vec<f32>` (and velesdb-core's `MmapStorage`
//!   with the `velesdb` or `compare` feature);
//! * batch upsert throughput;
//! * the first checkpoint (flush of every mapped slot + id map) vs a plain sequential
//!   write + fdatasync of the same number of bytes, id map zstd vs none, and the id map's
//!   compression ratio;
//! * open time of the checkpointed store, 128-d vs 768-d.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec};
use vellum_fs::rng::SplitMix64;
use vellum_fs::{DynFs, RealFs};
use vellum_mmap_vectors::{StoreConfig, VectorStore};

const BATCH: usize = 10_000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1024.0 * 1024.0)
}

fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n * dim)
        .map(|_| (rng.below(1 << 20) as f32) / (1 << 20) as f32 - 0.5)
        .collect()
}

fn order(n: usize, seed: u64) -> Vec<u64> {
    let mut ids: Vec<u64> = (0..n as u64).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    ids
}

/// Time this thread has spent on a CPU (Linux `schedstat`), to tell work from waiting for a
/// core on a shared machine. Zero where unavailable.
fn on_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

struct Built {
    build: Duration,
    checkpoint: Duration,
    checkpoint_bytes: u64,
    idmap_raw: u64,
    idmap_stored: u64,
}

fn open_pair(fs: &DynFs, root: &Path, dim: u32, codec: Codec) -> (Checkpointer, VectorStore) {
    let (cp, loaded) =
        Checkpointer::open(fs.clone(), &root.join("ck"), CheckpointConfig::default())
            .expect("checkpoint open");
    let config = StoreConfig {
        idmap_codec: codec,
        ..StoreConfig::new(dim)
    };
    let store = VectorStore::open_from(
        fs.clone(),
        &root.join("vectors"),
        config,
        &cp,
        loaded.as_ref(),
    )
    .expect("store open");
    (cp, store)
}

/// Loads `n` vectors in batches and checkpoints once.
fn build(fs: &DynFs, root: &Path, dim: usize, vectors: &[f32], codec: Codec) -> Built {
    let n = vectors.len() / dim;
    let (mut cp, mut store) = open_pair(fs, root, dim as u32, codec);
    let t = Instant::now();
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        store
            .upsert_batch((start..end).map(|i| (i as u64, &vectors[i * dim..(i + 1) * dim])))
            .expect("upsert");
    }
    let build = t.elapsed();
    let segment_bytes = store.stats().segment_bytes;
    let t = Instant::now();
    store
        .checkpoint(&mut cp, n as u64, b"")
        .expect("checkpoint");
    let checkpoint = t.elapsed();
    let stats = cp.stats().expect("a generation");
    let idmap = stats
        .files
        .iter()
        .find(|f| f.name == vellum_mmap_vectors::IDMAP_FILE)
        .expect("id map");
    Built {
        build,
        checkpoint,
        checkpoint_bytes: segment_bytes + stats.stored_bytes_total,
        idmap_raw: idmap.raw_len_bytes,
        idmap_stored: idmap.stored_len_bytes,
    }
}

/// Plain sequential write of `bytes` in 1 MiB writes, then one fdatasync.
fn plain_sequential(dir: &Path, bytes: u64) -> Duration {
    let path = dir.join("plain.bin");
    let chunk = vec![0x5Au8; 1 << 20];
    let t = Instant::now();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .expect("create");
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
    f.sync_data().expect("sync");
    let d = t.elapsed();
    drop(f);
    std::fs::remove_file(&path).expect("remove");
    d
}

/// Medians over 5 opens of (checkpoint load + store open, checkpoint load alone, on-CPU
/// time of the whole open).
fn open_time(fs: &DynFs, root: &Path, dim: u32) -> (Duration, Duration, Duration) {
    let mut times = Vec::new();
    let mut loads = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..5 {
        let c = on_cpu();
        let t = Instant::now();
        let (cp, loaded) =
            Checkpointer::open(fs.clone(), &root.join("ck"), CheckpointConfig::default())
                .expect("checkpoint open");
        loads.push(t.elapsed());
        let store = VectorStore::open_from(
            fs.clone(),
            &root.join("vectors"),
            StoreConfig::new(dim),
            &cp,
            loaded.as_ref(),
        )
        .expect("store open");
        times.push(t.elapsed());
        cpus.push(on_cpu() - c);
        assert!(!store.is_empty());
        drop((cp, store));
    }
    (median(times), median(loads), median(cpus))
}

/// Measures on-CPU time where the kernel reports it (so rows compare work, not waits for a
/// core on a shared machine), else wall time.
struct CpuClock {
    cpu: Duration,
    wall: Instant,
}

impl CpuClock {
    fn start() -> Self {
        CpuClock {
            cpu: on_cpu(),
            wall: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        let cpu = on_cpu();
        if cpu.is_zero() {
            self.wall.elapsed()
        } else {
            cpu - self.cpu
        }
    }
}

fn sum(v: &[f32]) -> f32 {
    v.iter().sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "store-bench-tmp".into()));
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("N"))
        .unwrap_or(1_000_000);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let fs: DynFs = Arc::new(RealFs::new());
    let row = |k: &str, v: String| println!("| {k} | {v} |");
    println!("| measurement (N = {n}) | result |\n|---|---|");

    // 128-d: load, checkpoint, compare with a plain write, then gets.
    let dim = 128usize;
    let vectors = data(n, dim, 1);
    let root = dir.join("d128");
    let b = build(&fs, &root, dim, &vectors, Codec::ZSTD);
    let bytes = (n * dim * 4) as u64;
    row(
        "batch upsert, 128-d (batches of 10,000)",
        format!(
            "{:.0} vectors/s ({:.0} MiB/s of vector data, {:.0} ms)",
            n as f64 / b.build.as_secs_f64(),
            mib_s(bytes, b.build),
            ms(b.build)
        ),
    );
    let plain = plain_sequential(&dir, b.checkpoint_bytes);
    row(
        "first checkpoint, 128-d, id map zstd (flush of all slots + id map)",
        format!(
            "{:.0} ms for {:.0} MiB = {:.0} MiB/s",
            ms(b.checkpoint),
            b.checkpoint_bytes as f64 / 1048576.0,
            mib_s(b.checkpoint_bytes, b.checkpoint)
        ),
    );
    row(
        "plain sequential write + fdatasync of the same bytes",
        format!(
            "{:.0} ms = {:.0} MiB/s; checkpoint / plain = {:.2}x",
            ms(plain),
            mib_s(b.checkpoint_bytes, plain),
            plain.as_secs_f64() / b.checkpoint.as_secs_f64()
        ),
    );
    row(
        "id map compression (zstd level 3)",
        format!(
            "{} -> {} bytes = {:.2}x",
            b.idmap_raw,
            b.idmap_stored,
            b.idmap_raw as f64 / b.idmap_stored as f64
        ),
    );
    let root_none = dir.join("d128-none");
    let bn = build(&fs, &root_none, dim, &vectors, Codec::None);
    let plain2 = plain_sequential(&dir, bn.checkpoint_bytes);
    row(
        "first checkpoint, 128-d, id map uncompressed",
        format!(
            "{:.0} ms for {:.0} MiB = {:.0} MiB/s; plain write of the same bytes {:.0} ms ({:.2}x)",
            ms(bn.checkpoint),
            bn.checkpoint_bytes as f64 / 1048576.0,
            mib_s(bn.checkpoint_bytes, bn.checkpoint),
            ms(plain2),
            plain2.as_secs_f64() / bn.checkpoint.as_secs_f64()
        ),
    );
    std::fs::remove_dir_all(&root_none).expect("cleanup");

    // Id-map-only checkpoints (no dirty slot): none, then zstd (the default, so the open and
    // get rows below use a zstd id map), with the open time after each.
    let ck = |codec: Codec, lsn: u64| {
        let (mut cp, mut store) = open_pair(&fs, &root, dim as u32, codec);
        let mut times = Vec::new();
        for i in 0..3 {
            let t = Instant::now();
            store.checkpoint(&mut cp, lsn + i, b"").expect("checkpoint");
            times.push(t.elapsed());
        }
        (median(times), cp.stats().expect("stats").stored_bytes_total)
    };
    let (none_time, stored_none) = ck(Codec::None, n as u64);
    let open_none = open_time(&fs, &root, dim as u32);
    let (zstd_time, stored) = ck(Codec::ZSTD, n as u64 + 10);
    row(
        "checkpoint with no dirty slot (id map only), zstd vs none",
        format!(
            "zstd {:.0} ms ({} bytes written) vs none {:.0} ms ({} bytes)",
            ms(zstd_time),
            stored,
            ms(none_time),
            stored_none
        ),
    );
    let open128 = open_time(&fs, &root, dim as u32);
    row(
        "open of the checkpointed store, 128-d, id map zstd (median of 5, page cache warm)",
        format!(
            "{:.1} ms wall, {:.1} ms on CPU (checkpoint load and verify {:.1} ms wall)",
            ms(open128.0),
            ms(open128.2),
            ms(open128.1)
        ),
    );
    row(
        "open of the checkpointed store, 128-d, id map uncompressed",
        format!(
            "{:.1} ms wall, {:.1} ms on CPU (checkpoint load and verify {:.1} ms wall)",
            ms(open_none.0),
            ms(open_none.2),
            ms(open_none.1)
        ),
    );

    // Random gets. Every id once per pass, in a random order; each get sums the vector.
    let ids = order(n, 7);
    let passes = 3;
    let baseline = {
        let mut times = Vec::new();
        let mut acc = 0.0f32;
        for _ in 0..passes {
            let t = CpuClock::start();
            for &id in &ids {
                let i = id as usize;
                acc += sum(std::hint::black_box(&vectors[i * dim..(i + 1) * dim]));
            }
            times.push(t.elapsed());
        }
        std::hint::black_box(acc);
        median(times)
    };
    let (cp, store) = open_pair(&fs, &root, dim as u32, Codec::ZSTD);
    let t = CpuClock::start();
    let mut acc = 0.0f32;
    for &id in &ids {
        acc += sum(store.get(id).expect("get").expect("present"));
    }
    let first_pass = t.elapsed();
    let vellum = {
        let mut times = Vec::new();
        for _ in 0..passes {
            let t = CpuClock::start();
            for &id in &ids {
                acc += sum(store.get(id).expect("get").expect("present"));
            }
            times.push(t.elapsed());
        }
        median(times)
    };
    std::hint::black_box(acc);
    drop((cp, store));
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    row(
        "random get + sum, 128-d, in-RAM Vec<f32> (on-CPU time)",
        format!("{:.1} ns/get", per(baseline)),
    );
    row(
        "random get + sum, 128-d, Vellum (slots checked)",
        format!(
            "{:.1} ns/get = {:.2}x in-RAM; first pass after open (CRC check per slot) {:.1} ns/get",
            per(vellum),
            vellum.as_secs_f64() / baseline.as_secs_f64(),
            per(first_pass)
        ),
    );
    #[cfg(feature = "velesdb")]
    veles(&dir, &vectors, dim, &ids, baseline, &row);
    #[cfg(not(feature = "velesdb"))]
    row(
        "random get + sum, 128-d, velesdb-core MmapStorage",
        "not built (run with --features velesdb or compare)".into(),
    );
    drop(vectors);
    std::fs::remove_dir_all(&root).expect("cleanup");

    // 768-d: open time only grows with the id map, not with the dimension.
    let dim = 768usize;
    let vectors = data(n, dim, 2);
    let root = dir.join("d768");
    let b = build(&fs, &root, dim, &vectors, Codec::ZSTD);
    drop(vectors);
    row(
        "batch upsert, 768-d",
        format!(
            "{:.0} vectors/s ({:.0} MiB/s); first checkpoint {:.0} ms for {:.0} MiB",
            n as f64 / b.build.as_secs_f64(),
            mib_s((n * dim * 4) as u64, b.build),
            ms(b.checkpoint),
            b.checkpoint_bytes as f64 / 1048576.0
        ),
    );
    let open768 = open_time(&fs, &root, dim as u32);
    row(
        "open of the checkpointed store, 768-d (median of 5)",
        format!(
            "{:.1} ms wall, {:.1} ms on CPU, checkpoint load {:.1} ms (128-d: {:.1} ms on CPU; \
             ratio {:.2})",
            ms(open768.0),
            ms(open768.2),
            ms(open768.1),
            ms(open128.2),
            open768.2.as_secs_f64() / open128.2.as_secs_f64()
        ),
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[cfg(feature = "velesdb")]
fn veles(
    dir: &Path,
    vectors: &[f32],
    dim: usize,
    ids: &[u64],
    baseline: Duration,
    row: &impl Fn(&str, String),
) {
    use velesdb_core::storage::{MmapStorage, VectorStorage};
    let n = vectors.len() / dim;
    let path = dir.join("veles");
    let mut storage = MmapStorage::new(&path, dim).expect("velesdb open");
    let t = Instant::now();
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let batch: Vec<(u64, &[f32])> = (start..end)
            .map(|i| (i as u64, &vectors[i * dim..(i + 1) * dim]))
            .collect();
        storage.store_batch(&batch).expect("velesdb store");
    }
    let load = t.elapsed();
    let t = Instant::now();
    storage.flush().expect("velesdb flush");
    let flush = t.elapsed();
    let mut times = Vec::new();
    let mut acc = 0.0f32;
    for _ in 0..3 {
        let t = CpuClock::start();
        for &id in ids {
            let guard = storage.retrieve_ref(id).expect("get").expect("present");
            acc += sum(&guard);
        }
        times.push(t.elapsed());
    }
    std::hint::black_box(acc);
    let d = median(times);
    row(
        "random get + sum, 128-d, velesdb-core 8.0.0 MmapStorage::retrieve_ref",
        format!(
            "{:.1} ns/get = {:.2}x in-RAM; its batch load {:.0} vectors/s, flush {:.0} ms",
            d.as_nanos() as f64 / n as f64,
            d.as_secs_f64() / baseline.as_secs_f64(),
            n as f64 / load.as_secs_f64(),
            ms(flush)
        ),
    );
}
