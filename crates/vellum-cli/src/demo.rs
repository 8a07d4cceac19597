//! `vellum demo`: the main job, end to end on real data when it is installed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::builder::TypedValueParser as _;
use clap::{Args, ValueEnum};
use indicatif::HumanBytes;
use serde_json::json;
use vellum::{
    CollectionConfig, Database, DatabaseOptions, HnswParams, Metric, Point, SearchParams,
};

use crate::BoxError;
use crate::data::{self, Vectors};
use crate::output::progress;

/// Where the Debian package `dataset-fashion-mnist` puts its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DatasetArg {
    /// fashion-mnist when installed, else synthetic.
    Auto,
    /// fashion-mnist (60k x 784, L2): `apt-get install dataset-fashion-mnist`.
    FashionMnist,
    /// A generated clustered set (100k x 128, L2).
    Synthetic,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Working directory (must be empty or absent; a temporary one if omitted, removed
    /// afterwards).
    pub(crate) dir: Option<PathBuf>,
    /// Which data set.
    #[arg(long, value_enum, default_value_t = DatasetArg::Auto)]
    dataset: DatasetArg,
    /// Use only the first N vectors of the data set.
    #[arg(long)]
    pub(crate) points: Option<usize>,
    /// Queries for recall and speed.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Points per durable batch while ingesting.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Timed search runs per setting (QPS is reported as min / median / max of them).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100).map(|v| v as usize))]
    repeats: usize,
    /// Keep the temporary working directory (its path is printed).
    #[arg(long)]
    keep: bool,
    /// Run against a cluster of three `vellum serve` processes on 127.0.0.1 (started and
    /// stopped by the demo; the leader is killed with SIGKILL on the way).
    #[arg(long)]
    cluster: bool,
}

pub(crate) struct Dataset {
    pub(crate) name: String,
    metric: Metric,
    pub(crate) train: Vectors,
    pub(crate) queries: Vectors,
}

fn load(args: &DemoArgs) -> Result<Dataset, BoxError> {
    load_with(args, args.points)
}

/// The data set the arguments name, cut to `points` rows if given.
pub(crate) fn load_with(args: &DemoArgs, points: Option<usize>) -> Result<Dataset, BoxError> {
    let fashion = Path::new(FASHION_MNIST_DIR).join("train-images-idx3-ubyte.gz");
    let use_fashion = match args.dataset {
        DatasetArg::FashionMnist => true,
        DatasetArg::Synthetic => false,
        DatasetArg::Auto => fashion.exists(),
    };
    let mut ds = if use_fashion {
        if !fashion.exists() {
            return Err(format!(
                "{} is missing: install it with `apt-get install dataset-fashion-mnist`",
                fashion.display()
            )
            .into());
        }
        Dataset {
            name: "fashion-mnist".into(),
            metric: Metric::L2,
            train: data::read_idx_images_gz(&fashion)?,
            queries: data::read_idx_images_gz(
                &Path::new(FASHION_MNIST_DIR).join("t10k-images-idx3-ubyte.gz"),
            )?,
        }
    } else {
        Dataset {
            name: "synthetic clustered".into(),
            metric: Metric::L2,
            // Only the points the run uses are generated.
            train: data::clustered(points.unwrap_or(100_000).clamp(1, 100_000), 128, 64, 1),
            queries: data::clustered(args.queries.max(1), 128, 64, 1),
        }
    };
    if let Some(n) = points {
        let n = n.clamp(1, ds.train.rows());
        ds.train.data.truncate(n * ds.train.dim);
    }
    let q = args.queries.clamp(1, ds.queries.rows());
    ds.queries.data.truncate(q * ds.queries.dim);
    Ok(ds)
}

fn ensure_empty(dir: &Path) -> Result<(), BoxError> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(format!(
            "{} is not empty: give the demo an empty or new directory",
            dir.display()
        )
        .into());
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

struct Row {
    step: &'static str,
    value: String,
}

