//! The API description is true: every example in it is replayed, in order, against a live
//! single node (and the cluster ones against a one-member cluster), and docs/API.md is what
//! the description generates.

use std::collections::BTreeSet;

use serde_json::Value;
use vellum_server::NodeConfig;
use vellum_server::api_doc::{Mode, endpoints, markdown, openapi};

/// Values that depend on the run (distances, LSNs, times, sizes, who leads).
const LOOSE: &[&str] = &[
    "score",
    "last_lsn",
    "created_unix_ms",
    "size",
    "bytes",
    "lsn_start",
    "lsn_end",
    "term",
    "last_log_index",
    "applied_index",
    "leader",
    "nodes",
];

/// `got` has the example's shape: the same keys, array lengths and values, except values
/// under [`LOOSE`] keys and strings the example elides with `…`.
fn same_shape(example: &Value, got: &Value, key: &str, at: &str) -> Result<(), String> {
    match (example, got) {
        _ if LOOSE.contains(&key) => Ok(()),
        (Value::Object(e), Value::Object(g)) => {
            let ek: BTreeSet<&String> = e.keys().collect();
            let gk: BTreeSet<&String> = g.keys().collect();
            if ek != gk {
                return Err(format!("{at}: keys {ek:?} documented, {gk:?} answered"));
            }
            for (k, v) in e {
                same_shape(v, &g[k], k, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(g)) => {
            if e.len() != g.len() {
                return Err(format!(
                    "{at}: {} items documented, {} answered",
                    e.len(),
                    g.len()
                ));
            }
            for (i, (a, b)) in e.iter().zip(g).enumerate() {
                same_shape(a, b, key, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(a), Value::Number(b)) => {
            if a.as_f64() == b.as_f64() {
                Ok(())
            } else {
                Err(format!("{at}: {a} documented, {b} answered"))
            }
        }
        (Value::String(a), Value::String(_)) if a.contains('…') => Ok(()),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{at}: {a} documented, {b} answered")),
    }
}

fn replay(mode: Mode) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = match mode {
        Mode::Cluster => NodeConfig {
            node_id: Some(1),
            peers: vec![(1, addr.clone())],
            ..NodeConfig::single(dir.path().join("n"))
        },
        _ => NodeConfig::single(dir.path().join("n")),
    };
    let state = rt.block_on(vellum_server::open(config)).unwrap();
    rt.spawn(vellum_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let http = reqwest::blocking::Client::new();
    let base = format!("http://{addr}");
    // A one-member cluster elects itself.
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let mut snapshot_id = String::new();
    let mut archive = Vec::new();
    let mut replayed = 0;
    for ep in endpoints() {
        let skip = match (ep.mode, mode) {
            (Mode::Single, Mode::Cluster) | (Mode::Cluster, Mode::Any) => true,
            // Adding a node 4 needs a node 4: cluster membership changes are proven by
            // tests/cluster_http.rs and the process torture.
            (Mode::Cluster, Mode::Cluster) => ep.path.starts_with("/cluster/nodes"),
            _ => false,
        };
        if skip {
            continue;
        }
        let path = ep.example_path.replace("SNAPSHOT_ID", &snapshot_id);
        let mut req = http.request(ep.method.parse().unwrap(), format!("{base}{path}"));
        if let Some(body) = &ep.request {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        } else if ep.path.ends_with("/upload") {
            req = req.body(archive.clone());
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().unwrap().to_vec();
        assert_eq!(
            status,
            ep.status,
            "{} {path}: {}",
            ep.method,
            String::from_utf8_lossy(&bytes)
        );
        if ep.path == "/collections/{name}/snapshots/{id}" && ep.method == "GET" {
            archive = bytes;
            assert!(archive.len() > 100, "an archive was downloaded");
        } else if !ep.response.is_null() {
            let got: Value = serde_json::from_slice(&bytes).unwrap();
            if ep.method == "POST" && ep.path == "/collections/{name}/snapshots" {
                snapshot_id = got["result"]["id"].as_str().unwrap().to_owned();
            }
            if let Err(e) = same_shape(&ep.response, &got, "", "") {
                panic!("{} {path}: {e}\nanswered: {got}", ep.method);
            }
        }
        replayed += 1;
    }
    replayed
}

#[test]
fn every_documented_example_is_what_a_single_node_answers() {
    let n = replay(Mode::Any);
    println!("replayed {n} documented examples on a single node");
    assert!(n >= 18);
}

#[test]
fn every_documented_example_is_what_a_cluster_member_answers() {
    let n = replay(Mode::Cluster);
    println!("replayed {n} documented examples on a cluster member");
    assert!(n >= 17);
}

#[test]
fn docs_api_md_is_what_the_description_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md");
    let generated = markdown();
    if std::env::var_os("VELLUM_UPDATE_API_DOCS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/API.md is stale: VELLUM_UPDATE_API_DOCS=1 cargo test -p vellum-server --test api_doc"
    );
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/collections/{name}/points/search"]["post"].is_object());
}
