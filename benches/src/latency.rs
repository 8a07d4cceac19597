//! Search latency beside durable writers (issue 13): the pieces `src/bin/latency_bench.rs`
//! composes. Only the public API of the `vellum` facade is used, so the bench measures any
//! version of the engine that keeps that API.

use std::ops::Range;
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use vellum::{Collection, Metric, Point, SearchParams};

use crate::{K, read_matrix, recall_at_k};

/// Batch size of the preload (and of the seed-system comparison).
pub const PRELOAD_BATCH: usize = 1000;
/// (writer threads, rows per batch) of each ingest beside the search thread.
pub const WRITER_SETTINGS: [(usize, usize); 2] = [(1, 1000), (4, 100)];

/// Vectors to ingest (ids are row numbers) and the queries searched while they go in.
#[derive(Debug)]
pub struct Workload {
    pub name: String,
    pub metric: Metric,
    pub dim: usize,
    pub train: Vec<f32>,
    pub queries: Vec<f32>,
}

impl Workload {
    pub fn rows(&self) -> usize {
        self.train.len() / self.dim
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.train[i * self.dim..(i + 1) * self.dim]
    }
    pub fn query_count(&self) -> usize {
        self.queries.len() / self.dim
    }
    /// Query `i`, cycling through the query set.
    pub fn query(&self, i: usize) -> &[f32] {
        let i = i % self.query_count();
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }
    /// Point `i` of the training rows, as the facade takes it.
    pub fn point(&self, i: usize) -> Point {
        Point::new(i as u64, self.row(i).to_vec())
    }
}

/// A converted data set (`benches/scripts/get-datasets.sh`), found the way `seed_compare`
/// finds it: `<data_dir>/<name>/{train,test}.f32`, cosine for GloVe and L2 otherwise. At most
/// `rows` training rows and `queries` test rows are kept.
pub fn load_dataset(
    data_dir: &Path,
    name: &str,
    rows: usize,
    queries: usize,
) -> std::io::Result<Workload> {
    let dir = data_dir.join(name);
    let (dim, mut train) = read_matrix(&dir.join("train.f32"))?;
    let (query_dim, mut test) = read_matrix(&dir.join("test.f32"))?;
    if dim != query_dim {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: train and test dimensions differ", dir.display()),
        ));
    }
    train.truncate(rows * dim);
    test.truncate(queries * dim);
    let metric = if name.starts_with("glove") {
        Metric::Cosine
    } else {
        Metric::L2
    };
    Ok(Workload {
        name: name.to_owned(),
        metric,
        dim,
        train,
        queries: test,
    })
}

/// A deterministic clustered set under L2: 100 centres in [-10, 10)^dim and points scattered
/// around them; the queries are further draws from the same distribution.
pub fn generated(rows: usize, dim: usize, queries: usize, seed: u64) -> Workload {
    // xorshift64: never zero, so the seed is mixed with a constant that keeps it nonzero.
    let mut state = seed ^ 0x1234_5678_9ABC_DEF1;
    let mut unit = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let centres: Vec<f32> = (0..100 * dim).map(|_| unit() * 20.0 - 10.0).collect();
    let mut point = |_| {
        let c = (unit() * 100.0) as usize % 100;
        (0..dim)
            .map(|j| centres[c * dim + j] + (unit() + unit() + unit() - 1.5) * 2.0)
            .collect::<Vec<f32>>()
    };
    let train = (0..rows).flat_map(&mut point).collect();
    let queries = (0..queries).flat_map(&mut point).collect();
    Workload {
        name: format!("generated clustered (seed {seed})"),
        metric: Metric::L2,
        dim,
        train,
        queries,
    }
}

/// Latency percentiles and throughput of one search loop.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub searches: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub qps: f64,
}

