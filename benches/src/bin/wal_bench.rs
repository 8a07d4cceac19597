//! Write-ahead log benchmark: the machine's limits, Vellum's WAL, and okaywal
//! (with `--features wal-peers`, included in `compare`), in one run on one file system. Prints a Markdown table
//! for docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release -p vellum-benches --features wal-peers --bin wal_bench -- [DIR] [SECONDS]
//! ```
//!
//! DIR (default `./wal-bench-tmp`) must be on the file system to measure; it is created and
//! removed. SECONDS (default 2) is how long each concurrent-writer row runs.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vellum_fs::RealFs;
use vellum_wal::{SyncPolicy, Wal, WalOptions};

const SIZES: [usize; 3] = [64, 1024, 3072];
const THREADS: [usize; 4] = [1, 4, 16, 64];
/// Bytes written by each single-writer throughput row.
const VOLUME_BYTES: u64 = 128 << 20;

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1024.0 * 1024.0)
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    p
}

/// Plain sequential write of `VOLUME_BYTES` in `chunk`-byte writes, then one fdatasync.
fn plain_sequential(dir: &Path, chunk: usize) -> f64 {
    let path = fresh(dir, "plain.dat");
    let mut f = std::fs::File::create(&path).unwrap();
    let buf = vec![0xA5u8; chunk];
    let start = Instant::now();
    let mut written = 0u64;
    while written < VOLUME_BYTES {
        f.write_all(&buf).unwrap();
        written += chunk as u64;
    }
    f.sync_data().unwrap();
    let r = mib_s(written, start.elapsed());
    drop(f);
    std::fs::remove_file(&path).unwrap();
    r
}

