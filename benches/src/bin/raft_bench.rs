//! Replication on the in-process cluster (issue 18): three nodes on real files (temporary
//! directories), side by side with one `Database` under `SyncPolicy::Always`, the same
//! batches, in the same run.
//!
//! ```text
//! cargo build --release -p vellum-benches --bin raft_bench
//! target/release/raft_bench --runs 3 --batches 400 --clients 1,8 --catchup-points 100000
//! target/release/raft_bench --index flat ...   # the replication's cost alone
//! ```
//!
//! Per run and per client count: acknowledged points/s (batches of 100 × 128-d, each client
//! writing its share, until the last write returned) and the write latency p50/p99, for
//! the single node and the cluster (a cluster write returns once a majority made it durable
//! and the leader applied it). Then failover: the leader drops off the network, and the time until the
//! next write is acknowledged (through the new leader) is measured. Then catch-up: a
//! follower is stopped while `--catchup-points` are written (the leader snapshots and
//! purges), started again, and the time until it has applied everything is measured with
//! the snapshot bytes streamed to it. Output: markdown tables, "median (min–max)".
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point};
use vellum_benches::latency_report::load_average;
use vellum_benches::process_cpu;
use vellum_raft::cluster::{Cluster, Storage, default_config};
use vellum_raft::{CollectionSpec, PointData, Request, Response};

const DIM: usize = 128;
const BATCH: usize = 100;

