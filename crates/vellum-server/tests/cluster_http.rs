//! Three nodes in one process, talking Raft over HTTP on 127.0.0.1: writes through any node
//! (forwarded to the leader), linearizable reads on a follower, a follower that was down
//! while the leader purged its log catches up by a snapshot streamed over HTTP, and the
//! leader's loss is survived.

use std::time::Duration;

use serde_json::{Value, json};
use vellum_server::{AppState, NodeConfig};

struct Running {
    state: AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(dir: &std::path::Path, id: u64, peers: &[(u64, String)]) -> Running {
    let addr = peers.iter().find(|(p, _)| *p == id).unwrap().1.clone();
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let config = NodeConfig {
        node_id: Some(id),
        peers: peers.to_vec(),
        snapshot_every_entries: 40,
        ..NodeConfig::single(dir.join(format!("n{id}")))
    };
    let state = vellum_server::open(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(vellum_server::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Running { state, stop, task }
}

/// Stops a node: its listener closes and Raft stops, without the checkpoint a graceful
/// shutdown ends with (the process-level test kills with SIGKILL instead).
async fn stop(node: Running) {
    let _ = node.stop.send(());
    if let vellum_server::Backend::Cluster(n) = &node.state.backend {
        n.raft.shutdown().await.unwrap();
    }
    let _ = node.task.await;
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    match req.timeout(Duration::from_secs(30)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_leader(http: &reqwest::Client, addr: &str) -> u64 {
    for _ in 0..300 {
        let (status, body) = call(http, "GET", &format!("http://{addr}/readyz"), None).await;
        if status == 200 {
            return body["result"]["leader"].as_u64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader");
}

fn batch(first: u64, n: u64) -> Value {
    let points: Vec<Value> = (first..first + n)
        .map(|id| json!({"id": id, "vector": [id as f32, 1.0, 0.5, -1.0], "payload": {"i": id}}))
        .collect();
    json!({ "points": points })
}

#[test]
fn a_cluster_over_http_forwards_writes_serves_linearizable_reads_and_catches_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut peers = Vec::new();
        for id in 1..=3u64 {
            // A free port (released again; nodes bind it themselves).
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            peers.push((id, l.local_addr().unwrap().to_string()));
        }
        let url = |id: u64| format!("http://{}", peers[id as usize - 1].1);
        let mut nodes = Vec::new();
        for id in 1..=3 {
            nodes.push(Some(start(dir.path(), id, &peers).await));
        }
        let http = reqwest::Client::new();
        let leader = wait_leader(&http, &peers[0].1).await;
        let follower = if leader == 1 { 2 } else { 1 };

        // Writes through a follower are forwarded to the leader.
        let create = json!({"vectors": {"size": 4, "distance": "Euclid"}});
        let (s, b) = call(
            &http,
            "PUT",
            &format!("{}/collections/c", url(follower)),
            Some(create),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        for i in 0..20u64 {
            let node = 1 + i % 3;
            let (s, b) = call(
                &http,
                "PUT",
                &format!("{}/collections/c/points", url(node)),
                Some(batch(i * 10, 10)),
            )
            .await;
            assert_eq!(s, 200, "{b}");
        }
        // A linearizable read on any node sees every acknowledged write.
        for id in 1..=3 {
            let (s, b) = call(
                &http,
                "GET",
                &format!("{}/collections/c?consistency=linearizable", url(id)),
                None,
            )
            .await;
            assert_eq!(
                (s, &b["result"]["points_count"]),
                (200, &json!(200)),
                "node {id}: {b}"
            );
        }
        // A wrong dimension is refused by the leader's apply, the same way on every node: a
        // 400 through a follower too.
        let (s, _) = call(
            &http,
            "PUT",
            &format!("{}/collections/c/points", url(follower)),
            Some(json!({"points": [{"id": 1, "vector": [1.0]}]})),
        )
        .await;
        assert_eq!(s, 400);

        // A follower is down while the leader writes past several snapshots and purges its
        // log: on restart it gets a snapshot over HTTP.
        let down = (1..=3).find(|id| *id != leader).unwrap();
        stop(nodes[down as usize - 1].take().unwrap()).await;
        let survivor = (1..=3).find(|id| *id != down).unwrap();
        for i in 20..120u64 {
            let (s, b) = call(
                &http,
                "PUT",
                &format!("{}/collections/c/points", url(survivor)),
                Some(batch(i * 10, 10)),
            )
            .await;
            assert_eq!(s, 200, "{b}");
        }
        let (_, st) = call(&http, "GET", &format!("{}/cluster", url(leader)), None).await;
        let purged = st["result"]["purged_index"].as_u64().unwrap_or(0);
        assert!(purged > 0, "the leader purged its log: {st}");
        nodes[down as usize - 1] = Some(start(dir.path(), down, &peers).await);
        let mut caught_up = false;
        for _ in 0..600 {
            let (s, b) = call(&http, "GET", &format!("{}/collections/c", url(down)), None).await;
            if s == 200 && b["result"]["points_count"] == json!(1200) {
                caught_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(caught_up, "node {down} caught up");
        let (_, st) = call(&http, "GET", &format!("{}/cluster", url(down)), None).await;
        assert!(
            st["result"]["snapshot_index"].as_u64().unwrap_or(0) > 0,
            "{st}"
        );
        let (s, p) = call(
            &http,
            "GET",
            &format!("{}/collections/c/points/1199", url(down)),
            None,
        )
        .await;
        assert_eq!(
            (s, &p["result"]["payload"]["i"]),
            (200, &json!(1199)),
            "{p}"
        );

        // The leader goes: a new one is elected and writes go on through the others.
        stop(nodes[leader as usize - 1].take().unwrap()).await;
        let other = (1..=3).find(|id| *id != leader).unwrap();
        let (s, b) = call(
            &http,
            "PUT",
            &format!("{}/collections/c/points", url(other)),
            Some(batch(5000, 10)),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = call(
            &http,
            "GET",
            &format!("{}/collections/c?consistency=linearizable", url(other)),
            None,
        )
        .await;
        assert_eq!(
            (s, &b["result"]["points_count"]),
            (200, &json!(1210)),
            "{b}"
        );
        let (_, m) = (
            0,
            reqwest::get(format!("{}/metrics", url(other)))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        assert!(m.contains("vellum_raft_term"), "{m}");
        for n in nodes.into_iter().flatten() {
            stop(n).await;
        }
    });
}
