//! The record of one `latency_bench` run and the markdown report over several runs, with
//! the context a reader needs to trust the numbers: command, date, commit, load average.

use std::process::Command;
use std::time::Duration;

use crate::K;
use crate::latency::{
    BesideSearch, IngestTimes, Latency, PRELOAD_BATCH, WRITER_SETTINGS, Workload, spread,
};

/// Everything one run measured.
#[derive(Debug)]
pub struct Run {
    pub load_before: String,
    pub load_after: String,
    pub preload: IngestTimes,
    pub alone: Latency,
    /// Per `WRITER_SETTINGS` entry: the ingest beside the search, then recall once indexed.
    pub beside: Vec<(BesideSearch, f64)>,
    /// Vellum's own ingest of every row, then each peer's wall time.
    pub peers: Option<(IngestTimes, Vec<(String, Duration)>)>,
}

/// The 1, 5 and 15 minute load averages, as `uptime` prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The first line `program args` prints, if it runs and succeeds.
pub fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or("").to_owned())
}

/// The commit the bench was built from, and whether the engine's sources differ from it.
pub fn commit() -> String {
    let repo = env!("CARGO_MANIFEST_DIR");
    let Some(head) = output_of("git", &["-C", repo, "rev-parse", "--short", "HEAD"]) else {
        return "unknown (no git)".into();
    };
    let changed = output_of(
        "git",
        &["-C", repo, "status", "--porcelain", "--", "../crates"],
    )
    .is_some_and(|first| !first.is_empty());
    if changed {
        format!("{head} (crates/ has uncommitted changes)")
    } else {
        head
    }
}

/// Prints the context of the runs and one markdown table per measurement to stdout.
pub fn print_report(work: &Workload, search: Duration, recall_queries: usize, runs: &[Run]) {
    let cell = |f: &dyn Fn(&Run) -> f64, decimals: usize| {
        spread(&runs.iter().map(f).collect::<Vec<_>>(), decimals)
    };
    let (rows, half) = (work.rows(), work.rows() / 2);
    let date = output_of("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\n## latency_bench: {} ({rows} × {}, {:?})\n",
        work.name, work.dim, work.metric
    );
    println!(
        "- command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("- date: {date}; commit: {}; {cores} cores", commit());
    for (n, r) in runs.iter().enumerate() {
        println!(
            "- run {}: load average (1/5/15 min) {} before, {} after",
            n + 1,
            r.load_before,
            r.load_after
        );
    }
    println!(
        "- durable writes (SyncPolicy::Always), default HNSW parameters; preload: the first {half} rows in batches of {PRELOAD_BATCH}, then wait for stats().indexed == points"
    );
    println!(
        "- search: 1 thread, top {K}, default ef, {} queries in turn; (a) for {:.1} s, (b) from the first write until fully indexed",
        work.query_count(),
        search.as_secs_f64()
    );
    if runs.len() > 1 {
        println!("- each cell: median (min–max) over {} runs", runs.len());
    }

    println!(
        "\n| search | searches | p50 ms | p99 ms | p99.9 ms | QPS | p50 ÷ (a) | p99 ÷ (a) | p99.9 ÷ (a) | QPS ÷ (a) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let latency_row = |label: String, get: &dyn Fn(&Run) -> Latency| {
        let ratio = |f: fn(&Latency) -> f64| cell(&|r| f(&get(r)) / f(&r.alone), 2);
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&|r| get(r).searches as f64, 0),
            cell(&|r| get(r).p50_ms, 3),
            cell(&|r| get(r).p99_ms, 3),
            cell(&|r| get(r).p999_ms, 3),
            cell(&|r| get(r).qps, 0),
            ratio(|l| l.p50_ms),
            ratio(|l| l.p99_ms),
            ratio(|l| l.p999_ms),
            ratio(|l| l.qps),
        );
    };
    latency_row("(a) no writer".into(), &|r| r.alone);
    for (i, (writers, batch)) in WRITER_SETTINGS.iter().enumerate() {
        let label = format!("(b) {writers} writer(s) × batches of {batch}");
        latency_row(label, &|r| r.beside[i].0.search);
    }

    println!(
        "\n| ingest (from the first write) | points | acknowledged points/s | last write returned s | fully indexed s | indexed points/s | recall@{K} once indexed |"
    );
    println!("|---|---|---|---|---|---|---|");
    let ingest_row = |label: String, get: &dyn Fn(&Run) -> IngestTimes, recall: String| {
        println!(
            "| {label} | {} | {} | {} | {} | {} | {recall} |",
            cell(&|r| get(r).points as f64, 0),
            cell(&|r| get(r).acknowledged_per_s(), 0),
            cell(&|r| get(r).acknowledged.as_secs_f64(), 2),
            cell(&|r| get(r).indexed.as_secs_f64(), 2),
            cell(&|r| get(r).indexed_per_s(), 0),
        );
    };
    ingest_row(
        format!("(a) preload: 1 writer × batches of {PRELOAD_BATCH}, empty collection"),
        &|r| r.preload,
        "—".into(),
    );
    for (i, (writers, batch)) in WRITER_SETTINGS.iter().enumerate() {
        let label = format!(
            "(c) {writers} writer(s) × batches of {batch} onto the preload, 1 search thread beside"
        );
        let recall = format!(
            "{} ({} queries vs exact)",
            cell(&|r| r.beside[i].1, 4),
            recall_queries.min(work.query_count())
        );
        ingest_row(label, &|r| r.beside[i].0.ingest, recall);
    }

    let Some((_, first_peers)) = runs[0].peers.as_ref() else {
        println!("\n(seed systems not measured: build with `--features seed-peers`)");
        return;
    };
    println!(
        "\nDurable ingest of all {rows} rows from empty, 1 thread, batches of {PRELOAD_BATCH}, no search:\n"
    );
    println!(
        "| system | points/s | wall s | Vellum acknowledged ÷ this | Vellum fully indexed ÷ this |"
    );
    println!("|---|---|---|---|---|");
    let vellum = |r: &Run| r.peers.as_ref().expect("peers measured every run").0;
    println!(
        "| Vellum (acknowledged) | {} | {} | — | — |",
        cell(&|r| vellum(r).acknowledged_per_s(), 0),
        cell(&|r| vellum(r).acknowledged.as_secs_f64(), 2)
    );
    println!(
        "| Vellum (fully indexed) | {} | {} | — | — |",
        cell(&|r| vellum(r).indexed_per_s(), 0),
        cell(&|r| vellum(r).indexed.as_secs_f64(), 2)
    );
    for (i, (name, _)) in first_peers.iter().enumerate() {
        let wall = |r: &Run| {
            r.peers.as_ref().expect("peers measured every run").1[i]
                .1
                .as_secs_f64()
        };
        println!(
            "| {name} | {} | {} | {} | {} |",
            cell(&|r| rows as f64 / wall(r), 0),
            cell(&|r| wall(r), 2),
            cell(&|r| wall(r) / vellum(r).acknowledged.as_secs_f64(), 2),
            cell(&|r| wall(r) / vellum(r).indexed.as_secs_f64(), 2),
        );
    }
}
