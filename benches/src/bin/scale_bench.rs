//! `scale_bench`: what grows with the collection and what grows with the change (issue 14).
//!
//! ```sh
//! cargo build --release -p vellum-benches --bin scale_bench
//! target/release/scale_bench --points 100000
//! target/release/scale_bench --points 1000000 --collections 1000 --empty-collections 10000
//! ```
//!
//! Generated clustered 128-d points (`--dim`), a flat collection (`--hnsw` for the default
//! HNSW), durable writes in batches of 1000, default options otherwise. Measures, in order:
//! ingest with background checkpoints on and off; a full checkpoint and checkpoints after 1,
//! 1,000 and 100,000 changes (time and the collection lock's hold); the longest wait of a
//! writer and a searcher probing during a checkpoint after 100,000 changes; disk (apparent
//! and allocated) and files; reopen in a fresh process (time to open, first search, peak
//! RSS); the same after 10,000 writes left un-checkpointed (what a kill -9 leaves); disk
//! after deleting 90% and checkpointing, then after compacting; then `--empty-collections` empty and
//! `--collections` small (3 points) collections: disk, files, and in a fresh process the
//! open time, the time to open all, open files and peak RSS. Databases go under
//! `--work-dir` (default: the target directory), removed at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vellum::{CollectionConfig, Database, DatabaseOptions, Point, WriteBatch};
use vellum_benches::latency::{Workload, generated};
use vellum_benches::latency_report::{commit, load_average, output_of};
use vellum_benches::scale::{disk_usage, mib, ms, open_fds, status_kib, with_probes};

const COLLECTION: &str = "c";
const BATCH: usize = 1000;
/// Writes left un-checkpointed before the recovery measurement.
const RECOVERY_TAIL: usize = 10_000;