#[derive(Debug)]
struct Args {
    runs: usize,
    batches: usize,
    clients: Vec<usize>,
    catchup_points: usize,
    work_dir: PathBuf,
    /// An exact (flat) index instead of HNSW: the replication's own cost, without three
    /// nodes building graphs on one machine's cores.
    flat: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 3,
        batches: 400,
        clients: vec![1, 8],
        catchup_points: 100_000,
        work_dir: std::env::temp_dir(),
        flat: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => args.runs = value().parse().expect("--runs N"),
            "--batches" => args.batches = value().parse().expect("--batches N"),
            "--clients" => {
                args.clients = value()
                    .split(',')
                    .map(|c| c.parse().expect("--clients 1,8"))
                    .collect()
            }
            "--catchup-points" => {
                args.catchup_points = value().parse().expect("--catchup-points N")
            }
            "--work-dir" => args.work_dir = value().into(),
            "--index" => {
                args.flat = match value().as_str() {
                    "flat" => true,
                    "hnsw" => false,
                    other => panic!("--index flat|hnsw, not {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn vector(id: u64) -> Vec<f32> {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn request(batch: usize) -> Request {
    let first = (batch * BATCH) as u64;
    Request::Upsert {
        collection: "bench".into(),
        points: (first..first + BATCH as u64)
            .map(|id| PointData {
                id,
                vector: vector(id),
                payload: None,
            })
            .collect(),
    }
}

/// Points/s and latency percentiles (ms) of one write phase.
#[derive(Debug, Clone, Copy)]
struct Phase {
    points_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Process CPU time per acknowledged point (every node and thread of the process).
    cpu_us_per_point: f64,
}

fn phase(points: usize, took: Duration, cpu: Duration, mut lat: Vec<Duration>) -> Phase {
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Phase {
        points_per_sec: points as f64 / took.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_us_per_point: cpu.as_secs_f64() * 1e6 / points as f64,
    }
}

fn single_node(dir: &std::path::Path, batches: usize, clients: usize, flat: bool) -> Phase {
    let db = Database::open(dir.join("single"), DatabaseOptions::default()).unwrap();
    let mut config = CollectionConfig::new(DIM, Metric::L2);
    if flat {
        config.index = vellum::IndexKind::Flat;
    }
    let coll = db.create_collection("bench", config).unwrap();
    let started = Instant::now();
    let cpu = process_cpu();
    let lat: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let coll = coll.clone();
                s.spawn(move || {
                    let mut lat = Vec::new();
                    for b in (c..batches).step_by(clients) {
                        let first = (b * BATCH) as u64;
                        let points =
                            (first..first + BATCH as u64).map(|id| Point::new(id, vector(id)));
                        let t = Instant::now();
                        coll.upsert_batch(points).unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    phase(batches * BATCH, started.elapsed(), process_cpu() - cpu, lat)
}

async fn start_cluster(
    dir: &std::path::Path,
    config: openraft::Config,
    flat: bool,
) -> Arc<Cluster> {
    let options = DatabaseOptions::default();
    let cluster = Arc::new(Cluster::new(config, options).unwrap());
    for id in 1..=3 {
        let node_dir = dir.join(format!("node{id}"));
        cluster.start(id, Storage::Real(node_dir)).await.unwrap();
    }
    cluster.initialize(1, &[1, 2, 3]).await.unwrap();
    let create = Request::CreateCollection {
        name: "bench".into(),
        spec: CollectionSpec {
            flat,
            ..CollectionSpec::new(DIM as u32, "l2")
        },
    };
    let resp = cluster.write(create, Duration::from_secs(30)).await;
    assert_eq!(resp, Some(Response::Applied { points: 0 }));
    cluster
}

async fn cluster_writes(
    cluster: &Arc<Cluster>,
    from: usize,
    batches: usize,
    clients: usize,
) -> Phase {
    let started = Instant::now();
    let cpu = process_cpu();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let cluster = Arc::clone(cluster);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for b in (from + c..from + batches).step_by(clients) {
                let t = Instant::now();
                let resp = cluster.write(request(b), Duration::from_secs(60)).await;
                assert!(matches!(resp, Some(Response::Applied { .. })), "{resp:?}");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    phase(batches * BATCH, started.elapsed(), process_cpu() - cpu, lat)
}

fn summary(xs: &[f64]) -> String {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let fmt = |x: f64| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    };
    format!(
        "{} ({}–{})",
        fmt(v[v.len() / 2]),
        fmt(v[0]),
        fmt(v[v.len() - 1])
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    println!(
        "raft_bench: {} runs, {} batches of {BATCH} x {DIM}-d per setting, {} index, load average {}",
        args.runs,
        args.batches,
        if args.flat { "flat" } else { "HNSW" },
        load_average()
    );
    // (clients) -> (single points/s, cluster points/s, ratio, single p50, p99, cluster p50, p99)
    let mut rows: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 9]; args.clients.len()];
    let mut failover_ms = Vec::new();
    let mut catchup = Vec::new();
    let config = default_config();
    for run in 0..args.runs {
        for (ci, &clients) in args.clients.iter().enumerate() {
            let dir = tempfile::tempdir_in(&args.work_dir).unwrap();
            let single = single_node(dir.path(), args.batches, clients, args.flat);
            let cluster = start_cluster(dir.path(), config.clone(), args.flat).await;
            let replicated = cluster_writes(&cluster, 0, args.batches, clients).await;
            for id in 1..=3 {
                cluster.kill(id).await;
            }
            let r = &mut rows[ci];
            r[0].push(single.points_per_sec);
            r[1].push(replicated.points_per_sec);
            r[2].push(replicated.points_per_sec / single.points_per_sec);
            r[3].push(single.p50_ms);
            r[4].push(single.p99_ms);
            r[5].push(replicated.p50_ms);
            r[6].push(replicated.p99_ms);
            r[7].push(single.cpu_us_per_point);
            r[8].push(replicated.cpu_us_per_point);
            println!(
                "run {run} clients {clients}: single {:.0} pts/s, cluster {:.0} pts/s ({:.2}x)",
                single.points_per_sec,
                replicated.points_per_sec,
                replicated.points_per_sec / single.points_per_sec
            );
        }
        // Failover.
        {
            let dir = tempfile::tempdir_in(&args.work_dir).unwrap();
            let cluster = start_cluster(dir.path(), config.clone(), args.flat).await;
            cluster_writes(&cluster, 0, 20, 1).await;
            let leader = cluster.leader().unwrap();
            // The leader drops off the network at once (as a killed process does); its
            // orderly shutdown afterwards is not part of the failover.
            let t = Instant::now();
            cluster.router.isolate(leader, true);
            let resp = cluster.write(request(1000), Duration::from_secs(30)).await;
            assert!(resp.is_some());
            failover_ms.push(t.elapsed().as_secs_f64() * 1e3);
            println!("run {run}: failover {:.0} ms", failover_ms.last().unwrap());
            for id in 1..=3 {
                cluster.kill(id).await;
            }
        }
        // Snapshot catch-up.
        if args.catchup_points > 0 {
            let dir = tempfile::tempdir_in(&args.work_dir).unwrap();
            let catchup_config = openraft::Config {
                snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(200),
                max_in_snapshot_log_to_keep: 0,
                ..config.clone()
            };
            let cluster = start_cluster(dir.path(), catchup_config, args.flat).await;
            let leader = cluster.leader().unwrap();
            let behind = (1..=3).find(|id| *id != leader).unwrap();
            let Some(storage) = cluster.kill(behind).await else {
                panic!("node {behind} was running");
            };
            let batches = args.catchup_points / BATCH;
            cluster_writes(&cluster, 0, batches, 8).await;
            // Until the leader purged past the follower: more writes and snapshots.
            let mut extra = batches;
            while cluster
                .node(cluster.leader().unwrap())
                .unwrap()
                .log
                .state()
                .purged
                .is_none_or(|p| p.index < 100)
            {
                cluster_writes(&cluster, extra, 10, 1).await;
                extra += 10;
            }
            let before = cluster.router.stats();
            let t = Instant::now();
            cluster.start(behind, storage).await.unwrap();
            assert!(cluster.wait_converged(Duration::from_secs(600)).await);
            let secs = t.elapsed().as_secs_f64();
            let after = cluster.router.stats();
            let bytes = after.snapshot_bytes - before.snapshot_bytes;
            let streaming = (after.snapshot_time - before.snapshot_time).as_secs_f64();
            println!(
                "run {run}: catch-up of {} points: {secs:.2} s until applied, {bytes} snapshot \
                 bytes streamed and installed in {streaming:.2} s, {:.1} MB/s",
                extra * BATCH,
                bytes as f64 / 1e6 / streaming
            );
            catchup.push((secs, bytes as f64 / 1e6 / streaming, bytes));
            for id in 1..=3 {
                cluster.kill(id).await;
            }
        }
    }
    println!("\nload average after: {}\n", load_average());
    println!(
        "| clients | single node (Always) pts/s | 3-node cluster pts/s | ratio | single p50 / p99 ms | cluster p50 / p99 ms | CPU µs/point single / cluster (3 nodes) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (ci, clients) in args.clients.iter().enumerate() {
        let r = &rows[ci];
        println!(
            "| {clients} | {} | {} | {} | {} / {} | {} / {} | {} / {} |",
            summary(&r[0]),
            summary(&r[1]),
            summary(&r[2]),
            summary(&r[3]),
            summary(&r[4]),
            summary(&r[5]),
            summary(&r[6]),
            summary(&r[7]),
            summary(&r[8])
        );
    }
    println!(
        "\nfailover (leader stopped -> next acknowledged write), election timeout {}–{} ms: {} ms",
        config.election_timeout_min,
        config.election_timeout_max,
        summary(&failover_ms)
    );
    if !catchup.is_empty() {
        let secs: Vec<f64> = catchup.iter().map(|c| c.0).collect();
        let mbs: Vec<f64> = catchup.iter().map(|c| c.1).collect();
        println!(
            "snapshot catch-up: {} s until the follower applied everything; streaming and \
             installing the snapshot {} MB/s of archive ({} bytes in the last run)",
            summary(&secs),
            summary(&mbs),
            catchup.last().unwrap().2
        );
    }
}
