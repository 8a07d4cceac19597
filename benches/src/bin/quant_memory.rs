//! What a search keeps resident: a collection is written, checkpointed and reopened (fresh
//! maps), the queries run, and this process's resident bytes are read per mapping from
//! `/proc/self/smaps` — vector segment files against code files. With int8 codes the walk
//! touches the codes; the vectors only for the `k × oversampling` rescored candidates.
//! With `--drop-caches` (Linux, root) the page cache is emptied before the reopen, and the
//! bytes the process read from storage (`/proc/self/io`) are reported too: what a
//! collection larger than RAM would read.
//!
//! ```text
//! cargo run --release -p vellum-benches --bin quant_memory -- --dataset fashion-mnist --quantization int8
//! cargo run --release -p vellum-benches --bin quant_memory -- --dataset fashion-mnist --quantization none
//! ```
//! Linux only (smaps); elsewhere it prints zeros.

use std::path::PathBuf;
use std::time::Instant;

use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point, QuantKind, Quantization};
use vellum_benches::{default_work_dir, read_matrix};

/// Bytes this process has read from storage (`read_bytes` of `/proc/self/io`).
fn storage_read_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("read_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Resident kilobytes of this process's mappings whose path contains `needle`.
fn resident_kib(needle: &str) -> u64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut total = 0;
    let mut counting = false;
    for line in smaps.lines() {
        let header = line
            .split_whitespace()
            .next()
            .is_some_and(|first| first.contains('-') && !first.ends_with(':'));
        if header {
            counting = line.contains(needle);
        } else if counting && let Some(rest) = line.strip_prefix("Rss:") {
            total += rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    total
}

fn main() {
    let mut dataset = "fashion-mnist".to_owned();
    let mut kind: Option<QuantKind> = Some(QuantKind::Int8);
    let mut queries = 1000usize;
    let mut drop_caches = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--drop-caches" {
            drop_caches = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => dataset = value,
            "--queries" => queries = value.parse().expect("--queries N"),
            "--quantization" => {
                kind = match value.as_str() {
                    "none" => None,
                    name => Some(QuantKind::from_name(name).expect("int8, f16, binary or none")),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    let data = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")).join(&dataset);
    let (dim, train) = read_matrix(&data.join("train.f32")).expect("benches/data/<set>/train.f32");
    let (_, test) = read_matrix(&data.join("test.f32")).expect("test.f32");
    let metric = if dataset.starts_with("glove") {
        Metric::Cosine
    } else {
        Metric::L2
    };
    let rows = train.len() / dim;
    let dir = default_work_dir("quant-memory");
    let _ = std::fs::remove_dir_all(&dir);
    let options = DatabaseOptions::default().with_background_checkpoints(false);
    let mut config = CollectionConfig::new(dim, metric);
    config.quantization = kind.map(Quantization::of);
    {
        let db = Database::open(&dir, options.clone()).expect("open");
        let c = db.create_collection("c", config).expect("create");
        for start in (0..rows).step_by(1000) {
            let end = (start + 1000).min(rows);
            c.upsert_batch(
                (start..end).map(|i| Point::new(i as u64, train[i * dim..(i + 1) * dim].to_vec())),
            )
            .expect("write");
        }
        c.wait_indexed().expect("index");
        c.checkpoint().expect("checkpoint");
    }
    if drop_caches {
        let _ = std::process::Command::new("sync").status();
        std::fs::write("/proc/sys/vm/drop_caches", "1").expect("drop caches (root, Linux)");
    }
    let read_at_start = storage_read_bytes();
    let db = Database::open(&dir, options).expect("reopen");
    let c = db.collection("c").expect("collection");
    let stats = c.stats();
    let opened = (
        resident_kib("/vectors/segment-"),
        resident_kib("/vectors/codes-"),
    );
    let read_at_open = storage_read_bytes();
    let n = queries.min(test.len() / dim);
    let started = Instant::now();
    for q in test.chunks(dim).take(n) {
        c.search(q, 10).expect("search");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let searched = (
        resident_kib("/vectors/segment-"),
        resident_kib("/vectors/codes-"),
    );
    let read_searching = storage_read_bytes() - read_at_open;
    println!(
        "{dataset} {rows} x {dim}, quantization {}: vector files {:.1} MB, code files {:.1} MB",
        kind.map_or("none", |k| k.name()),
        stats.vector_segment_bytes as f64 / 1e6,
        stats.quantized_code_bytes as f64 / 1e6
    );
    println!(
        "resident after reopen: vectors {:.1} MB, codes {:.1} MB; after {n} searches ({:.0} QPS): vectors {:.1} MB, codes {:.1} MB",
        opened.0 as f64 / 1024.0,
        opened.1 as f64 / 1024.0,
        n as f64 / elapsed,
        searched.0 as f64 / 1024.0,
        searched.1 as f64 / 1024.0
    );
    println!(
        "read from storage: {:.1} MB to open, {:.1} MB for the searches ({:.1} KB a query){}",
        (read_at_open - read_at_start) as f64 / 1e6,
        read_searching as f64 / 1e6,
        read_searching as f64 / n as f64 / 1e3,
        if drop_caches {
            ""
        } else {
            " (page cache warm: pass --drop-caches)"
        }
    );
}