struct Args {
    points: usize,
    dim: usize,
    hnsw: bool,
    collections: usize,
    empty_collections: usize,
    work_dir: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        points: 100_000,
        dim: 128,
        hnsw: false,
        collections: 1000,
        empty_collections: 1000,
        work_dir: vellum_benches::default_work_dir("scale-bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--points" => args.points = value().parse().expect("--points N"),
            "--dim" => args.dim = value().parse().expect("--dim N"),
            "--hnsw" => args.hnsw = true,
            "--collections" => args.collections = value().parse().expect("--collections N"),
            "--empty-collections" => {
                args.empty_collections = value().parse().expect("--empty-collections N")
            }
            "--work-dir" => args.work_dir = value().into(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(args.points >= 1000, "--points must be at least 1000");
    args
}

fn config(args: &Args) -> CollectionConfig {
    let c = CollectionConfig::new(args.dim, vellum::Metric::L2);
    if args.hnsw { c } else { c.flat() }
}

/// Ingests rows `range` of `work` in batches; returns the wall time.
fn ingest(c: &vellum::Collection, work: &Workload, range: std::ops::Range<usize>) -> Duration {
    let started = Instant::now();
    for start in range.clone().step_by(BATCH) {
        let end = (start + BATCH).min(range.end);
        c.upsert_batch((start..end).map(|i| work.point(i)))
            .expect("ingest");
    }
    started.elapsed()
}

/// Replaces the vectors of ids `0..n` (the "changes" before a checkpoint).
fn change(c: &vellum::Collection, work: &Workload, n: usize) {
    let rows = work.rows();
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        c.upsert_batch(
            (start..end).map(|i| Point::new(i as u64, work.row((i + rows / 2) % rows).to_vec())),
        )
        .expect("change");
    }
}

/// The database at `dir` without background checkpoints, and its collection.
fn open_collection(dir: &Path) -> (Database, vellum::Collection) {
    let db = Database::open(
        dir,
        DatabaseOptions::default().with_background_checkpoints(false),
    )
    .expect("open");
    let c = db.collection(COLLECTION).expect("collection");
    (db, c)
}

fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// Runs this binary as `--child-open DIR DIM [COLLECTION]` and returns its one-line report.
fn child_open(dir: &Path, dim: usize, collection: Option<&str>) -> String {
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = Command::new(exe);
    cmd.arg("--child-open").arg(dir).arg(dim.to_string());
    if let Some(c) = collection {
        cmd.arg(c);
    }
    let out = cmd.output().expect("child runs");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The child: opens the database, then one collection and its first search, or every
/// collection (`stats`); prints the times, open files and peak RSS.
fn child_main(mut rest: impl Iterator<Item = String>) {
    let dir = PathBuf::from(rest.next().expect("dir"));
    let dim: usize = rest.next().expect("dim").parse().expect("dim");
    let collection = rest.next();
    let started = Instant::now();
    let db = Database::open(&dir, DatabaseOptions::default()).expect("open");
    let opened = started.elapsed();
    match collection {
        Some(name) => {
            let t = Instant::now();
            let c = db.collection(&name).expect("collection");
            let coll = t.elapsed();
            let t = Instant::now();
            c.search(&vec![0.5; dim], 10).expect("search");
            let search = t.elapsed();
            println!(
                "open {} ms; collection {} ms; first search {} ms; open files {}; peak RSS {} MiB",
                ms(opened),
                ms(coll),
                ms(search),
                open_fds(),
                mib(status_kib("VmHWM") * 1024)
            );
        }
        None => {
            let t = Instant::now();
            let all = db.stats().expect("open every collection");
            println!(
                "open {} ms; all {} collections {} ms; open files {}; peak RSS {} MiB",
                ms(opened),
                all.len(),
                ms(t.elapsed()),
                open_fds(),
                mib(status_kib("VmHWM") * 1024)
            );
        }
    }
}

fn main() {
    let mut raw = std::env::args().skip(1).peekable();
    if raw.peek().map(String::as_str) == Some("--child-open") {
        raw.next();
        child_main(raw);
        return;
    }
    let args = parse_args();
    let n = args.points;
    let changes_big = 100_000.min(n);
    let work = generated(n + RECOVERY_TAIL, args.dim, 10, 1);
    std::fs::create_dir_all(&args.work_dir).expect("work dir");
    let command: Vec<String> = std::env::args().collect();
    println!(
        "\n## scale_bench: {n} × {} ({})\n",
        args.dim,
        if args.hnsw { "HNSW" } else { "flat" }
    );
    println!("- command: `{}`", command.join(" "));
    println!(
        "- date: {}; commit: {}; {} cores; load average before: {}",
        output_of("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_default(),
        commit(),
        std::thread::available_parallelism().map_or(0, |c| c.get()),
        load_average()
    );
    let total = Instant::now();

    println!("\n| measurement | value |\n|---|---|");
    // 1. Ingest with background checkpoints on, then off (the database kept).
    let main_dir = args.work_dir.join("main");
    for background in [true, false] {
        let dir = if background {
            args.work_dir.join("ingest-bg")
        } else {
            main_dir.clone()
        };
        let db = Database::open(
            &dir,
            DatabaseOptions::default().with_background_checkpoints(background),
        )
        .expect("open");
        let c = db
            .create_collection(COLLECTION, config(&args))
            .expect("create");
        let took = ingest(&c, &work, 0..n);
        if args.hnsw {
            c.wait_indexed().expect("index");
        }
        let label = if background { "on" } else { "off" };
        row(&[
            format!("ingest, background checkpoints {label}"),
            format!(
                "{:.0} points/s ({:.1} s)",
                n as f64 / took.as_secs_f64(),
                took.as_secs_f64()
            ),
        ]);
        if background {
            drop((c, db));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // 2. Checkpoints: full, then after 1, 1,000 and 100,000 changes.
    let (db, c) = open_collection(&main_dir);
    let info = c.checkpoint().expect("checkpoint");
    row(&[
        "full checkpoint: time / lock held".into(),
        format!("{} ms / {} ms", ms(info.elapsed), ms(info.lock_held)),
    ]);
    for changes in [1, 1000, changes_big] {
        change(&c, &work, changes);
        let info = c.checkpoint().expect("checkpoint");
        row(&[
            format!("checkpoint after {changes} changes: time / lock held"),
            format!("{} ms / {} ms", ms(info.elapsed), ms(info.lock_held)),
        ]);
    }
    // 3. Probes during a checkpoint after 100,000 changes.
    change(&c, &work, changes_big);
    let vector = |id: u64| work.row(id as usize % n).to_vec();
    let (info, waits) = with_probes(&c, 10 * n as u64, &vector, work.query(0), || {
        c.checkpoint().expect("checkpoint")
    });
    row(&[
        format!("checkpoint after {changes_big} changes with probes: time / lock held"),
        format!("{} ms / {} ms", ms(info.elapsed), ms(info.lock_held)),
    ]);
    // The same probes for as long again with no checkpoint: a probe's own latency (a
    // flat search over every vector, a durable write's fsync) is not a wait.
    let (_, idle) = with_probes(&c, 20 * n as u64, &vector, work.query(0), || {
        std::thread::sleep(info.elapsed)
    });
    row(&[
        "longest probe op during the checkpoint ÷ without one: writer / searcher".into(),
        format!(
            "{} ÷ {} ms ({} ÷ {} writes) / {} ÷ {} ms ({} ÷ {} searches)",
            ms(waits.writer_max),
            ms(idle.writer_max),
            waits.writes,
            idle.writes,
            ms(waits.searcher_max),
            ms(idle.searcher_max),
            waits.searches,
            idle.searches
        ),
    ]);
    c.checkpoint().expect("checkpoint");
    drop((c, db));
    let disk = disk_usage(&main_dir);
    row(&[
        "disk after checkpoint: apparent / allocated / files".into(),
        format!(
            "{} MiB / {} MiB / {}",
            mib(disk.apparent_bytes),
            mib(disk.allocated_bytes),
            disk.files
        ),
    ]);
    row(&[
        "raw vectors".into(),
        format!("{} MiB", mib((n * args.dim * 4) as u64)),
    ]);
    // 4. Reopen in a fresh process.
    row(&[
        "reopen (fresh process)".into(),
        child_open(&main_dir, args.dim, Some(COLLECTION)),
    ]);
    // 5. Recovery of an un-checkpointed tail.
    {
        let (_db, c) = open_collection(&main_dir);
        ingest(&c, &work, n..n + RECOVERY_TAIL);
    }
    row(&[
        format!("recovery with {RECOVERY_TAIL} writes not checkpointed (fresh process)"),
        child_open(&main_dir, args.dim, Some(COLLECTION)),
    ]);
    // 6. Delete 90%.
    {
        let (db, c) = open_collection(&main_dir);
        let total_points = (n + RECOVERY_TAIL) as u64;
        let doomed: Vec<u64> = (0..total_points).filter(|id| id % 10 != 0).collect();
        for chunk in doomed.chunks(BATCH) {
            let mut batch = WriteBatch::new();
            for &id in chunk {
                batch.delete(id);
            }
            c.write(batch).expect("delete");
        }
        c.checkpoint().expect("checkpoint");
        c.checkpoint().expect("checkpoint");
        let live = c.len();
        let live_bytes = (live * args.dim * 4) as u64;
        let disk = disk_usage(&main_dir);
        row(&[
            "after deleting 90% and checkpointing: apparent / allocated / live vectors".into(),
            format!(
                "{} MiB / {} MiB / {} MiB",
                mib(disk.apparent_bytes),
                mib(disk.allocated_bytes),
                mib(live_bytes)
            ),
        ]);
        let started = Instant::now();
        let report = c.compact().expect("compact");
        let took = started.elapsed();
        drop((c, db));
        let disk = disk_usage(&main_dir);
        row(&[
            "then compacting: time / moved / segments / apparent / allocated (÷ live)".into(),
            format!(
                "{:.1} s / {} / {} -> {} / {} MiB / {} MiB ({:.2}×)",
                took.as_secs_f64(),
                report.moved,
                report.segments_before,
                report.segments_after,
                mib(disk.apparent_bytes),
                mib(disk.allocated_bytes),
                disk.allocated_bytes as f64 / live_bytes as f64
            ),
        ]);
    }
    let _ = std::fs::remove_dir_all(&main_dir);
    // 7. Many collections.
    for (count, points) in [(args.empty_collections, 0usize), (args.collections, 3)] {
        if count == 0 {
            continue;
        }
        let dir = args.work_dir.join(format!("many-{points}"));
        let started = Instant::now();
        {
            let db = Database::open(&dir, DatabaseOptions::default()).expect("open");
            for i in 0..count {
                let c = db
                    .create_collection(&format!("c{i}"), config(&args))
                    .expect("create");
                if points > 0 {
                    c.upsert_batch((0..points).map(|p| work.point(i * points + p)))
                        .expect("write");
                }
            }
        }
        let made = started.elapsed();
        let disk = disk_usage(&dir);
        row(&[
            format!(
                "{count} collections of {points} points: made in / apparent / allocated / files"
            ),
            format!(
                "{:.1} s / {} MiB / {} MiB / {}",
                made.as_secs_f64(),
                mib(disk.apparent_bytes),
                mib(disk.allocated_bytes),
                disk.files
            ),
        ]);
        row(&[
            format!("{count} collections of {points} points: reopen, one used (fresh process)"),
            child_open(&dir, args.dim, Some("c0")),
        ]);
        row(&[
            format!("{count} collections of {points} points: reopen, all opened (fresh process)"),
            child_open(&dir, args.dim, None),
        ]);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&args.work_dir);
    println!(
        "\n- wall time {:.0} s; load average after: {}",
        total.elapsed().as_secs_f64(),
        load_average()
    );
}
