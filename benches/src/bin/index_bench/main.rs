//! Vellum's HNSW against its peers on real embeddings.
//!
//! ```text
//! benches/scripts/get-datasets.sh            # installs and converts the data sets
//! cargo run --release -p vellum-benches --features compare --bin index_bench -- \
//!     --dataset fashion-mnist --systems vellum,usearch,hnsw_rs
//! ```
//!
//! Data sets are read from `benches/data/<name>/{train,test}.f32` (u32 rows, u32 dim, then
//! row-major little-endian f32), as written by `benches/scripts/convert_datasets.py`. When a
//! data set is absent the bench says so and falls back to a generated clustered set. The
//! exact top-10 of every query is computed once (Vellum's exact search, which the test suite
//! checks against brute force) and stored as `gt-<rows>-<queries>.u32` so the python peers
//! (benches/scripts/index_peers.py) score against the same truth.
//!
//! Build uses 2 threads, queries 1 thread. Every system gets M = 16, ef_construction = 200.
#![forbid(unsafe_code)]

#[cfg(feature = "index-peers")]
mod peers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vellum_benches::{CurvePoint, Dataset, K, exact_truth, process_cpu, read_matrix, sweep_point};
use vellum_fs::{Fs, RealFs};
use vellum_index::{
    FlatCodes, FlatVectors, Hnsw, HnswParams, Metric, QuantKind, QuantizedSearch, Quantizer,
    SearchOptions,
};

pub const M: usize = 16;
pub const EF_CONSTRUCTION: usize = 200;
pub const BUILD_THREADS: usize = 2;

/// What one system measured.
#[derive(Debug)]
pub struct Report {
    pub system: String,
    pub build: Duration,
    /// CPU time of the build, all threads.
    pub build_cpu: Duration,
    pub curve: Vec<CurvePoint>,
    pub save: Option<Duration>,
    pub open: Option<Duration>,
    pub first_query: Option<Duration>,
    pub file_bytes: Option<u64>,
    pub note: String,
}

fn write_truth(path: &Path, truth: &[Vec<u64>]) -> std::io::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(&(truth.len() as u32).to_le_bytes());
    out.extend_from_slice(&(K as u32).to_le_bytes());
    for row in truth {
        for i in 0..K {
            out.extend_from_slice(&(row.get(i).copied().unwrap_or(u64::MAX) as u32).to_le_bytes());
        }
    }
    std::fs::write(path, out)
}

fn read_truth(path: &Path) -> Option<Vec<Vec<u64>>> {
    let bytes = std::fs::read(path).ok()?;
    let n = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let k = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    if k != K || bytes.len() != 8 + n * k * 4 {
        return None;
    }
    let ids: Vec<u64> = bytes[8..]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    Some(ids.chunks_exact(k).map(<[u64]>::to_vec).collect())
}

/// Deterministic clustered Gaussian-ish data: 100 centres, points scattered around them.
fn clustered(rows: usize, queries: usize, dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let centres: Vec<f32> = (0..100 * dim).map(|_| next() * 20.0 - 10.0).collect();
    let mut point = |_| {
        let c = (next() * 100.0) as usize % 100;
        (0..dim)
            .map(|j| centres[c * dim + j] + (next() + next() + next() - 1.5) * 2.0)
            .collect::<Vec<f32>>()
    };
    let train = (0..rows).flat_map(&mut point).collect();
    let test = (0..queries).flat_map(&mut point).collect();
    (train, test)
}

