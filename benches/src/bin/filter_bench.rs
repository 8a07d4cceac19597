//! `filter_bench`: filtered search on fashion-mnist (issue 15's bench), at four
//! selectivities: QPS and recall@10 of Vellum's filtered search (`SearchFilter::Where`)
//! against post-filtering (an unfiltered search for k / selectivity hits, then the filter)
//! and against the exact filtered scan, which is also the ground truth; first reading
//! payloads, then with payload indexes on both fields.
//!
//! Each point's payload is `{"class": <its fashion-mnist label>, "r": <0..1000, a hash of
//! its id>}`. Filters: `r < 1` (0.1%), `r < 10` (1%), `class = 3` (10%), `r < 500` (50%).
//! GloVe-50 (cosine) has no labels: its 10% filter is `r < 100`.
//!
//! ```sh
//! cargo build --release -p vellum-benches --bin filter_bench
//! target/release/filter_bench [--dataset fashion-mnist|glove-50] [--rows 60000] [--queries 200] [--labels FILE]
//! ```

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use vellum::filter::{Condition, Filter, Range};
use vellum::{
    CollectionConfig, Database, DatabaseOptions, HnswParams, Point, SearchFilter, SearchParams,
};
use vellum_benches::K;
use vellum_benches::latency::load_dataset;
use vellum_benches::latency_report::{commit, load_average};

struct Args {
    dataset: String,
    data_dir: PathBuf,
    labels: PathBuf,
    work_dir: PathBuf,
    rows: usize,
    queries: usize,
}

