//! The `vellum` facade side by side with the seed systems it replaces:
//! `velesdb-core` 8.0.0 and `foxstash-core` 0.9.0 on the same data, machine and run.
//!
//! ```text
//! benches/scripts/get-datasets.sh            # installs and converts the data sets
//! CARGO_TARGET_DIR=target-seeds cargo build --release -p vellum-benches --features compare --bin seed_compare
//! target-seeds/release/seed_compare --dataset fashion-mnist --rows 20000 --rows-batch1 2000
//! ```
//!
//! Three measurements per system, each at its strongest durability setting:
//!
//! 1. durable ingest: the first `--rows` training vectors in batches of each `--batches` size,
//!    the system's durability barrier after every batch (batch size 1 over the first
//!    `--rows-batch1` rows only: one barrier per point is slow for every system);
//! 2. reopen: checkpoint (each system's own way), drop everything, then time the open until
//!    the first query is answered (open and first query also reported apart);
//! 3. search on the reopened instance, one query thread: `ef` is swept upwards until
//!    recall@10 against exact ground truth reaches `--target-recall` (default 0.95).
//!
//! Without the `seed-peers` (or `compare`) feature only Vellum runs. Data sets are read from
//! `benches/data/<name>/{train,test}.f32` (u32 rows, u32 dim, row-major little-endian f32).
//! Every system gets M = 16, ef_construction = 200 and no payloads.
#![forbid(unsafe_code)]

#[cfg(feature = "seed-peers")]
#[path = "../seed_peers.rs"]
mod seed_peers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vellum::{
    CollectionConfig, Database, DatabaseOptions, HnswParams, Metric, Point, SearchParams,
    SyncPolicy,
};
use vellum_benches::{CurvePoint, Dataset, K, exact_truth, process_cpu, read_matrix, sweep_point};

/// HNSW links per node (layer 0: 2 M) for every system.
pub const M: usize = 16;
/// HNSW construction candidate list for every system.
pub const EF_CONSTRUCTION: usize = 200;
/// The `ef` values tried, in order, until the recall target is reached.
pub const EFS: &[usize] = &[
    10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
];

/// The 1, 5 and 15 minute load averages, as `uptime` prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Wall and CPU (all threads) time of `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (start, cpu) = (Instant::now(), process_cpu());
    let out = f();
    (out, start.elapsed(), process_cpu().saturating_sub(cpu))
}

/// One durable ingest run.
#[derive(Debug, Clone)]
pub struct IngestRow {
    pub setting: String,
    pub batch: usize,
    pub rows: usize,
    pub wall: Duration,
    pub cpu: Duration,
}

/// Reopen measurement.
#[derive(Debug, Clone)]
pub struct Reopen {
    /// How the state was made durable before the drop.
    pub how: String,
    /// Time of that checkpoint/flush.
    pub checkpoint: Duration,
    pub open: Duration,
    pub first_query: Duration,
    pub on_disk_bytes: u64,
}

/// Everything one system measured on one data set.
#[derive(Debug, Clone)]
pub struct Report {
    pub system: String,
    pub ingest: Vec<IngestRow>,
    pub reopen: Vec<Reopen>,
    pub curve: Vec<CurvePoint>,
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report for `system`.
    pub fn new(system: &str) -> Report {
        Report {
            system: system.to_owned(),
            ingest: Vec::new(),
            reopen: Vec::new(),
            curve: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Runs `ingest` once per `--batches` size, each into a fresh `<work dir>/<label>-b<batch>`
/// (batch size 1 over the first `--rows-batch1` rows only), records each row in `report`,
/// and keeps the last run's handle and directory for the reopen and search measurements
/// (the earlier runs' directories are removed).
pub fn ingest_every_batch<D>(
    data: &Dataset,
    args: &Args,
    report: &mut Report,
    label: &str,
    mut ingest: impl FnMut(&Dataset, &Path, usize, usize) -> (D, IngestRow),
) -> (D, PathBuf) {
    let mut kept = None;
    for (n, &batch) in args.batches.iter().enumerate() {
        let rows = if batch == 1 {
            args.rows_batch1.min(data.rows())
        } else {
            data.rows()
        };
        let dir = args.work_dir.join(format!("{label}-b{batch}"));
        let (handle, row) = ingest(data, &dir, rows, batch);
        eprintln!(
            "{label}: batch {batch}: {rows} rows in {:.2} s ({:.2} s CPU)",
            row.wall.as_secs_f64(),
            row.cpu.as_secs_f64()
        );
        report.ingest.push(row);
        if n + 1 == args.batches.len() {
            kept = Some((handle, dir));
        } else {
            drop(handle);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    kept.expect("at least one batch size")
}

/// Sweeps `EFS` upwards until the highest recall target is reached (that point included).
pub fn sweep(
    system: &str,
    data: &Dataset,
    targets: &[f64],
    mut search_at: impl FnMut(usize, &[f32]) -> Vec<u64>,
) -> Vec<CurvePoint> {
    let mut curve = Vec::new();
    for &ef in EFS {
        let point = sweep_point(data, ef, |q| search_at(ef, q));
        eprintln!(
            "{system} ef {ef}: recall {:.4} qps {:.0} cpu-qps {:.0}",
            point.recall, point.qps, point.cpu_qps
        );
        let reached = point.recall >= targets.iter().copied().fold(0.0, f64::max);
        curve.push(point);
        if reached {
            break;
        }
    }
    curve
}

/// Bytes allocated on disk for every file under `dir` (what `du` counts: preallocated
/// segments count in full, sparse holes do not).
pub fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.blocks() * 512),
            Err(_) => 0,
        })
        .sum()
}

fn fmt_cpu_qps(qps: f64) -> String {
    if qps > 0.0 {
        format!("{qps:.0}")
    } else {
        "—".into()
    }
}

/// A fresh, empty directory.
pub fn fresh_dir(dir: &Path) -> PathBuf {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("clear work dir");
    }
    std::fs::create_dir_all(dir).expect("create work dir");
    dir.to_path_buf()
}