pub(crate) fn run(args: &DemoArgs, json_out: bool) -> Result<(), BoxError> {
    let (root, temporary) = match &args.dir {
        Some(d) => {
            ensure_empty(d)?;
            (d.clone(), false)
        }
        None => (
            std::env::temp_dir().join(format!("vellum-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = if args.cluster {
        crate::demo_cluster::run_in(args, &root, json_out)
    } else {
        run_in(args, &root, json_out)
    };
    if temporary && !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        say(
            json_out,
            &format!("data directory kept: {}", root.display()),
        );
    }
    result
}

fn say(json_out: bool, text: &str) {
    if !json_out {
        eprintln!("{text}");
    }
}

fn run_in(args: &DemoArgs, root: &Path, json_out: bool) -> Result<(), BoxError> {
    let mut rows = Vec::new();
    let t = Instant::now();
    let ds = load(args)?;
    let (n, dim) = (ds.train.rows(), ds.train.dim);
    say(
        json_out,
        &format!(
            "data: {} ({n} x {dim}, {} queries) loaded in {:.1} s",
            ds.name,
            ds.queries.rows(),
            t.elapsed().as_secs_f64()
        ),
    );
    rows.push(Row {
        step: "data set",
        value: format!("{} ({n} x {dim}, {:?})", ds.name, ds.metric),
    });
    rows.push(Row {
        step: "data directory",
        value: format!(
            "{}{}",
            root.display(),
            if args.dir.is_none() && !args.keep {
                " (temporary, removed at the end; --keep keeps it)"
            } else {
                ""
            }
        ),
    });
    rows.push(Row {
        step: "machine",
        value: format!(
            "{} cores, load average {} (this machine is shared: timings vary run to run)",
            std::thread::available_parallelism().map_or(0, |c| c.get()),
            load_average()
        ),
    });

    let db_dir = root.join("db");
    let options = DatabaseOptions::default().with_background_checkpoints(false);
    let params = HnswParams {
        m: 16,
        ef_construction: 100,
        ef_search: 64,
        ..HnswParams::default()
    };
    let db = Database::open(&db_dir, options.clone())?;
    let c = db.create_collection("demo", CollectionConfig::new(dim, ds.metric).hnsw(params))?;

    // 1. Durable ingest: every batch is synced before it is acknowledged.
    let bar = (!json_out).then(|| progress(n as u64, "ingest"));
    let t = Instant::now();
    let batch = args.batch.max(1);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        c.upsert_batch((start..end).map(|i| {
            Point::new(i as u64, ds.train.row(i).to_vec()).with_payload(format!("row {i}"))
        }))?;
        if let Some(b) = &bar {
            b.set_position(end as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let ingest_s = t.elapsed().as_secs_f64();
    // Acknowledged writes are searchable at once; the graph is built behind them. A bulk
    // load waits for the whole graph before it checkpoints.
    c.wait_indexed()?;
    let indexed_s = t.elapsed().as_secs_f64();
    rows.push(Row {
        step: "durable ingest (acknowledged, then HNSW fully built)",
        value: format!(
            "{:.1} s, {:.0} points/s, batches of {batch} each fsynced; graph complete at {:.1} s",
            ingest_s,
            n as f64 / ingest_s,
            indexed_s
        ),
    });

    // 2. Checkpoint.
    let t = Instant::now();
    let info = c.checkpoint()?;
    let cp_s = t.elapsed().as_secs_f64();
    let stats = c.stats();
    rows.push(Row {
        step: "checkpoint",
        value: format!(
            "generation {} at LSN {} in {:.2} s ({} stored); writers waited at most {:.1} ms",
            info.generation,
            info.lsn,
            cp_s,
            HumanBytes(stats.checkpoint_stored_bytes),
            info.lock_held.as_secs_f64() * 1e3
        ),
    });

    // 3. Ground truth and recall.
    let q = ds.queries.rows();
    let t = Instant::now();
    let truth: Vec<Vec<u64>> = (0..q)
        .map(|i| {
            c.search_with(
                ds.queries.row(i),
                10,
                &SearchParams {
                    exact: true,
                    ..Default::default()
                },
            )
            .map(|h| h.iter().map(|x| x.id).collect())
        })
        .collect::<Result<_, _>>()?;
    let exact_qps = q as f64 / t.elapsed().as_secs_f64();
    let mut answers = Vec::new();
    for ef in [32usize, 64, 128] {
        let run = timed_search(&c, &ds, &truth, ef, args.repeats)?;
        rows.push(Row {
            step: if ef == 64 {
                "search (ef 64, default)"
            } else if ef == 32 {
                "search (ef 32)"
            } else {
                "search (ef 128)"
            },
            value: run.summary(),
        });
        if ef == 64 {
            answers = run.answers;
        }
    }
    // The same searches on int8 codes (a quarter of the vector bytes), the best 2k
    // candidates rescored on the originals; then the codes are dropped again.
    let t = Instant::now();
    db.set_quantization("demo", Some(vellum::Quantization::int8()))?;
    let convert_s = t.elapsed().as_secs_f64();
    let stats = c.stats();
    let value = if stats.quantization.is_some() {
        let run = timed_search(&c, &ds, &truth, 64, args.repeats)?;
        format!(
            "{}; codes {} for {} of vectors, trained and encoded in {convert_s:.2} s",
            run.summary(),
            HumanBytes(stats.quantized_code_bytes),
            HumanBytes(stats.vector_segment_bytes)
        )
    } else {
        format!(
            "skipped: a quantizer is trained once a collection holds {} points ({n} here)",
            vellum::QUANTIZER_TRAIN_MIN_POINTS
        )
    };
    rows.push(Row {
        step: "search on int8 codes + rescoring (ef 64)",
        value,
    });
    db.set_quantization("demo", None)?;
    rows.push(Row {
        step: "exact search (ground truth)",
        value: format!("{exact_qps:.0} QPS"),
    });

    // 4. Reopen: open time, first query, same answers.
    drop(c);
    drop(db);
    let t = Instant::now();
    let db = Database::open(&db_dir, options.clone())?;
    let c = db.collection("demo")?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let first = c.search(ds.queries.row(0), 10)?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let same = (0..q).all(|i| {
        c.search(ds.queries.row(i), 10)
            .map(|h| h.iter().map(|x| x.id).collect::<Vec<_>>() == answers[i])
            .unwrap_or(false)
    });
    if !same || first.is_empty() {
        return Err("the reopened database answers differently".into());
    }
    rows.push(Row {
        step: "reopen (no rebuild)",
        value: format!(
            "{open_ms:.1} ms, first query {first_ms:.2} ms, same answers to all {q} queries"
        ),
    });

    // 5. Snapshot, restore into a fresh database, and compare answers.
    let archive = root.join("demo.vsnap");
    let t = Instant::now();
    let snap = db.export_snapshot("demo", &archive, vellum::Compression::Zstd)?;
    let export_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let restored_dir = root.join("restored");
    let restored_db = Database::open(&restored_dir, options.clone())?;
    restored_db.import_snapshot(std::slice::from_ref(&archive), "demo")?;
    drop(restored_db);
    let restored_db = Database::open(&restored_dir, options.clone())?;
    let restored = restored_db.collection("demo")?;
    let restore_s = t.elapsed().as_secs_f64();
    let same_restored = (0..q).all(|i| {
        restored
            .search(ds.queries.row(i), 10)
            .map(|h| h.iter().map(|x| x.id).collect::<Vec<_>>() == answers[i])
            .unwrap_or(false)
    });
    if !same_restored || restored.len() != c.len() {
        return Err("the restored copy answers differently".into());
    }
    rows.push(Row {
        step: "snapshot export",
        value: format!(
            "{} in {:.3} s ({}/s), BLAKE3 {}..",
            HumanBytes(snap.archive_bytes),
            export_s,
            HumanBytes((snap.archive_bytes as f64 / export_s.max(1e-6)) as u64),
            &snap.blake3[..16]
        ),
    });
    rows.push(Row {
        step: "restore into a fresh database",
        value: format!(
            "{:.2} s (verify, stage, swap, reopen), same answers to all {q} queries",
            restore_s
        ),
    });

    // 6. Verify every checksum.
    let t = Instant::now();
    let report = c.verify()?;
    if !report.is_ok() {
        return Err(format!("verify found damage: {:?}", report.problems).into());
    }
    rows.push(Row {
        step: "verify",
        value: format!(
            "{} vectors and {} generations checked in {:.2} s, no damage",
            report.vectors_checked,
            report.generations_checked,
            t.elapsed().as_secs_f64()
        ),
    });
    rows.push(Row {
        step: "on disk",
        value: format!("{}", HumanBytes(dir_bytes(&db_dir))),
    });

    if json_out {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|r| (r.step.to_owned(), json!(r.value)))
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        println!("\nVellum demo summary");
        let w = rows.iter().map(|r| r.step.len()).max().unwrap_or(0);
        for r in &rows {
            println!("  {:<w$}  {}", r.step, r.value);
        }
    }
    Ok(())
}

/// Timed runs of every query at one `ef`: QPS of each run, recall of the last.
struct SearchRun {
    qps_runs: Vec<f64>,
    recall: f64,
    answers: Vec<Vec<u64>>,
}

impl SearchRun {
    fn summary(&self) -> String {
        let q = &self.qps_runs;
        format!(
            "recall@10 {:.3}, QPS {:.0} / {:.0} / {:.0} (min / median / max of {} runs, 1 thread)",
            self.recall,
            q[0],
            q[q.len() / 2],
            q[q.len() - 1],
            q.len()
        )
    }
}

fn timed_search(
    c: &vellum::Collection,
    ds: &Dataset,
    truth: &[Vec<u64>],
    ef: usize,
    repeats: usize,
) -> Result<SearchRun, BoxError> {
    let q = ds.queries.rows();
    // Several timed runs: one run on a shared machine says little.
    let mut qps_runs = Vec::with_capacity(repeats.max(1));
    let mut answers: Vec<Vec<u64>> = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        answers = (0..q)
            .map(|i| {
                c.search_with(
                    ds.queries.row(i),
                    10,
                    &SearchParams {
                        ef: Some(ef),
                        ..Default::default()
                    },
                )
                .map(|h| h.iter().map(|x| x.id).collect())
            })
            .collect::<Result<_, _>>()?;
        qps_runs.push(q as f64 / t.elapsed().as_secs_f64());
    }
    qps_runs.sort_by(f64::total_cmp);
    Ok(SearchRun {
        recall: recall_at_10(truth, &answers),
        qps_runs,
        answers,
    })
}

fn recall_at_10(truth: &[Vec<u64>], got: &[Vec<u64>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (t, g) in truth.iter().zip(got) {
        total += t.len();
        hit += g.iter().filter(|id| t.contains(id)).count();
    }
    hit as f64 / total.max(1) as f64
}

/// The 1, 5 and 15 minute load averages (Linux), or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