fn args() -> Args {
    let mut args = Args {
        dataset: "fashion-mnist".into(),
        data_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
        labels: PathBuf::from("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"),
        work_dir: vellum_benches::default_work_dir("filter-bench"),
        rows: 60_000,
        queries: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value(),
            "--data-dir" => args.data_dir = value().into(),
            "--labels" => args.labels = value().into(),
            "--work-dir" => args.work_dir = value().into(),
            "--rows" => args.rows = value().parse().expect("--rows N"),
            "--queries" => args.queries = value().parse().expect("--queries N"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// The labels of a gzipped IDX1 file (magic 0x00000801, count, one byte each).
#[allow(clippy::big_endian_bytes)] // IDX is big-endian by its specification.
fn read_labels(path: &std::path::Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .expect("gzip");
    assert_eq!(bytes[..4], [0, 0, 8, 1], "{}: not IDX1", path.display());
    let n = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
    bytes[8..8 + n].to_vec()
}

/// A number in 0..1000 from an id (splitmix64's finaliser).
fn r_of(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 1000
}

/// A selectivity: its name, the filter, and the same test on an id (for post-filtering
/// and counting, without reading payloads).
type Case<'a> = (&'static str, Filter, Box<dyn Fn(u64) -> bool + 'a>);

fn recall(got: &[u64], truth: &[u64]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    got.iter().filter(|id| truth.contains(id)).count() as f64 / truth.len() as f64
}

fn main() {
    let args = args();
    let work = load_dataset(&args.data_dir, &args.dataset, args.rows, args.queries)
        .expect("the data set (benches/scripts/get-datasets.sh)");
    let n = work.train.len() / work.dim;
    let fashion = args.dataset == "fashion-mnist";
    // GloVe has no labels: every point is class 0 and the 10% filter is on `r`.
    let labels = if fashion {
        read_labels(&args.labels)
    } else {
        vec![0; n]
    };
    assert!(labels.len() >= n, "fewer labels than rows");
    println!("## filter_bench: {} {n} × {}\n", args.dataset, work.dim);
    println!(
        "- date: commit {}; {} queries; load average before: {}\n",
        commit(),
        work.queries.len() / work.dim,
        load_average()
    );
    let _ = std::fs::remove_dir_all(&args.work_dir);
    let db = Database::open(&args.work_dir, DatabaseOptions::default()).expect("open");
    let config = CollectionConfig::new(work.dim, work.metric).hnsw(HnswParams {
        m: 16,
        ef_construction: 200,
        ef_search: 64,
        seed: 1,
    });
    let c = db.create_collection("f", config).expect("create");
    let started = Instant::now();
    for start in (0..n).step_by(1000) {
        c.upsert_batch((start..(start + 1000).min(n)).map(|i| {
            let payload = format!(r#"{{"class": {}, "r": {}}}"#, labels[i], r_of(i as u64));
            Point::new(i as u64, work.row(i).to_vec()).with_payload(payload.into_bytes())
        }))
        .expect("upsert");
    }
    c.wait_indexed().expect("index");
    println!(
        "- built in {:.1} s (M 16, ef_construction 200, ef 64)\n",
        started.elapsed().as_secs_f64()
    );
    let cases: [Case<'_>; 4] = [
        (
            "0.1% (r < 1)",
            Filter::default().must(Condition::range("r", Range::below(1.0))),
            Box::new(|id| r_of(id) < 1),
        ),
        (
            "1% (r < 10)",
            Filter::default().must(Condition::range("r", Range::below(10.0))),
            Box::new(|id| r_of(id) < 10),
        ),
        if fashion {
            (
                "10% (class = 3)",
                Filter::default().must(Condition::matches("class", 3)),
                Box::new(|id| labels[id as usize] == 3),
            )
        } else {
            (
                "10% (r < 100)",
                Filter::default().must(Condition::range("r", Range::below(100.0))),
                Box::new(|id| r_of(id) < 100),
            )
        },
        (
            "50% (r < 500)",
            Filter::default().must(Condition::range("r", Range::below(500.0))),
            Box::new(|id| r_of(id) < 500),
        ),
    ];
    let queries = work.queries.len() / work.dim;
    // Mean recall@10 and QPS of one way of searching: `k` hits with `params`, of which the
    // admitted first ten count.
    let measure = |truth: &[Vec<u64>],
                   admits: &dyn Fn(u64) -> bool,
                   k: usize,
                   params: &SearchParams<'_>|
     -> (f64, f64) {
        let t = Instant::now();
        let mut total = 0.0;
        for (q, want) in truth.iter().enumerate() {
            let got: Vec<u64> = c
                .search_with(work.query(q), k, params)
                .expect("search")
                .iter()
                .map(|h| h.id)
                .filter(|&id| admits(id))
                .take(K)
                .collect();
            total += recall(&got, want);
        }
        (
            total / queries as f64,
            queries as f64 / t.elapsed().as_secs_f64(),
        )
    };
    let mut rows = Vec::new();
    for (name, filter, admits) in &cases {
        let admitted = (0..n as u64).filter(|&id| admits(id)).count();
        let selectivity = admitted as f64 / n as f64;
        let where_ = SearchParams {
            filter: Some(SearchFilter::Where(filter)),
            ..SearchParams::default()
        };
        let exact = SearchParams {
            exact: true,
            ..where_
        };
        // Ground truth and the exact scan's speed (payloads read, no index yet).
        let t = Instant::now();
        let truth: Vec<Vec<u64>> = (0..queries)
            .map(|q| {
                c.search_with(work.query(q), K, &exact)
                    .expect("exact")
                    .iter()
                    .map(|h| h.id)
                    .collect()
            })
            .collect();
        let exact_qps = queries as f64 / t.elapsed().as_secs_f64();
        let filtered = measure(&truth, admits.as_ref(), K, &where_);
        // Post-filtering: ask for k / selectivity hits (ef at least that), keep the admitted.
        let wide = ((K as f64 / selectivity).ceil() as usize).min(n);
        let post = SearchParams {
            ef: Some(wide.max(64)),
            ..SearchParams::default()
        };
        let post = measure(&truth, admits.as_ref(), wide, &post);
        rows.push((name, admitted, truth, filtered, post, exact_qps));
    }
    // The same filtered searches with payload indexes on both fields.
    let t = Instant::now();
    c.create_payload_index("class", vellum::PayloadIndexKind::Integer)
        .expect("index class");
    c.create_payload_index("r", vellum::PayloadIndexKind::Integer)
        .expect("index r");
    println!(
        "- payload indexes on class and r created in {:.2} s\n",
        t.elapsed().as_secs_f64()
    );
    println!(
        "| selectivity | admitted | filtered, payloads read: recall@10 / QPS | filtered, payload indexes: recall@10 / QPS | post-filter: recall@10 / QPS | indexed ÷ post-filter QPS | exact filtered (payloads read): QPS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((name, admitted, truth, filtered, post, exact_qps), (_, filter, admits)) in
        rows.iter().zip(&cases)
    {
        let where_ = SearchParams {
            filter: Some(SearchFilter::Where(filter)),
            ..SearchParams::default()
        };
        let indexed = measure(truth, admits.as_ref(), K, &where_);
        println!(
            "| {name} | {admitted} | {:.3} / {:.0} | {:.3} / {:.0} | {:.3} / {:.0} | {:.2} | {exact_qps:.0} |",
            filtered.0,
            filtered.1,
            indexed.0,
            indexed.1,
            post.0,
            post.1,
            indexed.1 / post.1
        );
    }
    println!("\n- load average after: {}", load_average());
    drop((c, db));
    let _ = std::fs::remove_dir_all(&args.work_dir);
}