/// Configuration of one run.
#[derive(Debug)]
pub struct Args {
    pub dataset: String,
    pub data_dir: PathBuf,
    pub work_dir: PathBuf,
    /// Rows ingested in batches (and searched).
    pub rows: usize,
    /// Rows ingested with batch size 1.
    pub rows_batch1: usize,
    /// Batch sizes; the last one builds the instance that is reopened and searched.
    pub batches: Vec<usize>,
    pub queries: usize,
    pub systems: Vec<String>,
    /// Recall@10 targets; the sweep stops once the highest is reached.
    pub target_recall: Vec<f64>,
    /// Also time Vellum's ingest with a flat index (log + store only) and with
    /// `SyncPolicy::Never` (index + store only), to show where the time goes.
    pub breakdown: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        dataset: "fashion-mnist".into(),
        data_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
        work_dir: std::env::temp_dir().join("vellum-seed-compare"),
        rows: 20_000,
        rows_batch1: 2_000,
        batches: vec![1, 1000],
        queries: 1000,
        systems: vec!["vellum".into(), "velesdb".into(), "foxstash".into()],
        target_recall: vec![0.95, 0.99],
        breakdown: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value(),
            "--data-dir" => args.data_dir = value().into(),
            "--work-dir" => args.work_dir = value().into(),
            "--rows" => args.rows = value().parse().expect("--rows N"),
            "--rows-batch1" => args.rows_batch1 = value().parse().expect("--rows-batch1 N"),
            "--batches" => {
                args.batches = value()
                    .split(',')
                    .map(|s| s.parse().expect("--batches a,b"))
                    .collect()
            }
            "--queries" => args.queries = value().parse().expect("--queries N"),
            "--systems" => args.systems = value().split(',').map(str::to_owned).collect(),
            "--target-recall" => {
                args.target_recall = value()
                    .split(',')
                    .map(|s| s.parse().expect("--target-recall a,b"))
                    .collect()
            }
            "--breakdown" => args.breakdown = true,
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        !args.batches.is_empty() && args.batches.iter().all(|&b| b > 0),
        "--batches needs sizes > 0"
    );
    args
}

fn load(args: &Args) -> Dataset {
    let metric = if args.dataset.starts_with("glove") {
        Metric::Cosine
    } else {
        Metric::L2
    };
    let dir = args.data_dir.join(&args.dataset);
    let (dim, mut train) = read_matrix(&dir.join("train.f32")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run benches/scripts/get-datasets.sh)",
            dir.display()
        )
    });
    let (qdim, mut queries) =
        read_matrix(&dir.join("test.f32")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert_eq!(dim, qdim, "train and test dimensions differ");
    train.truncate(args.rows * dim);
    queries.truncate(args.queries * dim);
    let rows = train.len() / dim;
    let start = Instant::now();
    let truth = exact_truth(&train, dim, &queries, metric);
    eprintln!(
        "exact ground truth for {} queries over {rows} rows in {:.1} s",
        truth.len(),
        start.elapsed().as_secs_f64()
    );
    Dataset {
        name: args.dataset.clone(),
        metric,
        dim,
        train,
        queries,
        truth,
    }
}