/// Median and 99th percentile of `write 4 KiB + fdatasync`, appending or overwriting
/// preallocated space.
fn fsync_latency(dir: &Path, preallocated: bool) -> (Duration, Duration) {
    let path = fresh(dir, "fsync.dat");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let n = 300u64;
    if preallocated {
        let zeros = vec![0u8; 1 << 20];
        for i in 0..2 {
            f.write_all_at(&zeros, i << 20).unwrap();
        }
        f.sync_all().unwrap();
    }
    let buf = vec![0x5Au8; 4096];
    let mut lat = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        f.write_all_at(&buf, i * 4096).unwrap();
        f.sync_data().unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    std::fs::remove_file(&path).unwrap();
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

fn open_wal(dir: &Path, policy: SyncPolicy, preallocate: bool) -> Wal {
    let opts = WalOptions {
        sync_policy: policy,
        preallocate,
        ..WalOptions::default()
    };
    Wal::open(RealFs::shared(), dir, opts).unwrap().0
}

/// One writer, `Never`, `VOLUME_BYTES` of records, then one `sync()`.
fn vellum_never(dir: &Path, size: usize, preallocate: bool) -> (f64, f64) {
    let path = fresh(dir, "vellum-never");
    let wal = open_wal(&path, SyncPolicy::Never, preallocate);
    let rec = vec![7u8; size];
    let n = VOLUME_BYTES / size as u64;
    let start = Instant::now();
    for _ in 0..n {
        wal.append(&rec).unwrap();
    }
    wal.sync().unwrap();
    let d = start.elapsed();
    (n as f64 / d.as_secs_f64(), mib_s(n * size as u64, d))
}

/// `threads` writers appending under `Always` for `secs`: records/s and records per sync.
fn vellum_always(dir: &Path, size: usize, threads: usize, secs: f64) -> (f64, f64) {
    let path = fresh(dir, "vellum-always");
    let wal = Arc::new(open_wal(&path, SyncPolicy::Always, true));
    let (count, d) = run_writers(threads, secs, {
        let wal = Arc::clone(&wal);
        move || {
            let rec = vec![3u8; size];
            wal.append(&rec).unwrap();
        }
    });
    let syncs = wal.stats().syncs.max(1);
    (count as f64 / d.as_secs_f64(), count as f64 / syncs as f64)
}

/// Runs `op` from `threads` threads for `secs` seconds; returns operations and time.
fn run_writers(
    threads: usize,
    secs: f64,
    op: impl Fn() + Send + Sync + Clone + 'static,
) -> (u64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, count, op) = (Arc::clone(&stop), Arc::clone(&count), op.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    op();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    (count.load(Ordering::Relaxed), start.elapsed())
}

/// Writes `VOLUME_BYTES` of records (`Never`, one final sync), then times a reopen
/// (recovery scan) and a full read-back with checksum checks. Returns
/// (open ms, replay MiB/s of payload, replay records/s).
fn vellum_replay(dir: &Path, size: usize) -> (f64, f64, f64) {
    let path = fresh(dir, "vellum-replay");
    let wal = open_wal(&path, SyncPolicy::Never, true);
    let rec = vec![9u8; size];
    let n = VOLUME_BYTES / size as u64;
    for _ in 0..n {
        wal.append(&rec).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let t = Instant::now();
    let wal = open_wal(&path, SyncPolicy::Never, true);
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    let mut it = wal.iter_from(1).unwrap();
    let (mut got, mut bytes) = (0u64, 0u64);
    while let Some(r) = it.next_record() {
        let (_, data) = r.unwrap();
        bytes += data.len() as u64;
        got += 1;
    }
    let d = start.elapsed();
    assert_eq!(got, n);
    (open_ms, mib_s(bytes, d), got as f64 / d.as_secs_f64())
}

#[cfg(feature = "wal-peers")]
mod okay {
    use super::*;
    use okaywal::{Configuration, Entry, EntryId, LogManager, ReadChunkResult, SegmentReader};

    #[derive(Debug, Default)]
    pub struct Counter {
        pub records: u64,
        pub bytes: u64,
    }

    impl LogManager for Counter {
        fn recover(&mut self, entry: &mut Entry<'_>) -> std::io::Result<()> {
            while let ReadChunkResult::Chunk(mut chunk) = entry.read_chunk()? {
                let data = chunk.read_all()?;
                if !chunk.check_crc()? {
                    return Err(std::io::Error::other("crc"));
                }
                self.records += 1;
                self.bytes += data.len() as u64;
            }
            Ok(())
        }

        fn checkpoint_to(
            &mut self,
            _last: EntryId,
            _entries: &mut SegmentReader,
            _wal: &okaywal::WriteAheadLog,
        ) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn config(path: &Path) -> Configuration {
        // Segments as large as Vellum's, checkpoints never (the log keeps everything, as
        // Vellum's does until `truncate_before`).
        Configuration::default_for(path)
            .preallocate_bytes(64 << 20)
            .checkpoint_after_bytes(u64::MAX / 2)
    }

    pub fn always(dir: &Path, size: usize, threads: usize, secs: f64) -> f64 {
        let path = fresh(dir, "okaywal-always");
        let wal = config(&path).open(Counter::default()).unwrap();
        let (count, d) = run_writers(threads, secs, move || {
            let rec = vec![3u8; size];
            let mut w = wal.begin_entry().unwrap();
            w.write_chunk(&rec).unwrap();
            w.commit().unwrap();
        });
        count as f64 / d.as_secs_f64()
    }

    /// Writes the log with 64 writers (okaywal syncs every commit), then times recovery,
    /// which reads every chunk and checks its CRC. Returns (MiB/s, records/s, records).
    pub fn replay(dir: &Path, size: usize, secs: f64) -> (f64, f64, u64) {
        let path = fresh(dir, "okaywal-replay");
        {
            let wal = config(&path).open(Counter::default()).unwrap();
            run_writers(64, secs, move || {
                let rec = vec![9u8; size];
                let mut w = wal.begin_entry().unwrap();
                w.write_chunk(&rec).unwrap();
                w.commit().unwrap();
            });
        }
        let start = Instant::now();
        let counter = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
        let manager = Shared(Arc::clone(&counter));
        let wal = config(&path).open(manager).unwrap();
        let d = start.elapsed();
        drop(wal);
        let (records, bytes) = *counter.lock().unwrap();
        (mib_s(bytes, d), records as f64 / d.as_secs_f64(), records)
    }

    #[derive(Debug)]
    struct Shared(Arc<std::sync::Mutex<(u64, u64)>>);

    impl LogManager for Shared {
        fn recover(&mut self, entry: &mut Entry<'_>) -> std::io::Result<()> {
            let mut c = Counter::default();
            c.recover(entry)?;
            let mut g = self.0.lock().unwrap();
            g.0 += c.records;
            g.1 += c.bytes;
            Ok(())
        }

        fn checkpoint_to(
            &mut self,
            _last: EntryId,
            _entries: &mut SegmentReader,
            _wal: &okaywal::WriteAheadLog,
        ) -> std::io::Result<()> {
            Ok(())
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("wal-bench-tmp", String::as_str));
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    std::fs::create_dir_all(&dir).unwrap();

    println!("## machine limits (same directory: {})\n", dir.display());
    println!("| measurement | result |\n|---|---|");
    let seq_1m = plain_sequential(&dir, 1 << 20);
    println!(
        "| sequential write, 1 MiB writes, {} MiB then fdatasync | {seq_1m:.0} MiB/s |",
        VOLUME_BYTES >> 20
    );
    let seq_3k = plain_sequential(&dir, 3072);
    println!("| sequential write, 3 KiB writes, then fdatasync | {seq_3k:.0} MiB/s |");
    for (pre, name) in [(false, "append"), (true, "overwrite preallocated")] {
        let (p50, p99) = fsync_latency(&dir, pre);
        println!(
            "| write 4 KiB + fdatasync, {name} | median {:.3} ms, p99 {:.3} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }

    println!("\n## appends (records/s; MiB/s of payload for Never)\n");
    #[cfg(feature = "wal-peers")]
    println!(
        "| record | mode | writers | Vellum | okaywal | Vellum / okaywal |\n|---|---|---|---|---|---|"
    );
    #[cfg(not(feature = "wal-peers"))]
    println!("| record | mode | writers | Vellum |\n|---|---|---|---|");
    for size in SIZES {
        let (rps, mbs) = vellum_never(&dir, size, true);
        #[cfg(feature = "wal-peers")]
        println!(
            "| {size} B | Never | 1 | {rps:.0} ({mbs:.0} MiB/s, {:.2}x plain 3 KiB writes) | n/a (every commit syncs) | |",
            mbs / seq_3k
        );
        #[cfg(not(feature = "wal-peers"))]
        println!(
            "| {size} B | Never | 1 | {rps:.0} ({mbs:.0} MiB/s, {:.2}x plain 3 KiB writes) |",
            mbs / seq_3k
        );
        if size == 3072 {
            let (rps, mbs) = vellum_never(&dir, size, false);
            println!("| {size} B | Never, no preallocation | 1 | {rps:.0} ({mbs:.0} MiB/s) | | |");
        }
        let mut single = 0.0;
        for threads in THREADS {
            let (rps, per_sync) = vellum_always(&dir, size, threads, secs);
            if threads == 1 {
                single = rps;
            }
            let scale = rps / single;
            #[cfg(feature = "wal-peers")]
            {
                let ok = okay::always(&dir, size, threads, secs);
                println!(
                    "| {size} B | Always | {threads} | {rps:.0} ({per_sync:.1} rec/sync, {scale:.1}x 1 writer) | {ok:.0} | {:.2} |",
                    rps / ok
                );
            }
            #[cfg(not(feature = "wal-peers"))]
            println!(
                "| {size} B | Always | {threads} | {rps:.0} ({per_sync:.1} rec/sync, {scale:.1}x 1 writer) |"
            );
        }
    }

    println!("\n## replay from the page cache (reopen, then read every record, CRC checked)\n");
    println!(
        "| record | Vellum open | Vellum replay | okaywal recovery (reads + CRC) |\n|---|---|---|---|"
    );
    for size in SIZES {
        let (open_ms, mbs, rps) = vellum_replay(&dir, size);
        #[cfg(feature = "wal-peers")]
        {
            let (omb, orps, n) = okay::replay(&dir, size, secs);
            println!(
                "| {size} B | {open_ms:.1} ms for {} MiB | {mbs:.0} MiB/s ({rps:.0} rec/s) | {omb:.0} MiB/s ({orps:.0} rec/s, {n} records) |",
                VOLUME_BYTES >> 20
            );
        }
        #[cfg(not(feature = "wal-peers"))]
        println!(
            "| {size} B | {open_ms:.1} ms for {} MiB | {mbs:.0} MiB/s ({rps:.0} rec/s) | |",
            VOLUME_BYTES >> 20
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
