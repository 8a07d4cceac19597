//! `vellum cluster torture`: three server processes on 127.0.0.1, a client writing
//! acknowledged batches to any of them, and chaos — SIGKILL of a random node (the leader
//! half the time) at random moments, restarts, SIGSTOP/SIGCONT pauses that cut a node off
//! as a partition would. At the end every node must hold every acknowledged batch, agree
//! with the others, and answer searches as exact search does.
//!
//! Bounded: `--kills` chaos events, one node down or paused at a time, loopback only.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rustix::process::Signal;
use serde_json::{Value, json};

use crate::BoxError;
use crate::client::Client;
use crate::local_cluster::LocalCluster;

#[derive(Debug, Args)]
pub(crate) struct ClusterTortureArgs {
    /// Chaos events (kills and pauses).
    #[arg(long, default_value_t = 20)]
    kills: u64,
    /// Seed of the chaos schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Points per batch.
    #[arg(long, default_value_t = 20)]
    batch: u64,
    /// Raft entries between snapshots (small: restarted nodes often catch up by one).
    #[arg(long, default_value_t = 150)]
    snapshot_every: u64,
    /// Working directory (a temporary one if omitted).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const DIM: usize = 8;
const COLLECTION: &str = "torture";

fn vector_of(id: u64) -> Vec<f32> {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Default)]
struct Written {
    /// Batches acknowledged (their first ids).
    acked: Vec<u64>,
    /// Batches tried and never acknowledged (they may or may not be there).
    unacked: Vec<u64>,
}

/// What one run checked.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ClusterTortureReport {
    pub(crate) kills: u64,
    pub(crate) leader_kills: u64,
    pub(crate) pauses: u64,
    pub(crate) batches_acked: u64,
    pub(crate) batches_unacked: u64,
    pub(crate) points_checked_per_node: u64,
    pub(crate) nodes_with_a_snapshot: u64,
    pub(crate) seconds: f64,
}