const COLLECTION: &str = "bench";

fn vellum_config(data: &Dataset) -> CollectionConfig {
    CollectionConfig::new(data.dim, data.metric).hnsw(HnswParams {
        m: M,
        ef_construction: EF_CONSTRUCTION,
        ..HnswParams::default()
    })
}

/// Ingests the first `rows` rows in batches of `batch` into a fresh database at `dir`.
fn vellum_ingest(data: &Dataset, dir: &Path, rows: usize, batch: usize) -> (Database, IngestRow) {
    vellum_ingest_with(
        data,
        dir,
        rows,
        batch,
        SyncPolicy::Always,
        vellum_config(data),
    )
}

fn vellum_ingest_with(
    data: &Dataset,
    dir: &Path,
    rows: usize,
    batch: usize,
    policy: SyncPolicy,
    config: CollectionConfig,
) -> (Database, IngestRow) {
    let dir = fresh_dir(dir);
    let options = DatabaseOptions::default().with_sync_policy(policy);
    let db = Database::open(&dir, options).expect("vellum open");
    let coll = db
        .create_collection(COLLECTION, config)
        .expect("vellum create");
    let ((), wall, cpu) = timed(|| {
        let mut start = 0;
        while start < rows {
            let end = (start + batch).min(rows);
            coll.upsert_batch((start..end).map(|i| Point::new(i as u64, data.row(i).to_vec())))
                .expect("vellum upsert");
            start = end;
        }
    });
    assert_eq!(coll.len(), rows);
    let row = IngestRow {
        setting: "SyncPolicy::Always (fsync of the WAL before each batch is acknowledged)".into(),
        batch,
        rows,
        wall,
        cpu,
    };
    (db, row)
}

