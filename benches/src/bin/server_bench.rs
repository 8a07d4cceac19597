//! The HTTP server against the in-process calls (issue 19), side by side in one run.
//!
//! ```text
//! cargo build --release -p vellum-benches --bin server_bench
//! target/release/server_bench --runs 3 --points 50000 --seconds 3 --write-batches 200
//! ```
//!
//! 1. Search: one node holding `--points` generated 128-d points (HNSW, fully indexed).
//!    For 1 and 8 concurrent clients, `--seconds` of searches (top 10) through
//!    `Collection::search` on client threads, then the same queries as `POST .../search`
//!    over HTTP/1.1 keep-alive connections on 127.0.0.1 (one async client runtime on its own
//!    thread). QPS and p50/p99 per side, and HTTP's share of in-process QPS.
//! 2. Acknowledged writes: batches of 100 × 128-d as `PUT .../points` (JSON) to a flat
//!    collection on a single node (durable before it answers), then on the leader of a
//!    3-node cluster of servers in this process talking Raft over HTTP on 127.0.0.1 (a
//!    majority durable and the leader applied before it answers); 1 and 8 clients.
//! 3. Failover as a client sees it: the leader's server stops (its port closes, its Raft
//!    stops) and a client writing through the other nodes measures the time until the next
//!    write is acknowledged.
//!
//! Client and servers share this machine's cores: the HTTP numbers include the client's
//! JSON encoding and the loopback round trip. Output: markdown tables, median (min–max).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vellum::{CollectionConfig, Database, DatabaseOptions, Metric};
use vellum_benches::latency::{Workload, generated, ingest, wait_indexed};
use vellum_benches::latency_report::load_average;
use vellum_benches::{process_cpu, thread_cpu};
use vellum_server::{AppState, NodeConfig};

const DIM: usize = 128;
const K: usize = 10;
const WRITE_BATCH: usize = 100;

#[derive(Debug)]
struct Args {
    runs: usize,
    points: usize,
    seconds: f64,
    write_batches: usize,
    clients: Vec<usize>,
    /// Stop after the search comparison (for profiling it).
    search_only: bool,
    /// HNSW candidate list size of the searches (the collection's default if absent).
    ef: Option<usize>,
    /// Dimensions of the generated points.
    dim: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 3,
        points: 50_000,
        seconds: 3.0,
        write_batches: 200,
        clients: vec![1, 8],
        search_only: false,
        ef: None,
        dim: DIM,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => args.runs = value().parse().expect("--runs N"),
            "--points" => args.points = value().parse().expect("--points N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds S"),
            "--write-batches" => args.write_batches = value().parse().expect("--write-batches N"),
            "--clients" => {
                args.clients = value()
                    .split(',')
                    .map(|c| c.parse().expect("--clients 1,8"))
                    .collect()
            }
            "--search-only" => args.search_only = true,
            "--ef" => args.ef = Some(value().parse().expect("--ef N")),
            "--dim" => args.dim = value().parse().expect("--dim N"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// QPS and latency percentiles of one measurement.
#[derive(Debug, Clone, Copy)]
struct Measure {
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Operations timed.
    ops: usize,
    /// Process CPU time per operation (client and server together), microseconds.
    cpu_us: f64,
    /// Of it, the HTTP client's (its runtime runs on the measuring thread).
    client_cpu_us: f64,
}

fn measure(mut nanos: Vec<u64>, wall: Duration) -> Measure {
    nanos.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len().max(1));
        nanos.get(rank - 1).map_or(f64::NAN, |&ns| ns as f64 / 1e6)
    };
    Measure {
        qps: nanos.len() as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        ops: nanos.len(),
        cpu_us: 0.0,
        client_cpu_us: 0.0,
    }
}

/// `f` with the process CPU time it took per operation.
fn with_cpu(f: impl FnOnce() -> Measure) -> Measure {
    let cpu = process_cpu();
    let mut m = f();
    m.cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / m.ops.max(1) as f64;
    m
}