/// The writer: batches of new ids to a random node, each retried (on any node) until
/// acknowledged or given up.
fn writer(
    addrs: Vec<String>,
    batch: u64,
    stop: Arc<AtomicBool>,
    written: Arc<Mutex<Written>>,
    seed: u64,
) {
    let mut rng = Rng(seed | 1);
    let clients: Vec<Client> = addrs
        .iter()
        .filter_map(|a| Client::new(a, Duration::from_secs(15)).ok())
        .collect();
    let mut next_id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let first = next_id;
        next_id += batch;
        let points: Vec<Value> = (first..first + batch)
            .map(|id| json!({"id": id, "vector": vector_of(id), "payload": {"batch": first}}))
            .collect();
        let body = json!({ "points": points });
        let mut acked = false;
        for _ in 0..20 {
            let c = &clients[rng.below(clients.len() as u64) as usize];
            if let Ok(a) = c.call(
                "PUT",
                &format!("/collections/{COLLECTION}/points"),
                Some(&body),
            ) && a.status == 200
            {
                acked = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let mut w = written.lock().expect("writer state");
        if acked {
            w.acked.push(first);
        } else {
            w.unacked.push(first);
        }
    }
}

pub(crate) fn run(args: &ClusterTortureArgs, json_out: bool) -> Result<(), BoxError> {
    let started = Instant::now();
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    let mut cluster = LocalCluster::start(&dir, 3, None, args.snapshot_every)?;
    let leader = cluster.wait_leader(Duration::from_secs(30))?;
    let c = cluster.client(leader, Duration::from_secs(30))?;
    c.ok(
        "PUT",
        &format!("/collections/{COLLECTION}"),
        Some(&json!({"vectors": {"size": DIM, "distance": "Euclid"}})),
    )?;

    let written = Arc::new(Mutex::new(Written::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let w = {
        let (written, stop, batch, seed) = (
            Arc::clone(&written),
            Arc::clone(&stop),
            args.batch,
            args.seed,
        );
        std::thread::spawn(move || writer(addrs, batch, stop, written, seed))
    };

    let mut rng = Rng(args.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut report = ClusterTortureReport {
        kills: 0,
        leader_kills: 0,
        pauses: 0,
        batches_acked: 0,
        batches_unacked: 0,
        points_checked_per_node: 0,
        nodes_with_a_snapshot: 0,
        seconds: 0.0,
    };
    let result = (|| -> Result<(), BoxError> {
        for _ in 0..args.kills {
            std::thread::sleep(Duration::from_millis(200 + rng.below(800)));
            let target = match cluster.leader() {
                Some(l) if rng.below(2) == 0 => {
                    report.leader_kills += 1;
                    l
                }
                _ => 1 + rng.below(3),
            };
            if rng.below(4) == 0 {
                // A pause: the node's traffic stops (a partition), then it resumes.
                cluster.signal(target, Signal::STOP)?;
                std::thread::sleep(Duration::from_millis(300 + rng.below(1500)));
                cluster.signal(target, Signal::CONT)?;
                report.pauses += 1;
            } else {
                cluster.kill(target)?;
                report.kills += 1;
                std::thread::sleep(Duration::from_millis(rng.below(1500)));
                cluster.spawn(target)?;
            }
        }
        Ok(())
    })();
    // Writes go on for a moment with every node up, then stop.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    w.join().map_err(|_| "the writer panicked")?;
    result?;

    report.nodes_with_a_snapshot = verify(&cluster, &written, args.batch, &mut report)?;
    cluster.terminate_all()?;
    report.seconds = started.elapsed().as_secs_f64();
    if json_out {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "cluster torture: {} kills ({} of the leader), {} pauses; {} batches acknowledged \
             ({} not), {} points checked on each of 3 nodes, {} nodes with a \
             snapshot; {:.1} s",
            report.kills,
            report.leader_kills,
            report.pauses,
            report.batches_acked,
            report.batches_unacked,
            report.points_checked_per_node,
            report.nodes_with_a_snapshot,
            report.seconds
        );
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!(
        "vellum-cluster-torture-{}-{}",
        std::process::id(),
        vellum::fs::rng::random_u64()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Waits until the nodes converged, then checks every acknowledged point on every node,
/// that the nodes hold the same points, and that search agrees with exact search.
fn verify(
    cluster: &LocalCluster,
    written: &Mutex<Written>,
    batch: u64,
    report: &mut ClusterTortureReport,
) -> Result<u64, BoxError> {
    let w = written.lock().map_err(|_| "writer state")?;
    report.batches_acked = w.acked.len() as u64;
    report.batches_unacked = w.unacked.len() as u64;
    let clients: Vec<Client> = (1..=3)
        .map(|id| cluster.client(id, Duration::from_secs(60)))
        .collect::<Result<_, _>>()?;
    // Converged: every node applied the same last index.
    let deadline = Instant::now() + Duration::from_secs(120);
    let snapshots = loop {
        let st: Vec<Value> = clients
            .iter()
            .map(|c| c.ok("GET", "/cluster", None))
            .collect::<Result<_, _>>()?;
        let applied: BTreeSet<Option<u64>> =
            st.iter().map(|s| s["applied_index"].as_u64()).collect();
        let last = st.iter().filter_map(|s| s["last_log_index"].as_u64()).max();
        if applied.len() == 1 && applied.iter().next().copied().flatten() == last {
            break st
                .iter()
                .filter(|s| s["snapshot_index"].as_u64().is_some())
                .count() as u64;
        }
        if Instant::now() > deadline {
            return Err(format!("the nodes did not converge: {st:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let acked: Vec<u64> = w
        .acked
        .iter()
        .flat_map(|first| *first..*first + batch)
        .collect();
    let mut counts = BTreeSet::new();
    for (i, c) in clients.iter().enumerate() {
        let node = i + 1;
        for ids in acked.chunks(5000) {
            let r = c.ok(
                "POST",
                &format!("/collections/{COLLECTION}/points"),
                Some(&json!({"ids": ids, "with_vector": true, "with_payload": false})),
            )?;
            let got = r.as_array().map_or(0, Vec::len);
            if got != ids.len() {
                let present: BTreeSet<u64> = r
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["id"].as_u64())
                    .collect();
                let lost: Vec<&u64> = ids
                    .iter()
                    .filter(|id| !present.contains(id))
                    .take(10)
                    .collect();
                return Err(format!(
                    "node {node} lost acknowledged points (first: {lost:?}; {} of {})",
                    ids.len() - got,
                    ids.len()
                )
                .into());
            }
            for p in r.as_array().into_iter().flatten() {
                let id = p["id"].as_u64().ok_or("a point without an id")?;
                let v: Vec<f32> = serde_json::from_value(p["vector"].clone())?;
                if v != vector_of(id) {
                    return Err(format!("node {node}: point {id} has another vector").into());
                }
            }
        }
        let info = c.ok("GET", &format!("/collections/{COLLECTION}"), None)?;
        counts.insert(info["points_count"].as_u64().unwrap_or(0));
    }
    if counts.len() != 1 {
        return Err(format!("the nodes hold different numbers of points: {counts:?}").into());
    }
    report.points_checked_per_node = acked.len() as u64;
    // Search: on each node the index agrees with exact search (recall), and exact search
    // gives the same answer on every node.
    for q in 0..20u64 {
        let query = vector_of(1_000_000_007 + q);
        let mut exact_answers = BTreeSet::new();
        for (i, c) in clients.iter().enumerate() {
            let ids = |exact: bool| -> Result<Vec<u64>, BoxError> {
                let r = c.ok(
                    "POST",
                    &format!("/collections/{COLLECTION}/points/search"),
                    Some(&json!({"vector": query, "limit": 10, "exact": exact, "ef": 200})),
                )?;
                Ok(r.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h["id"].as_u64())
                    .collect())
            };
            let exact = ids(true)?;
            let approx = ids(false)?;
            let found = approx.iter().filter(|id| exact.contains(id)).count();
            if found * 10 < exact.len() * 9 {
                return Err(format!(
                    "node {}: search found {found} of the exact top {} for query {q}",
                    i + 1,
                    exact.len()
                )
                .into());
            }
            exact_answers.insert(exact);
        }
        if exact_answers.len() != 1 {
            return Err(
                format!("query {q}: the nodes answer differently: {exact_answers:?}").into(),
            );
        }
    }
    Ok(snapshots)
}