fn run_vellum(data: &Dataset, args: &Args) -> Report {
    let mut report = Report::new("vellum");
    let (db, dir) = ingest_every_batch(data, args, &mut report, "vellum", vellum_ingest);
    let rows = db.collection(COLLECTION).expect("collection").len();
    if args.breakdown {
        let batch = *args.batches.last().expect("a batch size");
        let variants = [
            (
                "diagnostic: SyncPolicy::Always, flat index (log + vector store only)",
                SyncPolicy::Always,
                vellum_config(data).flat(),
            ),
            (
                "diagnostic: SyncPolicy::Never, HNSW (no fsync: store + graph only)",
                SyncPolicy::Never,
                vellum_config(data),
            ),
        ];
        for (what, policy, config) in variants {
            let scratch = args.work_dir.join("vellum-diag");
            let (scratch_db, mut row) =
                vellum_ingest_with(data, &scratch, rows, batch, policy, config);
            drop(scratch_db);
            let _ = std::fs::remove_dir_all(&scratch);
            eprintln!(
                "vellum: {what}: {rows} rows in {:.2} s ({:.2} s CPU)",
                row.wall.as_secs_f64(),
                row.cpu.as_secs_f64()
            );
            row.setting = what.into();
            report.ingest.push(row);
        }
    }

    // Reopen with the whole ingest still in the log tail (no checkpoint: what a crash
    // right after the ingest leaves).
    drop(db);
    let (db, open, _) =
        timed(|| Database::open(&dir, DatabaseOptions::default()).expect("vellum reopen"));
    let coll = db.collection(COLLECTION).expect("collection");
    let (hits, first_query, _) = timed(|| coll.search(data.query(0), K).expect("first search"));
    assert_eq!(hits.len(), K.min(rows));
    report.reopen.push(Reopen {
        how: "none: whole ingest in the WAL tail (replayed into store and graph)".into(),
        checkpoint: Duration::ZERO,
        open,
        first_query,
        on_disk_bytes: dir_bytes(&dir),
    });
    eprintln!(
        "vellum: reopen from WAL tail {:.1} ms, first query {:.2} ms",
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );

    // Checkpoint, drop, reopen: the steady state.
    let (_, checkpoint, _) = timed(|| coll.checkpoint().expect("checkpoint"));
    drop(coll);
    drop(db);
    let (db, open, _) =
        timed(|| Database::open(&dir, DatabaseOptions::default()).expect("vellum reopen"));
    let coll = db.collection(COLLECTION).expect("collection");
    let (hits, first_query, _) = timed(|| coll.search(data.query(0), K).expect("first search"));
    assert_eq!(hits.len(), K.min(rows));
    assert_eq!(coll.len(), rows);
    report.reopen.push(Reopen {
        how: "Collection::checkpoint() (vectors msync, id map, graph, manifest)".into(),
        checkpoint,
        open,
        first_query,
        on_disk_bytes: dir_bytes(&dir),
    });
    eprintln!(
        "vellum: checkpoint {:.2} s, reopen {:.1} ms, first query {:.2} ms",
        checkpoint.as_secs_f64(),
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );

    report.curve = sweep("vellum", data, &args.target_recall, |ef, q| {
        let params = SearchParams {
            ef: Some(ef),
            ..SearchParams::default()
        };
        coll.search_with(q, K, &params)
            .expect("search")
            .into_iter()
            .map(|h| h.id)
            .collect()
    });
    drop(coll);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn fmt_s(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn print_report(
    data: &Dataset,
    args: &Args,
    reports: &[Report],
    load_before: &str,
    load_after: &str,
) {
    println!(
        "\n### {} ({} of its rows x {}, {:?}, {} queries, k = {K}; batch size 1 over the first {} rows)\n",
        data.name,
        data.rows(),
        data.dim,
        data.metric,
        data.query_count(),
        args.rows_batch1.min(data.rows())
    );
    println!("Load average (1/5/15 min) before: {load_before}; after: {load_after}.\n");
    println!("Durable ingest (each system's strongest setting; index built during ingest):\n");
    println!(
        "| system | durability setting | batch | rows | wall | CPU (all threads) | points/s (wall) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in reports {
        for i in &r.ingest {
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.0} |",
                r.system,
                i.setting,
                i.batch,
                i.rows,
                fmt_s(i.wall),
                fmt_s(i.cpu),
                i.rows as f64 / i.wall.as_secs_f64()
            );
        }
    }
    println!("\nReopen (process-internal: drop, then open until the first query is answered):\n");
    println!(
        "| system | made durable before the drop by | checkpoint | open | first query | open + first query | on disk |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in reports {
        for o in &r.reopen {
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.1} MB |",
                r.system,
                o.how,
                if o.checkpoint.is_zero() {
                    "—".into()
                } else {
                    fmt_s(o.checkpoint)
                },
                fmt_ms(o.open),
                fmt_ms(o.first_query),
                fmt_ms(o.open + o.first_query),
                o.on_disk_bytes as f64 / 1e6
            );
        }
    }
    println!(
        "\nSearch on the reopened instance, 1 query thread, ef swept upwards from k = {K} until recall@10 reaches the target:\n"
    );
    println!(
        "| target | system | first ef reaching it | recall@10 | QPS (wall) | QPS (CPU time) |"
    );
    println!("|---|---|---|---|---|---|");
    for &target in &args.target_recall {
        for r in reports {
            match r.curve.iter().find(|p| p.recall >= target) {
                Some(p) => println!(
                    "| {target} | {} | {} | {:.4} | {:.0} | {} |",
                    r.system,
                    p.ef,
                    p.recall,
                    p.qps,
                    fmt_cpu_qps(p.cpu_qps)
                ),
                None => println!(
                    "| {target} | {} | not reached (best {:.4}) | — | — | — |",
                    r.system,
                    r.curve.iter().map(|p| p.recall).fold(0.0, f64::max)
                ),
            }
        }
    }
    println!("\nWhole sweep:\n");
    println!("| system | ef | recall@10 | QPS (wall) | QPS (CPU time) |");
    println!("|---|---|---|---|---|");
    for r in reports {
        for p in &r.curve {
            println!(
                "| {} | {} | {:.4} | {:.0} | {} |",
                r.system,
                p.ef,
                p.recall,
                p.qps,
                fmt_cpu_qps(p.cpu_qps)
            );
        }
    }
    for r in reports {
        for n in &r.notes {
            println!("\n- {}: {n}", r.system);
        }
    }
}

fn main() {
    let args = parse_args();
    let data = load(&args);
    eprintln!(
        "{}: {} x {} ({:?}), {} queries",
        data.name,
        data.rows(),
        data.dim,
        data.metric,
        data.query_count()
    );
    std::fs::create_dir_all(&args.work_dir).expect("work dir");
    let load_before = load_average();
    let mut reports = Vec::new();
    for system in &args.systems {
        match system.as_str() {
            "vellum" => reports.push(run_vellum(&data, &args)),
            #[cfg(feature = "seed-peers")]
            "velesdb" => reports.push(seed_peers::run_velesdb(&data, &args)),
            #[cfg(feature = "seed-peers")]
            "foxstash" => reports.push(seed_peers::run_foxstash(&data, &args)),
            other => eprintln!("skipping {other}: peers need --features seed-peers (or compare)"),
        }
    }
    let load_after = load_average();
    print_report(&data, &args, &reports, &load_before, &load_after);
}
