//! `vellum backup` against a local-file target: push, list (JSON), restore as a new
//! collection with the same points, an incremental push and the staged restore of its
//! chain, retain, delete (refused for a parent); an unknown id is a clear error.

use std::process::Command;

fn vellum(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_backup_pushed_to_a_file_target_restores_as_a_new_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let to = format!("file://{}", dir.path().join("bucket").display());
    {
        let d = vellum::Database::open(db, vellum::DatabaseOptions::default()).unwrap();
        let c = d
            .create_collection("docs", vellum::CollectionConfig::new(4, vellum::Metric::L2))
            .unwrap();
        c.upsert_batch((0..500u64).map(|i| vellum::Point::new(i, vec![i as f32, 1.0, 2.0, 3.0])))
            .unwrap();
    }
    let (ok, out, err) = vellum(&["--json", "backup", "push", db, "docs", "--to", &to]);
    assert!(ok, "{out}{err}");
    let pushed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let id = pushed["id"].as_str().unwrap().to_owned();
    let (ok, out, _) = vellum(&["--json", "backup", "list", "--to", &to]);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    let (ok, out, err) = vellum(&["backup", "restore", db, &id, "copy", "--from", &to]);
    assert!(ok, "{out}{err}");
    let d = vellum::Database::open(db, vellum::DatabaseOptions::default()).unwrap();
    assert_eq!(d.collection("copy").unwrap().len(), 500);
    let p = d.collection("copy").unwrap().get(499).unwrap().unwrap();
    assert_eq!(p.vector, vec![499.0, 1.0, 2.0, 3.0]);
    drop(d);
    let (ok, _, err) = vellum(&[
        "backup",
        "restore",
        db,
        "00000000000000000000000000000000",
        "x",
        "--from",
        &to,
    ]);
    assert!(!ok && err.contains("no backup"), "{err}");
    // An incremental push after 100 more points; its chain restores, staged too.
    {
        let d = vellum::Database::open(db, vellum::DatabaseOptions::default()).unwrap();
        d.collection("docs")
            .unwrap()
            .upsert_batch(
                (500..600u64).map(|i| vellum::Point::new(i, vec![i as f32, 1.0, 2.0, 3.0])),
            )
            .unwrap();
    }
    let (ok, out, err) = vellum(&[
        "--json",
        "backup",
        "push",
        db,
        "docs",
        "--incremental",
        "--to",
        &to,
    ]);
    assert!(ok, "{out}{err}");
    let inc: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(inc["kind"], "incremental");
    assert_eq!(inc["parent"], id.as_str());
    let inc_id = inc["id"].as_str().unwrap().to_owned();
    let (ok, out, err) = vellum(&[
        "--json", "backup", "restore", db, &inc_id, "chain", "--staged", "--from", &to,
    ]);
    assert!(ok, "{out}{err}");
    let restored: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(restored["archives"], 2);
    let d = vellum::Database::open(db, vellum::DatabaseOptions::default()).unwrap();
    assert_eq!(d.collection("chain").unwrap().len(), 600);
    drop(d);
    // The parent cannot go while its child is kept; retention keeps both.
    let (ok, _, err) = vellum(&["backup", "delete", &id, "--to", &to]);
    assert!(!ok && err.contains("parent"), "{err}");
    let (ok, out, err) = vellum(&[
        "--json", "backup", "retain", "docs", "--keep", "1", "--to", &to,
    ]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), r#"{"deleted":[]}"#);
    for gone in [&inc_id, &id] {
        let (ok, out, err) = vellum(&["backup", "delete", gone, "--to", &to]);
        assert!(ok, "{out}{err}");
    }
    let (_, out, _) = vellum(&["--json", "backup", "list", "--to", &to]);
    assert_eq!(out.trim(), "[]");
}
