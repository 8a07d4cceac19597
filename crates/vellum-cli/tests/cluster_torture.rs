//! Kill -9 across processes: `vellum cluster torture` runs three `vellum serve` processes
//! on 127.0.0.1, writes acknowledged batches through any of them while nodes are killed
//! (often the leader), restarted and paused, then checks every acknowledged point on every
//! node. CI runs a few events; `VELLUM_CLUSTER_KILLS=1000` runs a thousand.

use std::process::Command;

#[test]
fn every_acknowledged_batch_survives_kill_9_of_cluster_nodes_on_every_node() {
    let kills: u64 = std::env::var("VELLUM_CLUSTER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("VELLUM_CLUSTER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["--json", "cluster", "torture", "--kills"])
        .arg(kills.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    println!("cluster torture: {report}");
    assert_eq!(
        report["kills"].as_u64().unwrap() + report["pauses"].as_u64().unwrap(),
        kills
    );
    assert!(report["batches_acked"].as_u64().unwrap() > 0);
    assert!(report["points_checked_per_node"].as_u64().unwrap() > 0);
}