impl Latency {
    fn from_samples(mut nanos: Vec<u64>, wall: Duration) -> Latency {
        nanos.sort_unstable();
        // Nearest rank: the smallest sample at or above the fraction `q` of all samples.
        let at = |q: f64| {
            let rank = ((q * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len().max(1));
            nanos.get(rank - 1).map_or(f64::NAN, |&ns| ns as f64 / 1e6)
        };
        Latency {
            searches: nanos.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            qps: nanos.len() as f64 / wall.as_secs_f64().max(1e-9),
        }
    }
}

/// When a search loop ends.
#[derive(Debug, Clone, Copy)]
pub enum Until<'a> {
    /// After this much wall time.
    Elapsed(Duration),
    /// Once the flag is set (checked before every search).
    Flag(&'a AtomicBool),
}

/// Searches the workload's queries in turn on this thread (top `K`, the collection's default
/// `ef`) and times each search.
pub fn search_loop(coll: &Collection, work: &Workload, until: Until<'_>) -> Latency {
    let mut nanos = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    loop {
        let done = match until {
            Until::Elapsed(limit) => start.elapsed() >= limit,
            Until::Flag(flag) => flag.load(Ordering::Acquire),
        };
        if done {
            break;
        }
        let query = work.query(nanos.len());
        let t = Instant::now();
        let hits = coll.search(query, K).expect("search");
        nanos.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        std::hint::black_box(hits);
    }
    Latency::from_samples(nanos, start.elapsed())
}

/// Upserts rows `rows` in order, `batch` per call (each durable under the database's sync
/// policy), on this thread.
pub fn ingest(coll: &Collection, work: &Workload, rows: Range<usize>, batch: usize) {
    for start in rows.clone().step_by(batch) {
        let end = (start + batch).min(rows.end);
        coll.upsert_batch((start..end).map(|i| work.point(i)))
            .expect("upsert_batch");
    }
}

/// Polls `stats()` every millisecond until the collection holds `points` live points and
/// every one of them is in the index. Panics after `timeout`.
pub fn wait_indexed(coll: &Collection, points: u64, timeout: Duration) {
    let start = Instant::now();
    loop {
        let stats = coll.stats();
        if stats.points == points && stats.indexed == stats.points {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "not fully indexed after {timeout:?}: {} points, {} indexed, {points} expected",
            stats.points,
            stats.indexed
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Times of one ingest, measured from the first write.
#[derive(Debug, Clone, Copy)]
pub struct IngestTimes {
    pub points: usize,
    /// Until the last write returned (was acknowledged).
    pub acknowledged: Duration,
    /// Until `stats()` first showed every point indexed.
    pub indexed: Duration,
}

impl IngestTimes {
    pub fn acknowledged_per_s(&self) -> f64 {
        self.points as f64 / self.acknowledged.as_secs_f64()
    }
    pub fn indexed_per_s(&self) -> f64 {
        self.points as f64 / self.indexed.as_secs_f64()
    }
}

/// Ingests `rows` on this thread, `batch` per call, and waits until they are all indexed.
/// The collection must hold exactly the ids below `rows.start` beforehand.
pub fn ingest_and_wait(
    coll: &Collection,
    work: &Workload,
    rows: Range<usize>,
    batch: usize,
    timeout: Duration,
) -> IngestTimes {
    let start = Instant::now();
    ingest(coll, work, rows.clone(), batch);
    let acknowledged = start.elapsed();
    wait_indexed(coll, rows.end as u64, timeout);
    IngestTimes {
        points: rows.len(),
        acknowledged,
        indexed: start.elapsed(),
    }
}

/// One ingest measured beside one search thread.
#[derive(Debug, Clone, Copy)]
pub struct BesideSearch {
    pub ingest: IngestTimes,
    /// The searches from the first write until every point was indexed.
    pub search: Latency,
}

/// `writers` threads ingest `rows` (batches of `batch` consecutive rows, handed out in
/// order from a shared counter) while one thread searches. The search runs from the moment
/// the writers start until the index has caught up with the last write, so it covers any
/// indexing that goes on after the writes are acknowledged. The collection must hold exactly
/// the ids below `rows.start` beforehand.
pub fn ingest_beside_search(
    coll: &Collection,
    work: &Workload,
    rows: Range<usize>,
    writers: usize,
    batch: usize,
    timeout: Duration,
) -> BesideSearch {
    let next = AtomicUsize::new(rows.start);
    let stop = AtomicBool::new(false);
    // The writers, the searcher and this thread start together.
    let start_line = Barrier::new(writers + 2);
    thread::scope(|s| {
        let searcher = s.spawn(|| {
            start_line.wait();
            search_loop(coll, work, Until::Flag(&stop))
        });
        let writer_threads: Vec<_> = (0..writers)
            .map(|_| {
                s.spawn(|| {
                    start_line.wait();
                    loop {
                        let start = next.fetch_add(batch, Ordering::Relaxed);
                        if start >= rows.end {
                            return Instant::now();
                        }
                        let end = (start + batch).min(rows.end);
                        coll.upsert_batch((start..end).map(|i| work.point(i)))
                            .expect("upsert_batch");
                    }
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        let last_ack = writer_threads
            .into_iter()
            .map(|t| t.join().expect("writer thread"))
            .max()
            .unwrap_or(start);
        wait_indexed(coll, rows.end as u64, timeout);
        let indexed = start.elapsed();
        stop.store(true, Ordering::Release);
        BesideSearch {
            ingest: IngestTimes {
                points: rows.len(),
                acknowledged: last_ack.saturating_duration_since(start),
                indexed,
            },
            search: searcher.join().expect("search thread"),
        }
    })
}

/// Mean recall@`K` of the collection's default search against its exact search
/// (`SearchParams { exact: true, .. }`) over the first `queries` queries.
pub fn recall(coll: &Collection, work: &Workload, queries: usize) -> f64 {
    let exact = SearchParams {
        exact: true,
        ..SearchParams::default()
    };
    let ids = |hits: Vec<vellum::Hit>| hits.into_iter().map(|h| h.id).collect::<Vec<u64>>();
    let queries = queries.min(work.query_count()).max(1);
    let total: f64 = (0..queries)
        .map(|i| {
            let query = work.query(i);
            let found = ids(coll.search(query, K).expect("search"));
            let truth = ids(coll.search_with(query, K, &exact).expect("exact search"));
            recall_at_k(&found, &truth)
        })
        .sum();
    total / queries as f64
}

/// One number per run, as a table cell: the value itself, or "median (min–max)".
pub fn spread(values: &[f64], decimals: usize) -> String {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.as_slice() {
        [] => "—".into(),
        [one] => format!("{one:.decimals$}"),
        [min, .., max] => {
            let n = sorted.len();
            let median = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            format!("{median:.decimals$} ({min:.decimals$}–{max:.decimals$})")
        }
    }
}
