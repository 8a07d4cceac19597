//! `payload_bench`: a collection with ~1 KiB JSON payloads next to the same collection
//! without them (issue 15): peak memory, disk, checkpoint time after changing 1% of the
//! points against the first full checkpoint, and reopen time.
//!
//! ```sh
//! cargo build --release -p vellum-benches --bin payload_bench
//! target/release/payload_bench --points 1000000
//! ```
//!
//! Each case runs in its own process, so peak RSS (`VmHWM`) is that case's alone:
//! - `ingest`: a flat 128-d collection filled in durable batches of 1000 with default options
//!   (background checkpoints on), with or without payloads; peak RSS, then RSS split into
//!   anonymous memory and mapped file pages, disk, and a checkpoint after rewriting 1% of the
//!   points (vectors and payloads);
//! - `full`: the same ingest with background checkpoints off, then the first checkpoint,
//!   which writes everything (what the 1% checkpoint is compared with);
//! - `reopen`: opening the database left by `ingest` (time to open, first `get` with its
//!   payload, first search, `count` of `lang = en AND year >= 2020`, peak RSS).
//!
//! Three cases: payloads with indexes on `lang` (keyword), `year` (integer) and `price`
//! (float), created after the ingest; payloads alone; no payloads.
//!
//! Vectors and payloads are generated from the id (no data set held in memory). Payloads
//! look like documents: `{"lang":…,"year":…,"price":…,"tags":[…],"text":"…"}`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vellum::{CollectionConfig, Database, DatabaseOptions, PayloadIndexKind, Point};
use vellum_benches::latency_report::{commit, load_average, output_of};
use vellum_benches::scale::{disk_usage, mib, ms, status_kib};

const COLLECTION: &str = "c";
const BATCH: usize = 1000;
const DIM: usize = 128;
const LANGS: [&str; 8] = ["en", "de", "fr", "es", "it", "nl", "pl", "pt"];
const WORDS: [&str; 16] = [
    "vector",
    "index",
    "durable",
    "search",
    "payload",
    "filter",
    "segment",
    "checkpoint",
    "storage",
    "engine",
    "query",
    "recall",
    "graph",
    "record",
    "commit",
    "replica",
];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn vector(id: u64, version: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|d| (mix(id * 131 + d + version * 7919) % 1000) as f32 / 1000.0)
        .collect()
}

/// A ~1 KiB JSON document for `id`.
fn payload(id: u64, version: u64) -> Vec<u8> {
    let h = mix(id ^ (version << 40));
    let mut text = String::with_capacity(960);
    let mut w = h;
    while text.len() < 900 {
        w = mix(w);
        text.push_str(WORDS[(w % 16) as usize]);
        text.push(' ');
    }
    format!(
        "{{\"lang\":\"{}\",\"year\":{},\"price\":{:.2},\"tags\":[\"{}\",\"{}\"],\"v\":{version},\"text\":\"{}\"}}",
        LANGS[(h % 8) as usize],
        1990 + (h >> 8) % 35,
        ((h >> 16) % 100_000) as f64 / 100.0,
        WORDS[((h >> 24) % 16) as usize],
        WORDS[((h >> 28) % 16) as usize],
        text.trim_end()
    )
    .into_bytes()
}

fn point(id: u64, version: u64, payloads: bool) -> Point {
    let p = Point::new(id, vector(id, version));
    if payloads {
        p.with_payload(payload(id, version))
    } else {
        p
    }
}

fn ingest(c: &vellum::Collection, n: u64, payloads: bool) -> (Duration, u64) {
    let started = Instant::now();
    let mut bytes = 0u64;
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH as u64).min(n);
        let batch: Vec<Point> = (start..end).map(|id| point(id, 0, payloads)).collect();
        bytes += batch
            .iter()
            .map(|p| p.payload.as_ref().map_or(0, Vec::len) as u64)
            .sum::<u64>();
        c.upsert_batch(batch).expect("ingest");
    }
    (started.elapsed(), bytes)
}

fn rss_split() -> String {
    format!(
        "RSS {} MiB (anonymous {} MiB, file pages {} MiB)",
        mib(status_kib("VmRSS") * 1024),
        mib(status_kib("RssAnon") * 1024),
        mib(status_kib("RssFile") * 1024)
    )
}

