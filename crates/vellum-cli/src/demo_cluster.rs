//! `vellum demo --cluster`: the demo against three server processes on 127.0.0.1 — a
//! collection created through a follower, the data set uploaded in acknowledged batches,
//! searches checked against exact search on every node, the leader killed with SIGKILL
//! mid-demo, a write acknowledged by the survivors, the killed node restarted and caught up.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::BoxError;
use crate::client::Client;
use crate::demo::{DemoArgs, load_with};
use crate::local_cluster::LocalCluster;
use crate::output::progress;

/// Points uploaded when `--points` is not given (each goes through Raft and is indexed on
/// three nodes sharing this machine's cores).
const DEFAULT_POINTS: usize = 10_000;
const BATCH: usize = 250;

fn ids_of(hits: &Value) -> Vec<u64> {
    hits.as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_u64())
        .collect()
}

pub(crate) fn run_in(args: &DemoArgs, root: &Path, json_out: bool) -> Result<(), BoxError> {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let ds = load_with(args, Some(args.points.unwrap_or(DEFAULT_POINTS)))?;
    if !json_out {
        eprintln!("starting three `vellum serve` processes on 127.0.0.1 ...");
    }
    let (n, dim) = (ds.train.rows(), ds.train.dim);
    rows.push(("data set", format!("{} ({n} x {dim})", ds.name)));

    let t = Instant::now();
    let mut cluster = LocalCluster::start(&root.join("cluster"), 3, None, 5_000)?;
    let leader = cluster.wait_leader(Duration::from_secs(30))?;
    rows.push((
        "cluster",
        format!(
            "3 `vellum serve` processes on {} (leader: node {leader}), up in {:.1} s",
            cluster
                .urls()
                .iter()
                .map(|(_, u)| u.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            t.elapsed().as_secs_f64()
        ),
    ));
    let clients: Vec<Client> = (1..=3)
        .map(|id| cluster.client(id, Duration::from_secs(60)))
        .collect::<Result<_, _>>()?;
    let follower = (1..=3u64).find(|id| *id != leader).unwrap_or(1);
    clients[follower as usize - 1].ok(
        "PUT",
        "/collections/demo",
        Some(&json!({"vectors": {"size": dim, "distance": "Euclid"}})),
    )?;
    rows.push((
        "create",
        format!("through node {follower} (a follower: forwarded to the leader)"),
    ));

    // Upload in acknowledged batches, spread over the nodes.
    let bar = (!json_out).then(|| progress(n as u64, "uploading"));
    let t = Instant::now();
    for (b, start) in (0..n).step_by(BATCH).enumerate() {
        let end = (start + BATCH).min(n);
        let points: Vec<Value> = (start..end)
            .map(|i| json!({"id": i, "vector": ds.train.row(i), "payload": {"row": i}}))
            .collect();
        clients[b % 3].ok(
            "PUT",
            "/collections/demo/points",
            Some(&json!({ "points": points })),
        )?;
        if let Some(bar) = &bar {
            bar.set_position(end as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = t.elapsed().as_secs_f64();
    rows.push((
        "upload",
        format!(
            "{n} points in {secs:.1} s ({:.0} points/s; each batch of {BATCH} acknowledged once a majority logged it and the leader applied it)",
            n as f64 / secs
        ),
    ));

    // Search on every node (linearizable: each sees every acknowledged batch), against
    // exact search through the same API.
    let q = ds.queries.rows().min(100);
    let (mut found, mut total) = (0usize, 0usize);
    let t = Instant::now();
    for i in 0..q {
        let query = ds.queries.row(i);
        let truth = ids_of(&clients[0].ok(
            "POST",
            "/collections/demo/points/search?consistency=linearizable",
            Some(&json!({"vector": query, "limit": 10, "exact": true})),
        )?);
        for c in &clients {
            let got = ids_of(&c.ok(
                "POST",
                "/collections/demo/points/search?consistency=linearizable",
                Some(&json!({"vector": query, "limit": 10, "ef": 128})),
            )?);
            found += got.iter().filter(|id| truth.contains(id)).count();
            total += truth.len();
        }
    }
    let recall = found as f64 / total.max(1) as f64;
    rows.push((
        "search",
        format!(
            "{q} queries on each node: recall@10 {recall:.3} against exact search ({:.1} s)",
            t.elapsed().as_secs_f64()
        ),
    ));

    // The leader dies mid-demo.
    let leader = cluster.wait_leader(Duration::from_secs(10))?;
    cluster.kill(leader)?;
    let t = Instant::now();
    let others: Vec<usize> = (0..3).filter(|i| *i as u64 + 1 != leader).collect();
    let extra =
        json!({"points": [{"id": n, "vector": ds.train.row(0), "payload": {"after": "failover"}}]});
    let mut tries = 0;
    loop {
        let c = &clients[others[tries % others.len()]];
        tries += 1;
        if c.call("PUT", "/collections/demo/points", Some(&extra))
            .is_ok_and(|a| a.status == 200)
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err("no write acknowledged within 30 s of the leader's death".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rows.push((
        "kill -9",
        format!(
            "leader node {leader} killed; the next write was acknowledged by the survivors after {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        ),
    ));
    let t = Instant::now();
    cluster.spawn(leader)?;
    let want = json!(n + 1);
    loop {
        let info = clients[leader as usize - 1].call("GET", "/collections/demo", None);
        if info.is_ok_and(|a| a.body["result"]["points_count"] == want) {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            return Err(format!("node {leader} did not catch up within 120 s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    rows.push((
        "restart",
        format!(
            "node {leader} restarted and caught up ({} points) in {:.1} s",
            n + 1,
            t.elapsed().as_secs_f64()
        ),
    ));
    let counts: Vec<Value> = clients
        .iter()
        .map(|c| {
            c.ok("GET", "/collections/demo", None)
                .map(|r| r["points_count"].clone())
        })
        .collect::<Result<_, _>>()?;
    if counts.iter().any(|c| *c != want) {
        return Err(format!("the nodes disagree: {counts:?}").into());
    }
    rows.push(("agreement", format!("every node holds {} points", n + 1)));
    cluster.terminate_all()?;
    rows.push(("stop", "SIGTERM: every node checkpointed and exited".into()));

    if json_out {
        let obj: serde_json::Map<String, Value> = rows
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        println!("{}", Value::Object(obj));
    } else {
        println!("\nVellum cluster demo");
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &rows {
            println!("  {k:<w$}  {v}");
        }
    }
    Ok(())
}