fn in_process_search(
    db: &Database,
    work: &Workload,
    clients: usize,
    secs: f64,
    ef: Option<usize>,
) -> Measure {
    let coll = db.collection("bench").unwrap();
    let started = Instant::now();
    let per_client: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let coll = coll.clone();
                s.spawn(move || {
                    let mut nanos = Vec::new();
                    let mut i = c * 7919;
                    while started.elapsed().as_secs_f64() < secs {
                        let t = Instant::now();
                        let params = vellum::SearchParams {
                            ef,
                            ..vellum::SearchParams::default()
                        };
                        std::hint::black_box(coll.search_with(work.query(i), K, &params).unwrap());
                        nanos.push(t.elapsed().as_nanos() as u64);
                        i += 1;
                    }
                    nanos
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    measure(per_client.concat(), started.elapsed())
}

fn http_search(
    base: &str,
    work: &Workload,
    clients: usize,
    secs: f64,
    ef: Option<usize>,
) -> Measure {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let bodies: Vec<String> = (0..work.query_count())
        .map(|i| json!({"vector": work.query(i), "limit": K, "ef": ef}).to_string())
        .collect();
    let bodies = Arc::new(bodies);
    // `ef == Some(0)`: the floor of the HTTP path, `GET /healthz` (no body, no search).
    let floor = ef == Some(0);
    let url = if floor {
        format!("{base}/healthz")
    } else {
        format!("{base}/collections/bench/points/search")
    };
    let client_cpu = thread_cpu();
    let mut m = rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (http, url, bodies) = (http.clone(), url.clone(), Arc::clone(&bodies));
                tokio::spawn(async move {
                    let mut nanos = Vec::new();
                    let mut i = c * 7919;
                    while started.elapsed().as_secs_f64() < secs {
                        let body = bodies[i % bodies.len()].clone();
                        let t = Instant::now();
                        let req = if floor {
                            http.get(&url)
                        } else {
                            http.post(&url)
                                .header("content-type", "application/json")
                                .body(body)
                        };
                        let r = req.send().await.unwrap();
                        assert_eq!(r.status(), 200);
                        std::hint::black_box(r.bytes().await.unwrap());
                        nanos.push(t.elapsed().as_nanos() as u64);
                        i += 1;
                    }
                    nanos
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        measure(all, started.elapsed())
    });
    m.client_cpu_us = (thread_cpu() - client_cpu).as_secs_f64() * 1e6 / m.ops.max(1) as f64;
    m
}

/// Upserts `batches` batches as JSON through `urls` (client `c` uses `urls[c % len]`),
/// `clients` at a time; returns points/s and latency.
fn http_writes(
    urls: &[String],
    work: &Workload,
    first_id: u64,
    batches: usize,
    clients: usize,
) -> Measure {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    rt.block_on(async {
        let started = Instant::now();
        let per = batches.div_ceil(clients);
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let http = http.clone();
                let url = format!("{}/collections/writes/points", urls[c % urls.len()]);
                let bodies: Vec<String> = (0..per)
                    .map(|b| {
                        let start = (c * per + b) * WRITE_BATCH;
                        let points: Vec<Value> = (start..start + WRITE_BATCH)
                            .map(|i| json!({"id": first_id + i as u64, "vector": work.row(i % work.rows())}))
                            .collect();
                        json!({ "points": points }).to_string()
                    })
                    .collect();
                tokio::spawn(async move {
                    let mut nanos = Vec::new();
                    for body in bodies {
                        let t = Instant::now();
                        let r = http
                            .put(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                        nanos.push(t.elapsed().as_nanos() as u64);
                    }
                    nanos
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let wall = started.elapsed();
        let mut m = measure(all, wall);
        m.qps *= WRITE_BATCH as f64; // points per second
        m
    })
}

struct Served {
    state: AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    url: String,
}

async fn serve(config: NodeConfig, listener: tokio::net::TcpListener) -> Served {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = vellum_server::open(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(vellum_server::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Served {
        state,
        stop,
        task,
        url,
    }
}

async fn shut(s: Served) {
    let _ = s.stop.send(());
    if let vellum_server::Backend::Cluster(n) = &s.state.backend {
        let _ = n.raft.shutdown().await;
    }
    let _ = s.task.await;
}

fn summary(xs: &mut [f64]) -> String {
    xs.sort_by(f64::total_cmp);
    let med = xs[xs.len() / 2];
    format!("{med:.0} ({:.0}–{:.0})", xs[0], xs[xs.len() - 1])
}

fn summary_ms(xs: &mut [f64]) -> String {
    xs.sort_by(f64::total_cmp);
    format!("{:.2}", xs[xs.len() / 2])
}

#[allow(clippy::too_many_lines)]
fn main() {
    let args = parse_args();
    println!(
        "server_bench: {} points × {}, ef {:?}, {} runs, {} s per cell, load average {}",
        args.points,
        args.dim,
        args.ef,
        args.runs,
        args.seconds,
        load_average()
    );
    let work = generated(args.points, args.dim, 1000, 7);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. Search: one node, in-process vs HTTP.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("single");
    {
        let db = Database::open(&data, DatabaseOptions::default()).unwrap();
        let coll = db
            .create_collection("bench", CollectionConfig::new(args.dim, Metric::L2))
            .unwrap();
        let t = Instant::now();
        ingest(&coll, &work, 0..work.rows(), 1000);
        wait_indexed(&coll, work.rows() as u64, Duration::from_secs(3600));
        println!("loaded and indexed in {:.1} s", t.elapsed().as_secs_f64());
        db.checkpoint_all().unwrap();
    }
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let single = server_rt.block_on(serve(NodeConfig::single(&data), listener));
    let db = single.state.database().clone();
    {
        let t = Instant::now();
        let coll = db.collection("bench").unwrap();
        wait_indexed(&coll, work.rows() as u64, Duration::from_secs(3600));
        let st = coll.stats();
        println!(
            "reopened by the server: graph loaded from the checkpoint: {}, indexed after {:.1} s",
            st.graph_loaded_from_checkpoint,
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "\n| clients | in-process QPS | HTTP QPS | HTTP / in-process | in-process p50 / p99 ms | HTTP p50 / p99 ms | CPU µs/query: in-process / HTTP server / HTTP client |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &clients in &args.clients {
        let (mut a, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let (mut a50, mut a99, mut b50, mut b99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut acpu, mut bcpu, mut ccpu) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..args.runs {
            // Alternate which side goes first.
            let inproc =
                || with_cpu(|| in_process_search(&db, &work, clients, args.seconds, args.ef));
            let over_http =
                || with_cpu(|| http_search(&single.url, &work, clients, args.seconds, args.ef));
            let (x, y) = if run % 2 == 0 {
                let x = inproc();
                (x, over_http())
            } else {
                let y = over_http();
                (inproc(), y)
            };
            acpu.push(x.cpu_us);
            bcpu.push(y.cpu_us - y.client_cpu_us);
            ccpu.push(y.client_cpu_us);
            a.push(x.qps);
            b.push(y.qps);
            ratio.push(y.qps / x.qps);
            a50.push(x.p50_ms);
            a99.push(x.p99_ms);
            b50.push(y.p50_ms);
            b99.push(y.p99_ms);
        }
        ratio.sort_by(f64::total_cmp);
        println!(
            "| {clients} | {} | {} | {:.2} ({:.2}–{:.2}) | {} / {} | {} / {} | {} / {} / {} |",
            summary(&mut a),
            summary(&mut b),
            ratio[ratio.len() / 2],
            ratio[0],
            ratio[ratio.len() - 1],
            summary_ms(&mut a50),
            summary_ms(&mut a99),
            summary_ms(&mut b50),
            summary_ms(&mut b99),
            summary(&mut acpu),
            summary(&mut bcpu),
            summary(&mut ccpu),
        );
    }
    // The floor: what a request costs the server with no work in it.
    for &clients in &args.clients {
        let m = with_cpu(|| http_search(&single.url, &work, clients, args.seconds, Some(0)));
        println!(
            "floor: GET /healthz, {clients} clients: {:.0} QPS, server CPU {:.0} µs/request, client {:.0}",
            m.qps,
            m.cpu_us - m.client_cpu_us,
            m.client_cpu_us
        );
    }
    drop(db);
    if args.search_only {
        server_rt.block_on(shut(single));
        return;
    }

    // 2. Acknowledged writes: single node vs a 3-node cluster, over HTTP.
    let cluster_dir = tempfile::tempdir().unwrap();
    let listeners: Vec<tokio::net::TcpListener> = (0..3)
        .map(|_| {
            server_rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap()
        })
        .collect();
    let peers: Vec<(u64, String)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().unwrap().to_string()))
        .collect();
    let mut nodes: Vec<Option<Served>> = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let config = NodeConfig {
            node_id: Some(i as u64 + 1),
            peers: peers.clone(),
            ..NodeConfig::single(cluster_dir.path().join(format!("n{}", i + 1)))
        };
        nodes.push(Some(server_rt.block_on(serve(config, l))));
    }
    let http = reqwest::blocking::Client::new();
    let leader = loop {
        let text = http
            .get(format!("{}/cluster", nodes[0].as_ref().unwrap().url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let r: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(l) = r["result"]["leader"].as_u64() {
            break l;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let leader_url = nodes[leader as usize - 1].as_ref().unwrap().url.clone();
    // The writes go to a flat collection on both sides: the write path's cost (the log,
    // Raft, HTTP), not three HNSW builds sharing this machine's cores (raft_bench has those).
    for url in [&single.url, &leader_url] {
        let r = http
            .put(format!("{url}/collections/writes"))
            .header("content-type", "application/json")
            .body(
                json!({"vectors": {"size": args.dim, "distance": "Euclid"}, "index": "flat"})
                    .to_string(),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    println!(
        "\n| clients | single node pts/s (HTTP) | 3-node cluster pts/s (HTTP, to the leader) | cluster / single | single p50 / p99 ms | cluster p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|");
    let mut next_id = 10_000_000u64;
    for &clients in &args.clients {
        let (mut a, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let (mut a50, mut a99, mut b50, mut b99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let x = http_writes(
                std::slice::from_ref(&single.url),
                &work,
                next_id,
                args.write_batches,
                clients,
            );
            let y = http_writes(
                std::slice::from_ref(&leader_url),
                &work,
                next_id,
                args.write_batches,
                clients,
            );
            next_id += (args.write_batches * WRITE_BATCH) as u64 + 1000;
            a.push(x.qps);
            b.push(y.qps);
            ratio.push(y.qps / x.qps);
            a50.push(x.p50_ms);
            a99.push(x.p99_ms);
            b50.push(y.p50_ms);
            b99.push(y.p99_ms);
        }
        ratio.sort_by(f64::total_cmp);
        println!(
            "| {clients} | {} | {} | {:.2} ({:.2}–{:.2}) | {} / {} | {} / {} |",
            summary(&mut a),
            summary(&mut b),
            ratio[ratio.len() / 2],
            ratio[0],
            ratio[ratio.len() - 1],
            summary_ms(&mut a50),
            summary_ms(&mut a99),
            summary_ms(&mut b50),
            summary_ms(&mut b99),
        );
    }

    // 3. Failover seen by a client: the leader's server stops; writes go through the others.
    let others: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u64 + 1 != leader)
        .map(|(_, n)| n.as_ref().unwrap().url.clone())
        .collect();
    let body = json!({"points": [{"id": 1, "vector": work.row(0)}]}).to_string();
    // (to the flat collection "writes")
    let stopped_at = Instant::now();
    server_rt.block_on(shut(nodes[leader as usize - 1].take().unwrap()));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut tries = 0;
    let acked = loop {
        let url = &others[tries % others.len()];
        tries += 1;
        let ok = client
            .put(format!("{url}/collections/writes/points"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break stopped_at.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "\nfailover: the leader's server stopped; the next write through another node was acknowledged after {:.0} ms ({tries} tries; heartbeat {} ms, election timeout {}–{} ms)",
        acked.as_secs_f64() * 1e3,
        vellum_server::DEFAULT_HEARTBEAT_MS,
        4 * vellum_server::DEFAULT_HEARTBEAT_MS,
        8 * vellum_server::DEFAULT_HEARTBEAT_MS
    );
    for n in nodes.into_iter().flatten() {
        server_rt.block_on(shut(n));
    }
    server_rt.block_on(shut(single));
    println!("load average at the end {}", load_average());
}