/// `ingest` case: prints one line of `key=value;` fields.
fn case_ingest(dir: &Path, n: u64, payloads: bool, indexes: bool) {
    let db = Database::open(dir, DatabaseOptions::default()).expect("open");
    let c = db
        .create_collection(
            COLLECTION,
            CollectionConfig::new(DIM, vellum::Metric::L2).flat(),
        )
        .expect("create");
    // Peak anonymous memory (heap; mapped file pages excluded), sampled every 10 ms.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (took, bytes, peak_anon) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_kib("RssAnon") * 1024);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak
        });
        let (took, bytes) = ingest(&c, n, payloads);
        c.checkpoint().expect("checkpoint after ingest");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (took, bytes, sampler.join().expect("sampler"))
    });
    let peak_ingest = status_kib("VmHWM") * 1024;
    let mut index_s = 0.0;
    if indexes {
        let t = Instant::now();
        c.create_payload_index("lang", PayloadIndexKind::Keyword)
            .expect("index lang");
        c.create_payload_index("year", PayloadIndexKind::Integer)
            .expect("index year");
        c.create_payload_index("price", PayloadIndexKind::Float)
            .expect("index price");
        index_s = t.elapsed().as_secs_f64();
    }
    let after = rss_split();
    let disk = disk_usage(dir);
    // 1%: new vectors and payloads for every hundredth id.
    let changed: Vec<u64> = (0..n).step_by(100).collect();
    for chunk in changed.chunks(BATCH) {
        c.upsert_batch(chunk.iter().map(|&id| point(id, 1, payloads)))
            .expect("change");
    }
    let cp = c.checkpoint().expect("checkpoint after 1%");
    let stats = c.stats();
    println!(
        "index_s={index_s:.1}; peak_anon_mib={}; ingest_s={:.1}; payload_mib={}; peak_rss_mib={}; after={after}; disk_mib={}; files={}; \
         cp1_ms={}; cp1_lock_ms={}; runs={}; run_mib={}; live_mib={}; peak_rss_end_mib={}",
        mib(peak_anon),
        took.as_secs_f64(),
        mib(bytes),
        mib(peak_ingest),
        mib(disk.apparent_bytes),
        disk.files,
        ms(cp.elapsed),
        ms(cp.lock_held),
        stats.payload_runs,
        mib(stats.payload_run_bytes),
        mib(stats.payload_live_bytes),
        mib(status_kib("VmHWM") * 1024),
    );
}

/// `full` case: the first checkpoint after an ingest with no checkpoint.
fn case_full(dir: &Path, n: u64, payloads: bool) {
    // No checkpoint before the measured one: background checkpoints off, and the unsaved
    // payload bound out of reach (its backpressure would checkpoint from the writer).
    let db = Database::open(
        dir,
        DatabaseOptions::default()
            .with_background_checkpoints(false)
            .with_checkpoint_after_payload_bytes(u64::MAX / 4),
    )
    .expect("open");
    let c = db
        .create_collection(
            COLLECTION,
            CollectionConfig::new(DIM, vellum::Metric::L2).flat(),
        )
        .expect("create");
    ingest(&c, n, payloads);
    let cp = c.checkpoint().expect("full checkpoint");
    println!(
        "full_cp_ms={}; full_cp_lock_ms={}",
        ms(cp.elapsed),
        ms(cp.lock_held)
    );
}

/// `reopen` case.
fn case_reopen(dir: &Path) {
    let started = Instant::now();
    let db = Database::open(dir, DatabaseOptions::default()).expect("open");
    let c = db.collection(COLLECTION).expect("collection");
    let opened = started.elapsed();
    let t = Instant::now();
    let en_2020 = vellum::Filter::default()
        .must(vellum::Condition::matches("lang", "en"))
        .must(vellum::Condition::range(
            "year",
            vellum::filter::Range::at_least(2020.0),
        ));
    let matching = c.count(Some(&en_2020)).expect("count");
    let count = t.elapsed();
    let t = Instant::now();
    let p = c.get(12_345).expect("get").expect("point");
    let get = t.elapsed();
    let t = Instant::now();
    c.search(&vector(7, 0), 10).expect("search");
    let search = t.elapsed();
    println!(
        "open_ms={}; first_get_ms={}; payload_bytes={}; first_search_ms={}; peak_rss_mib={}; count_ms={}; matching={matching}",
        ms(opened),
        ms(get),
        p.payload.map_or(0, |p| p.len()),
        ms(search),
        mib(status_kib("VmHWM") * 1024),
        ms(count),
    );
}

