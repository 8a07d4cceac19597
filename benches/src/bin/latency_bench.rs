//! Search latency while durable writers ingest (issue 13), through the public API of the
//! `vellum` facade only.
//!
//! ```text
//! benches/scripts/get-datasets.sh            # optional: fashion-mnist and GloVe-50
//! cargo build --release -p vellum-benches --bin latency_bench
//! target/release/latency_bench --dataset generated            # 30k x 128, clustered, L2
//! target/release/latency_bench --dataset fashion-mnist --runs 3
//! target/release/latency_bench --dataset glove-50 --rows 100000
//! CARGO_TARGET_DIR=target-seeds cargo build --release -p vellum-benches --features seed-peers --bin latency_bench
//! ```
//!
//! `--index-lag POINTS,BYTES` sets `DatabaseOptions::with_index_lag` (how far writers may
//! run ahead of the graph while nobody searches).
//!
//! Per run, each database fresh, under the default options (`SyncPolicy::Always`) and the
//! default HNSW parameters (M 16, ef_construction 200, default ef):
//!
//! (a) preload: the first half of the rows in batches of 1000, then wait until
//!     `stats().indexed == stats().points`; then one thread searches (top 10, default ef) for
//!     `--search-secs` with no writer: p50/p99/p99.9 latency and QPS;
//! (b) the same search loop while one writer ingests the other half in batches of 1000, and
//!     (a second database, preloaded the same way) while four writers ingest it in batches of
//!     100; the search runs from the first write until the index has caught up;
//! (c) per writer setting: acknowledged points/s (points / time until the last write
//!     returned) and the time until fully indexed, both from the first write;
//! (d) recall@10 of the default search against exact search (`SearchParams::exact`) on the
//!     first `--recall-queries` queries, once fully indexed.
//!
//! With the `seed-peers` feature, all rows are also ingested from empty in batches of 1000 on
//! one thread by Vellum, velesdb-core and foxstash-core (`src/latency_peers.rs`). Output: a
//! markdown table per measurement; with `--runs N` each cell is "median (min–max)".
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use vellum::{CollectionConfig, Database, DatabaseOptions};
use vellum_benches::latency::{
    IngestTimes, PRELOAD_BATCH, Until, WRITER_SETTINGS, Workload, generated, ingest_and_wait,
    ingest_beside_search, load_dataset, recall, search_loop,
};
use vellum_benches::latency_report::{Run, load_average, print_report};

const COLLECTION: &str = "bench";

#[derive(Debug)]
struct Args {
    /// `fashion-mnist`, `glove-50`, `generated`, or `auto` (fashion-mnist when converted).
    dataset: String,
    data_dir: PathBuf,
    work_dir: PathBuf,
    rows: Option<usize>,
    queries: usize,
    recall_queries: usize,
    search: Duration,
    runs: usize,
    /// Dimensions and seed of the generated set.
    dim: usize,
    seed: u64,
    /// Seed systems compared with the `seed-peers` feature.
    peers: Vec<String>,
    timeout: Duration,
    /// `DatabaseOptions::with_index_lag` (points, bytes); `None` keeps the defaults.
    index_lag: Option<(usize, u64)>,
}

fn parse_args() -> Args {
    let mut args = Args {
        dataset: "auto".into(),
        data_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
        work_dir: vellum_benches::default_work_dir("latency-bench"),
        rows: None,
        queries: 1000,
        recall_queries: 200,
        search: Duration::from_secs(5),
        runs: 1,
        dim: 128,
        seed: 1,
        peers: vec!["velesdb".into(), "foxstash".into()],
        timeout: Duration::from_secs(1800),
        index_lag: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value(),
            "--data-dir" => args.data_dir = value().into(),
            "--work-dir" => args.work_dir = value().into(),
            "--rows" => args.rows = Some(value().parse().expect("--rows N")),
            "--queries" => args.queries = value().parse().expect("--queries N"),
            "--recall-queries" => {
                args.recall_queries = value().parse().expect("--recall-queries N")
            }
            "--search-secs" => {
                args.search = Duration::from_secs_f64(value().parse().expect("--search-secs S"))
            }
            "--runs" => args.runs = value().parse().expect("--runs N"),
            "--dim" => args.dim = value().parse().expect("--dim N"),
            "--seed" => args.seed = value().parse().expect("--seed N"),
            "--peers" => args.peers = value().split(',').map(str::to_owned).collect(),
            "--timeout-secs" => {
                args.timeout = Duration::from_secs(value().parse().expect("--timeout-secs S"))
            }
            "--index-lag" => {
                let v = value();
                let (points, bytes) = v.split_once(',').expect("--index-lag POINTS,BYTES");
                args.index_lag = Some((
                    points.parse().expect("--index-lag POINTS,BYTES"),
                    bytes.parse().expect("--index-lag POINTS,BYTES"),
                ));
            }
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        args.runs > 0 && args.queries > 0,
        "--runs and --queries need N > 0"
    );
    args
}