struct Args {
    dataset: String,
    data_dir: PathBuf,
    work_dir: PathBuf,
    limit: Option<usize>,
    queries: usize,
    systems: Vec<String>,
    efs: Vec<usize>,
    /// Only time opening this saved graph file (several times) and one query.
    open_graph: Option<PathBuf>,
    search_graph: Option<PathBuf>,
    /// Quantized copies searched (with rescoring) next to f32: int8, f16, binary.
    quantization: Vec<QuantKind>,
    /// Candidates per hit the codes select for rescoring.
    oversampling: f32,
    /// Search rounds per ef with `--search-graph` (the best is reported).
    rounds: usize,
    /// With `--search-graph`, search only the quantized copies.
    quantized_only: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        dataset: "fashion-mnist".into(),
        data_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
        work_dir: std::env::temp_dir().join("vellum-index-bench"),
        limit: None,
        queries: 1000,
        systems: vec!["vellum".into()],
        efs: vec![10, 16, 24, 32, 48, 64, 96, 128, 192, 256],
        open_graph: None,
        search_graph: None,
        quantization: Vec::new(),
        oversampling: 2.0,
        rounds: 5,
        quantized_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--quantized-only" {
            args.quantized_only = true;
            continue;
        }
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value(),
            "--data-dir" => args.data_dir = value().into(),
            "--work-dir" => args.work_dir = value().into(),
            "--limit" => args.limit = Some(value().parse().expect("--limit N")),
            "--queries" => args.queries = value().parse().expect("--queries N"),
            "--systems" => args.systems = value().split(',').map(str::to_owned).collect(),
            "--open-graph" => args.open_graph = Some(value().into()),
            "--search-graph" => args.search_graph = Some(value().into()),
            "--quantization" => {
                args.quantization = value()
                    .split(',')
                    .map(|s| QuantKind::from_name(s).expect("--quantization int8,f16,binary"))
                    .collect()
            }
            "--oversampling" => args.oversampling = value().parse().expect("--oversampling X"),
            "--rounds" => args.rounds = value().parse().expect("--rounds N"),
            "--efs" => {
                args.efs = value()
                    .split(',')
                    .map(|s| s.parse().expect("--efs a,b,c"))
                    .collect()
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn load(args: &Args) -> Dataset {
    let metric = if args.dataset.starts_with("glove") {
        Metric::Cosine
    } else {
        Metric::L2
    };
    let dir = args.data_dir.join(&args.dataset);
    let (dim, mut train, mut queries, name) = match (
        read_matrix(&dir.join("train.f32")),
        read_matrix(&dir.join("test.f32")),
    ) {
        (Ok((dim, train)), Ok((_, test))) => (dim, train, test, args.dataset.clone()),
        _ => {
            eprintln!(
                "data set {} not found under {} (run benches/scripts/get-datasets.sh); using a generated clustered set",
                args.dataset,
                dir.display()
            );
            let (train, test) = clustered(50_000, args.queries, 64);
            (64, train, test, "clustered-50k-64d".to_owned())
        }
    };
    if let Some(limit) = args.limit {
        train.truncate(limit * dim);
    }
    queries.truncate(args.queries * dim);
    let rows = train.len() / dim;
    let nq = queries.len() / dim;
    let truth_path = dir.join(format!("gt-{rows}-{nq}.u32"));
    let truth = match read_truth(&truth_path) {
        Some(t) if t.len() == nq && name == args.dataset => t,
        _ => {
            let start = Instant::now();
            let truth = exact_truth(&train, dim, &queries, metric);
            eprintln!(
                "ground truth for {nq} queries in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            if name == args.dataset
                && let Err(e) = write_truth(&truth_path, &truth)
            {
                eprintln!(
                    "could not store ground truth at {}: {e}",
                    truth_path.display()
                );
            }
            truth
        }
    };
    Dataset {
        name,
        metric,
        dim,
        train,
        queries,
        truth,
    }
}

/// Graph bytes straight from a read-only map of the saved file.
struct Mapped(vellum_fs::ReadMap);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn run_vellum(data: &Dataset, args: &Args, pool: &rayon::ThreadPool) -> Vec<Report> {
    let source = FlatVectors::new(&data.train, data.dim);
    let params = HnswParams {
        m: M,
        ef_construction: EF_CONSTRUCTION,
        ..HnswParams::default()
    };
    let index = Hnsw::new(data.dim, data.metric, params).expect("params");
    let ids: Vec<u64> = (0..data.rows() as u64).collect();
    let (start, cpu_start) = (Instant::now(), process_cpu());
    pool.install(|| index.insert_batch_parallel(&source, &ids))
        .expect("build");
    let (build, build_cpu) = (start.elapsed(), process_cpu() - cpu_start);
    eprintln!(
        "vellum: built {} in {:.1} s ({:.1} s CPU)",
        data.rows(),
        build.as_secs_f64(),
        build_cpu.as_secs_f64()
    );
    let curve = |index: &Hnsw| -> Vec<CurvePoint> {
        args.efs
            .iter()
            .map(|&ef| {
                let options = SearchOptions {
                    ef: Some(ef),
                    filter: None,
                };
                let point = sweep_point(data, ef, |q| {
                    index
                        .search_with(&source, q, K, &options)
                        .expect("search")
                        .into_iter()
                        .map(|n| n.id)
                        .collect()
                });
                eprintln!(
                    "vellum ef {ef}: recall {:.4} qps {:.0} cpu-qps {:.0}",
                    point.recall, point.qps, point.cpu_qps
                );
                point
            })
            .collect()
    };
    let built_curve = curve(&index);
    let quantized = quantized_reports(data, args, &index, &source, (build, build_cpu), 1);

    std::fs::create_dir_all(&args.work_dir).expect("work dir");
    let path = args.work_dir.join(format!("{}.vellum-hnsw", data.name));
    let start = Instant::now();
    let bytes = index.to_bytes().expect("encode");
    std::fs::write(&path, &bytes).expect("write graph");
    let save = start.elapsed();
    let file_bytes = bytes.len() as u64;
    drop(bytes);
    drop(index);

    let fs = RealFs::new();
    let start = Instant::now();
    let file = fs.open(&path).expect("open graph file");
    let map = file.map_read().expect("map graph file");
    let opened = Hnsw::open(Arc::new(Mapped(map))).expect("open graph");
    let open = start.elapsed();
    let start = Instant::now();
    let first = opened
        .search(&source, data.query(0), K)
        .expect("first search");
    let first_query = start.elapsed();
    assert_eq!(first.len(), K.min(data.rows()));
    eprintln!(
        "vellum: save {:.3} s, open {:.2} ms, first query {:.3} ms",
        save.as_secs_f64(),
        open.as_secs_f64() * 1e3,
        first_query.as_secs_f64() * 1e3
    );
    let opened_curve = curve(&opened);
    vec![
        Report {
            system: "vellum (built, in memory)".into(),
            build,
            build_cpu,
            curve: built_curve,
            save: Some(save),
            open: None,
            first_query: None,
            file_bytes: Some(file_bytes),
            note: format!("pulp kernels: {}", std::env::consts::ARCH),
        },
        Report {
            system: "vellum (opened, zero-copy mmap)".into(),
            build,
            build_cpu,
            curve: opened_curve,
            save: Some(save),
            open: Some(open),
            first_query: Some(first_query),
            file_bytes: Some(file_bytes),
            note: "open = map + validate every checksum and link".into(),
        },
    ]
    .into_iter()
    .chain(quantized)
    .collect()
}

/// Quantizer training sample: at most this many rows, evenly strided.
const TRAIN_SAMPLE_ROWS: usize = 20_000;

/// Trains each `--quantization` kind on a sample, encodes every row and sweeps `--efs` with
/// rescoring: one report per kind, its note giving the vector memory against f32.
fn quantized_reports(
    data: &Dataset,
    args: &Args,
    index: &Hnsw,
    source: &FlatVectors<'_>,
    (build, build_cpu): (Duration, Duration),
    rounds: usize,
) -> Vec<Report> {
    let rows = data.rows();
    let stride = rows.div_ceil(TRAIN_SAMPLE_ROWS).max(1);
    let f32_bytes = data.train.len() * 4;
    args.quantization
        .iter()
        .map(|&kind| {
            let start = Instant::now();
            let sample = (0..rows).step_by(stride).map(|r| source_row(data, r));
            let quantizer =
                Quantizer::train(kind, data.metric, data.dim, sample).expect("train quantizer");
            let codes = FlatCodes::encode_rows(quantizer, &data.train).expect("encode");
            let encode = start.elapsed();
            let settings = QuantizedSearch {
                rescore: true,
                oversampling: args.oversampling,
            };
            let name = format!("vellum {}+rescore x{}", kind.name(), args.oversampling);
            let curve = args
                .efs
                .iter()
                .map(|&ef| {
                    let options = SearchOptions {
                        ef: Some(ef),
                        filter: None,
                    };
                    let sweep = || {
                        sweep_point(data, ef, |q| {
                            index
                                .search_quantized(source, &codes, q, K, &options, &settings)
                                .expect("search")
                                .into_iter()
                                .map(|n| n.id)
                                .collect()
                        })
                    };
                    let mut point = sweep();
                    for _ in 1..rounds {
                        let again = sweep();
                        point.qps = point.qps.max(again.qps);
                        point.cpu_qps = point.cpu_qps.max(again.cpu_qps);
                    }
                    eprintln!(
                        "{name} ef {ef}: recall {:.4} qps {:.0} cpu-qps {:.0}",
                        point.recall, point.qps, point.cpu_qps
                    );
                    point
                })
                .collect();
            Report {
                system: name,
                build,
                build_cpu,
                curve,
                save: None,
                open: None,
                first_query: None,
                file_bytes: None,
                note: format!(
                    "codes {:.1} MB = {:.0}% of the f32 vectors' {:.1} MB; trained and encoded in {:.2} s",
                    codes.bytes() as f64 / 1e6,
                    codes.bytes() as f64 * 100.0 / f32_bytes as f64,
                    f32_bytes as f64 / 1e6,
                    encode.as_secs_f64()
                ),
            }
        })
        .collect()
}

fn source_row(data: &Dataset, row: usize) -> &[f32] {
    &data.train[row * data.dim..(row + 1) * data.dim]
}

fn fmt_ms(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
}

fn print_report(data: &Dataset, reports: &[Report]) {
    println!(
        "\n### {} ({} x {}, {:?}, {} queries, k = {K})\n",
        data.name,
        data.rows(),
        data.dim,
        data.metric,
        data.query_count()
    );
    println!(
        "| system | build (wall) | build (CPU, all threads) | save | open | first query | file |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in reports {
        println!(
            "| {} | {:.1} s | {:.1} s | {} | {} | {} | {} |",
            r.system,
            r.build.as_secs_f64(),
            r.build_cpu.as_secs_f64(),
            fmt_ms(r.save),
            fmt_ms(r.open),
            fmt_ms(r.first_query),
            r.file_bytes
                .map_or("—".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
        );
    }
    println!("\n| system | ef | recall@10 | QPS (wall) | QPS (CPU time) |");
    println!("|---|---|---|---|---|");
    for r in reports {
        for p in &r.curve {
            println!(
                "| {} | {} | {:.4} | {:.0} | {:.0} |",
                r.system, p.ef, p.recall, p.qps, p.cpu_qps
            );
        }
    }
    for r in reports {
        if !r.note.is_empty() {
            println!("\n- {}: {}", r.system, r.note);
        }
    }
}

/// Opens a saved graph file `times` times (map + validate) and reports each duration.
/// Searches a saved graph (over the same `--limit` rows it was built from) `rounds` times per
/// ef and prints the best CPU-time QPS: a steadier number for comparing search changes than
/// a fresh build, whose graph differs run to run.
fn search_saved(data: &Dataset, args: &Args, path: &Path, rounds: usize) {
    let efs = &args.efs;
    let fs = RealFs::new();
    let file = fs.open(path).expect("open graph file");
    let map = file.map_read().expect("map graph file");
    let index = Hnsw::open(Arc::new(Mapped(map))).expect("open graph");
    assert_eq!(index.len(), data.rows(), "graph and --limit disagree");
    let source = FlatVectors::new(&data.train, data.dim);
    for &ef in efs.iter().filter(|_| !args.quantized_only) {
        let (mut best, mut best_wall) = (0.0f64, 0.0f64);
        let mut recall = 0.0;
        for _ in 0..rounds {
            let point = sweep_point(data, ef, |q| {
                index
                    .search_with(
                        &source,
                        q,
                        K,
                        &SearchOptions {
                            ef: Some(ef),
                            filter: None,
                        },
                    )
                    .expect("search")
                    .into_iter()
                    .map(|n| n.id)
                    .collect()
            });
            best = best.max(point.cpu_qps);
            best_wall = best_wall.max(point.qps);
            recall = point.recall;
        }
        println!(
            "ef {ef}: recall {recall:.4}, best of {rounds}: {best:.0} QPS (CPU time), \
             {best_wall:.0} QPS (wall)"
        );
    }
    if !args.quantization.is_empty() {
        let zero = Duration::ZERO;
        for report in quantized_reports(data, args, &index, &source, (zero, zero), rounds) {
            println!("{}: {}", report.system, report.note);
            for p in report.curve {
                println!(
                    "  ef {}: recall {:.4}, {:.0} QPS (CPU time), {:.0} QPS (wall)",
                    p.ef, p.recall, p.cpu_qps, p.qps
                );
            }
        }
    }
}

fn time_open(path: &Path, times: usize) {
    let fs = RealFs::new();
    for round in 0..times {
        let start = Instant::now();
        let file = fs.open(path).expect("open graph file");
        let map = file.map_read().expect("map graph file");
        let index = Hnsw::open(Arc::new(Mapped(map))).expect("open graph");
        let open = start.elapsed();
        println!(
            "open {round}: {:.2} ms ({} nodes, dim {})",
            open.as_secs_f64() * 1e3,
            index.len(),
            index.dim()
        );
    }
}

fn main() {
    let args = parse_args();
    if let Some(path) = &args.open_graph {
        time_open(path, 5);
        return;
    }
    let data = load(&args);
    if let Some(path) = &args.search_graph {
        search_saved(&data, &args, path, args.rounds);
        return;
    }
    eprintln!(
        "{}: {} x {} ({:?}), {} queries",
        data.name,
        data.rows(),
        data.dim,
        data.metric,
        data.query_count()
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(BUILD_THREADS)
        .build()
        .expect("pool");
    let mut reports = Vec::new();
    for system in &args.systems {
        match system.as_str() {
            "vellum" => reports.extend(run_vellum(&data, &args, &pool)),
            #[cfg(feature = "index-peers")]
            "usearch" => reports.extend(peers::usearch(&data, &args.efs, &args.work_dir, &pool)),
            #[cfg(feature = "index-peers")]
            "hnsw_rs" => reports.push(peers::hnsw_rs(&data, &args.efs, &args.work_dir, &pool)),
            other => {
                eprintln!("unknown system {other} (peers need --features index-peers or compare)")
            }
        }
    }
    print_report(&data, &reports);
}