fn child(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .arg("--case")
        .args(args)
        .output()
        .expect("child runs");
    assert!(
        out.status.success(),
        "child {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split("; ")
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("?")
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--case") {
        let dir = PathBuf::from(&argv[2]);
        let n: u64 = argv.get(3).map_or(0, |s| s.parse().expect("points"));
        let payloads = argv.get(4).is_some_and(|s| s.starts_with("payloads"));
        let indexes = argv.get(4).map(String::as_str) == Some("payloads+indexes");
        match argv[1].as_str() {
            "ingest" => case_ingest(&dir, n, payloads, indexes),
            "full" => case_full(&dir, n, payloads),
            "reopen" => case_reopen(&dir),
            other => panic!("unknown case {other}"),
        }
        return;
    }
    let mut points = 1_000_000u64;
    let mut work_dir = vellum_benches::default_work_dir("payload-bench");
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--points" => points = value().parse().expect("--points N"),
            "--work-dir" => work_dir = value().into(),
            other => panic!("unknown flag {other}"),
        }
    }
    std::fs::create_dir_all(&work_dir).expect("work dir");
    println!("\n## payload_bench: {points} × {DIM}, flat, ~1 KiB JSON payloads\n");
    println!(
        "- command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "- date: {}; commit: {}; {} cores; load average before: {}",
        output_of("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_default(),
        commit(),
        std::thread::available_parallelism().map_or(0, |c| c.get()),
        load_average()
    );
    let n = points.to_string();
    let mut lines = Vec::new();
    for payloads in ["payloads+indexes", "payloads", "none"] {
        let dir = work_dir.join(format!("db-{}", payloads.replace('+', "-")));
        let _ = std::fs::remove_dir_all(&dir);
        let ingest = child(&["ingest", dir.to_str().expect("utf-8 path"), &n, payloads]);
        let reopen = child(&["reopen", dir.to_str().expect("utf-8 path")]);
        let _ = std::fs::remove_dir_all(&dir);
        let full = child(&["full", dir.to_str().expect("utf-8 path"), &n, payloads]);
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("{payloads}: {ingest}\n  {reopen}\n  {full}");
        lines.push((payloads, ingest, reopen, full));
    }
    println!("- load average after: {}\n", load_average());
    println!(
        "| case | payload MiB | indexes built s | lang = en ∧ year ≥ 2020: count ms (points) | ingest s | peak anonymous MiB (ingest) | peak RSS MiB (ingest) | RSS after ingest + checkpoint | disk MiB | first full checkpoint ms (lock) | checkpoint after 1% ms (lock) | ratio | reopen ms | first get ms | reopen peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (case, ingest, reopen, full) in &lines {
        let cp1: f64 = field(ingest, "cp1_ms").parse().unwrap_or(f64::NAN);
        let cpf: f64 = field(full, "full_cp_ms").parse().unwrap_or(f64::NAN);
        println!(
            "| {case} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {:.3} | {} | {} | {} |",
            field(ingest, "payload_mib"),
            field(ingest, "index_s"),
            field(reopen, "count_ms"),
            field(reopen, "matching"),
            field(ingest, "ingest_s"),
            field(ingest, "peak_anon_mib"),
            field(ingest, "peak_rss_mib"),
            field(ingest, "after"),
            field(ingest, "disk_mib"),
            field(full, "full_cp_ms"),
            field(full, "full_cp_lock_ms"),
            field(ingest, "cp1_ms"),
            field(ingest, "cp1_lock_ms"),
            cp1 / cpf,
            field(reopen, "open_ms"),
            field(reopen, "first_get_ms"),
            field(reopen, "peak_rss_mib"),
        );
    }
    for (case, ingest, _, _) in &lines {
        println!(
            "\n{case}: runs {} ({} MiB, {} MiB live) after the 1% checkpoint; peak RSS at the end {} MiB",
            field(ingest, "runs"),
            field(ingest, "run_mib"),
            field(ingest, "live_mib"),
            field(ingest, "peak_rss_end_mib"),
        );
    }
}