/// The named data set; with `auto`, fashion-mnist when it is converted, else generated data.
/// A data set named explicitly but not found is an error, not a silent fallback.
fn workload(args: &Args) -> Workload {
    let mut name = args.dataset.as_str();
    if name == "auto" {
        let converted = args.data_dir.join("fashion-mnist/train.f32").exists();
        name = if converted {
            "fashion-mnist"
        } else {
            eprintln!(
                "fashion-mnist is not converted under {} (benches/scripts/get-datasets.sh): using generated data",
                args.data_dir.display()
            );
            "generated"
        };
    }
    if name == "generated" {
        return generated(
            args.rows.unwrap_or(30_000),
            args.dim,
            args.queries,
            args.seed,
        );
    }
    let rows = args.rows.unwrap_or(usize::MAX);
    load_dataset(&args.data_dir, name, rows, args.queries).unwrap_or_else(|e| {
        panic!(
            "{name} not loaded from {} ({e}): run benches/scripts/get-datasets.sh, pass --data-dir, or use --dataset generated",
            args.data_dir.display()
        )
    })
}

fn fresh_db(dir: &Path, work: &Workload, args: &Args) -> (Database, vellum::Collection) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("clear database dir");
    }
    let mut options = DatabaseOptions::default();
    if let Some((points, bytes)) = args.index_lag {
        options = options.with_index_lag(points, bytes);
    }
    let db = Database::open(dir, options).expect("open");
    let coll = db
        .create_collection(COLLECTION, CollectionConfig::new(work.dim, work.metric))
        .expect("create collection");
    (db, coll)
}

fn run_once(work: &Workload, args: &Args, run: usize) -> Run {
    let load_before = load_average();
    let (rows, half) = (work.rows(), work.rows() / 2);
    let mut preload = None;
    let mut alone = None;
    let mut beside = Vec::new();
    for (n, &(writers, batch)) in WRITER_SETTINGS.iter().enumerate() {
        let dir = args.work_dir.join(format!("run{run}-writers{writers}"));
        let (db, coll) = fresh_db(&dir, work, args);
        let loaded = ingest_and_wait(&coll, work, 0..half, PRELOAD_BATCH, args.timeout);
        eprintln!(
            "run {run}: preloaded {half} rows: acknowledged in {:.2} s, indexed in {:.2} s",
            loaded.acknowledged.as_secs_f64(),
            loaded.indexed.as_secs_f64()
        );
        if n == 0 {
            preload = Some(loaded);
            // Warm-up: page in what the first searches touch.
            search_loop(&coll, work, Until::Elapsed(Duration::from_millis(200)));
            let a = search_loop(&coll, work, Until::Elapsed(args.search));
            eprintln!("run {run}: no writer: {a:?}");
            alone = Some(a);
        }
        let b = ingest_beside_search(&coll, work, half..rows, writers, batch, args.timeout);
        let r = recall(&coll, work, args.recall_queries);
        eprintln!("run {run}: {writers} writers x {batch}: {b:?}, recall {r:.4}");
        beside.push((b, r));
        drop((coll, db));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let peers = run_peers(work, args, run);
    Run {
        load_before,
        load_after: load_average(),
        preload: preload.expect("a writer setting"),
        alone: alone.expect("a writer setting"),
        beside,
        peers,
    }
}

#[cfg(feature = "seed-peers")]
fn run_peers(
    work: &Workload,
    args: &Args,
    run: usize,
) -> Option<(IngestTimes, Vec<(String, Duration)>)> {
    use vellum_benches::latency_peers::{foxstash_ingest, velesdb_ingest};
    let rows = work.rows();
    let dir = args.work_dir.join(format!("run{run}-vellum-all"));
    let (db, coll) = fresh_db(&dir, work, args);
    let vellum = ingest_and_wait(&coll, work, 0..rows, PRELOAD_BATCH, args.timeout);
    drop((coll, db));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("run {run}: vellum, all rows from empty: {vellum:?}");
    let mut peers = Vec::new();
    for peer in &args.peers {
        let dir = args.work_dir.join(format!("run{run}-{peer}"));
        let (name, wall) = match peer.as_str() {
            "velesdb" => (
                "velesdb-core 8.0.0",
                velesdb_ingest(work, &dir, rows, PRELOAD_BATCH),
            ),
            "foxstash" => (
                "foxstash-core 0.9.0",
                foxstash_ingest(work, &dir, rows, PRELOAD_BATCH),
            ),
            other => panic!("unknown peer {other} (velesdb, foxstash)"),
        };
        eprintln!(
            "run {run}: {name}: {rows} rows in {:.2} s",
            wall.as_secs_f64()
        );
        peers.push((name.to_owned(), wall));
    }
    Some((vellum, peers))
}

#[cfg(not(feature = "seed-peers"))]
fn run_peers(_: &Workload, _: &Args, _: usize) -> Option<(IngestTimes, Vec<(String, Duration)>)> {
    None
}

fn main() {
    let args = parse_args();
    let work = workload(&args);
    assert!(work.rows() >= 2, "need at least two rows");
    eprintln!(
        "{}: {} × {} ({:?}), {} queries; databases under {}",
        work.name,
        work.rows(),
        work.dim,
        work.metric,
        work.query_count(),
        args.work_dir.display()
    );
    std::fs::create_dir_all(&args.work_dir).expect("work dir");
    let runs: Vec<Run> = (1..=args.runs).map(|n| run_once(&work, &args, n)).collect();
    let _ = std::fs::remove_dir_all(&args.work_dir);
    print_report(&work, args.search, args.recall_queries, &runs);
}
