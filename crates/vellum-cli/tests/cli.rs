//! The `vellum` binary end to end: every tool, JSON output, exit codes, and errors on bad
//! input (never a panic).

use std::path::Path;
use std::process::{Command, Output};

fn vellum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(args)
        .output()
        .expect("runs")
}

fn ok(args: &[&str]) -> String {
    let out = vellum(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write_fvecs(path: &Path, rows: usize, dim: usize) {
    let mut bytes = Vec::new();
    for r in 0..rows {
        bytes.extend_from_slice(&(dim as i32).to_le_bytes());
        for d in 0..dim {
            bytes.extend_from_slice(&((r * 7 + d) as f32 / 10.0).to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_tools_create_import_search_inspect_dump_checkpoint_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let file = dir.path().join("v.fvecs");
    write_fvecs(&file, 50, 4);
    ok(&["create", db, "c", "--dim", "4", "--metric", "l2"]);
    let out = ok(&["import", db, "c", file.to_str().unwrap(), "--batch", "16"]);
    assert!(out.contains("imported 50 vectors"), "{out}");
    let out = ok(&[
        "--json",
        "search",
        db,
        "c",
        "--query",
        "0,0.1,0.2,0.3",
        "-k",
        "3",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["id"], 0);
    let out = ok(&[
        "search",
        db,
        "c",
        "--query",
        "0,0.1,0.2,0.3",
        "-k",
        "3",
        "--exact",
    ]);
    assert!(out.contains("(3 hits"), "{out}");
    // The import ended with a checkpoint (generation 1); this one is the second.
    let out = ok(&["checkpoint", db]);
    assert!(out.contains("c: generation 2"), "{out}");
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["points"], 50);
    assert_eq!(v["collections"][0]["generation"], 2);
    let out = ok(&["inspect", db]);
    assert!(out.contains("50 points"), "{out}");
    let out = ok(&["wal", "dump", db, "c", "--limit", "5"]);
    assert!(out.contains("upsert"), "{out}");
    let out = ok(&["verify", db]);
    assert!(out.contains("c: ok"), "{out}");
    // Nothing deleted: nothing to move, the segments stay (moves are tested in the facade).
    let out = ok(&["--json", "compact", db, "c"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["moved"], 0, "{out}");
    assert_eq!(v["segments_before"], v["segments_after"], "{out}");
    let out = ok(&["compact", db, "c"]);
    assert!(out.contains("c: 0 vector(s) moved"), "{out}");
}

#[test]
fn verify_exits_non_zero_when_a_vector_segment_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let file = dir.path().join("v.fvecs");
    write_fvecs(&file, 20, 4);
    ok(&["create", db.to_str().unwrap(), "c", "--dim", "4", "--flat"]);
    ok(&["import", db.to_str().unwrap(), "c", file.to_str().unwrap()]);
    ok(&["checkpoint", db.to_str().unwrap()]);
    // Find the vector segment and flip a byte inside the first slot.
    let coll = std::fs::read_dir(db.join("collections"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let seg = std::fs::read_dir(coll.join("vectors"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&seg).unwrap();
    assert!(
        bytes.len() > 4096 + 8,
        "the segment to damage exists: {}",
        seg.display()
    );
    bytes[4096 + 4] ^= 0xFF;
    std::fs::write(&seg, bytes).unwrap();
    let out = vellum(&["verify", db.to_str().unwrap()]);
    assert!(!out.status.success(), "verify must fail on damage");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DAMAGED"), "{text}");
}

#[test]
fn bad_input_gives_an_error_and_a_non_zero_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_s = db.to_str().unwrap();
    for args in [
        vec!["search", "/definitely/not/a/db", "c", "--query", "1,2"],
        vec!["inspect", dir.path().to_str().unwrap()],
        vec!["no-such-command"],
    ] {
        let out = vellum(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
    ok(&["create", db_s, "c", "--dim", "3"]);
    for args in [
        vec!["search", db_s, "c", "--query", "1,2"],
        vec!["search", db_s, "c", "--query", "1,x,3"],
        vec!["search", db_s, "nope", "--query", "1,2,3"],
        vec!["create", db_s, "c", "--dim", "3"],
        vec!["create", db_s, "../evil", "--dim", "3"],
    ] {
        let out = vellum(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let garbage = dir.path().join("g.fvecs");
    std::fs::write(&garbage, [1, 2, 3]).unwrap();
    let out = vellum(&["import", db_s, "c", garbage.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("g.fvecs"));
}

#[test]
fn the_demo_runs_on_a_small_generated_set() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let out = ok(&[
        "demo",
        work.to_str().unwrap(),
        "--dataset",
        "synthetic",
        "--points",
        "2000",
        "--queries",
        "20",
        "--batch",
        "500",
    ]);
    assert!(out.contains("Vellum demo summary"), "{out}");
    assert!(out.contains("same answers"), "{out}");
    // Honest numbers: repeated runs, the machine's load, where the data is, no "0 MB/s".
    assert!(out.contains("(min / median / max of 3 runs"), "{out}");
    assert!(out.contains("load average"), "{out}");
    assert!(
        out.contains(&format!("data directory  {}", work.display()))
            || out.contains(work.to_str().unwrap()),
        "{out}"
    );
    assert!(!out.contains(" 0 MB/s"), "{out}");
    // Without a directory the temporary one is removed, unless --keep.
    let kept = ok(&[
        "demo",
        "--dataset",
        "synthetic",
        "--points",
        "300",
        "--queries",
        "5",
        "--repeats",
        "1",
        "--keep",
    ]);
    let line = kept
        .lines()
        .find(|l| l.trim_start().starts_with("data directory"))
        .unwrap_or_else(|| panic!("{kept}"));
    let path = line.split_whitespace().nth(2).unwrap();
    assert!(std::path::Path::new(path).join("db").exists(), "{line}");
    std::fs::remove_dir_all(path).unwrap();
    // A non-empty directory is refused.
    let out = vellum(&[
        "demo",
        work.to_str().unwrap(),
        "--dataset",
        "synthetic",
        "--points",
        "10",
    ]);
    assert!(!out.status.success());
}

#[test]
fn snapshot_commands_export_import_create_list_restore_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let file = dir.path().join("v.fvecs");
    write_fvecs(&file, 80, 4);
    ok(&["create", db, "c", "--dim", "4"]);
    ok(&["import", db, "c", file.to_str().unwrap()]);
    let archive = dir.path().join("c.vsnap");
    let out = ok(&[
        "snapshot",
        "export",
        db,
        "c",
        archive.to_str().unwrap(),
        "--zstd",
    ]);
    assert!(out.contains("BLAKE3"), "{out}");
    let other = dir.path().join("other");
    // A budget below the archive's size refuses it by name and creates no collection.
    let out = vellum(&[
        "snapshot",
        "import",
        other.to_str().unwrap(),
        "--name",
        "copy",
        archive.to_str().unwrap(),
        "--max-import-bytes",
        "1000",
    ]);
    assert!(!out.status.success(), "an import over budget succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limit of 1000"), "{err}");
    let out = ok(&[
        "snapshot",
        "import",
        other.to_str().unwrap(),
        "--name",
        "copy",
        archive.to_str().unwrap(),
    ]);
    assert!(out.contains("80 points"), "{out}");
    let out = ok(&["--json", "snapshot", "create", db, "c"]);
    let full: serde_json::Value = serde_json::from_str(&out).unwrap();
    ok(&["snapshot", "create", db, "c", "--incremental"]);
    let out = ok(&["--json", "snapshot", "list", db, "c"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 2);
    let newest = list["snapshots"][0]["id"].as_str().unwrap().to_owned();
    let out = ok(&["snapshot", "restore", db, "c", &newest, "--name", "back"]);
    assert!(out.contains("80 points"), "{out}");
    // The full snapshot is the incremental's parent: deleting it is refused.
    let full_id = full["id"].as_str().unwrap();
    let refused = vellum(&["snapshot", "delete", db, "c", full_id]);
    assert!(!refused.status.success());
    ok(&["snapshot", "delete", db, "c", &newest]);
    ok(&["snapshot", "delete", db, "c", full_id]);
    let bad = vellum(&["snapshot", "restore", db, "c", "not-an-id", "--name", "x"]);
    assert!(!bad.status.success());
}

#[test]
fn a_database_open_in_another_process_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let db_s = db_path.to_str().unwrap();
    ok(&["create", db_s, "c", "--dim", "3"]);
    let held = vellum::Database::open(&db_path, vellum::DatabaseOptions::default()).unwrap();
    let out = vellum(&["checkpoint", db_s]);
    assert!(
        !out.status.success(),
        "a checkpoint of a locked database succeeded"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use") && err.contains(db_s), "{err}");
    drop(held);
    ok(&["checkpoint", db_s]);
}

#[test]
fn the_read_tools_run_beside_a_process_that_holds_the_database_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let db_s = db_path.to_str().unwrap();
    ok(&["create", db_s, "c", "--dim", "3", "--metric", "l2"]);
    let held = vellum::Database::open(&db_path, vellum::DatabaseOptions::default()).unwrap();
    let c = held.collection("c").unwrap();
    c.upsert_batch((0..50u64).map(|i| vellum::Point::new(i, vec![i as f32, 0.0, 1.0])))
        .unwrap();
    c.checkpoint().unwrap();
    c.upsert(vellum::Point::new(77, vec![77.0, 0.0, 1.0]))
        .unwrap();
    let snapshot = |dir: &Path| {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let before = snapshot(&db_path);
    let out = ok(&["--json", "inspect", db_s]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["points"], 51, "{out}");
    let out = ok(&["verify", db_s]);
    assert!(out.contains("c: ok"), "{out}");
    let out = ok(&[
        "--json", "search", db_s, "c", "--query", "77,0,1", "-k", "1",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["id"], 77, "{out}");
    let out = ok(&["wal", "dump", db_s, "c"]);
    assert!(out.contains("upsert"), "{out}");
    assert!(snapshot(&db_path) == before, "a read tool changed a file");
    // The holder goes on writing.
    c.upsert(vellum::Point::new(78, vec![78.0, 0.0, 1.0]))
        .unwrap();
    c.checkpoint().unwrap();
}

#[test]
fn removing_or_replacing_the_lock_file_does_not_let_a_second_process_write() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let db_s = db_path.to_str().unwrap();
    let file = dir.path().join("v.fvecs");
    write_fvecs(&file, 5, 3);
    ok(&["create", db_s, "c", "--dim", "3", "--flat"]);
    let held = vellum::Database::open(&db_path, vellum::DatabaseOptions::default()).unwrap();
    let c = held.collection("c").unwrap();
    c.upsert(vellum::Point::new(1, vec![1.0, 2.0, 3.0]))
        .unwrap();
    let lock = db_path.join("LOCK");
    assert!(lock.exists(), "the lock file to remove exists");
    std::fs::remove_file(&lock).unwrap();
    for args in [
        vec![
            "import",
            db_s,
            "c",
            file.to_str().unwrap(),
            "--first-id",
            "100",
        ],
        vec!["checkpoint", db_s],
    ] {
        let out = vellum(&args);
        assert!(!out.status.success(), "{args:?} ran beside the writer");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use"), "{args:?}: {err}");
    }
    // A new file in its place changes nothing either.
    std::fs::write(&lock, b"").unwrap();
    let out = vellum(&["import", db_s, "c", file.to_str().unwrap()]);
    assert!(!out.status.success(), "import ran beside the writer");
    // The first writer goes on and checkpoints; nothing it acknowledged is lost.
    c.upsert(vellum::Point::new(2, vec![1.0, 2.0, 3.0]))
        .unwrap();
    c.checkpoint().unwrap();
    drop(c);
    drop(held);
    let out = ok(&["--json", "inspect", db_s]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["points"], 2, "{out}");
    let out = ok(&["verify", db_s]);
    assert!(out.contains("c: ok"), "{out}");
}

#[test]
fn an_import_whose_ids_would_pass_the_largest_id_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let one = dir.path().join("one.fvecs");
    write_fvecs(&one, 1, 4);
    let two = dir.path().join("two.fvecs");
    write_fvecs(&two, 2, 4);
    ok(&["create", db, "c", "--dim", "4", "--metric", "l2", "--flat"]);
    ok(&["import", db, "c", one.to_str().unwrap()]);
    let max = u64::MAX.to_string();
    // Two rows from the largest id: the second id would wrap around to 0.
    let out = vellum(&["import", db, "c", two.to_str().unwrap(), "--first-id", &max]);
    assert!(!out.status.success(), "the wrapping import succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--first-id"), "{err}");
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["points"], 1, "{out}");
    let out = ok(&["wal", "dump", db, "c"]);
    assert_eq!(
        out.matches("upsert").count(),
        1,
        "a record was logged: {out}"
    );
    // One row at the largest id is fine.
    ok(&["import", db, "c", one.to_str().unwrap(), "--first-id", &max]);
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["points"], 2, "{out}");
}

#[test]
fn the_read_tools_open_a_database_made_with_non_default_options() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let db_s = db_path.to_str().unwrap();
    {
        let options = vellum::DatabaseOptions::default()
            .with_slots_per_segment(256)
            .with_background_checkpoints(false);
        let db = vellum::Database::open(&db_path, options).unwrap();
        let c = db
            .create_collection("c", vellum::CollectionConfig::new(3, vellum::Metric::L2))
            .unwrap();
        for i in 0..300u64 {
            c.upsert(vellum::Point::new(i, vec![i as f32, 1.0, 2.0]))
                .unwrap();
        }
        c.checkpoint().unwrap();
        c.upsert(vellum::Point::new(1000, vec![0.0, 1.0, 2.0]))
            .unwrap();
    }
    let out = ok(&["verify", db_s]);
    assert!(out.contains("c: ok"), "{out}");
    let out = ok(&["inspect", db_s]);
    assert!(out.contains("301 points"), "{out}");
    let out = ok(&["--json", "search", db_s, "c", "--query", "5,1,2", "-k", "1"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["id"], 5, "{out}");
    let out = ok(&["checkpoint", db_s]);
    assert!(out.contains("c: generation 2"), "{out}");
    ok(&["verify", db_s]);
}

#[test]
fn a_database_that_lost_its_catalog_is_refused_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let db = db_path.to_str().unwrap();
    let file = dir.path().join("v.fvecs");
    write_fvecs(&file, 20, 4);
    ok(&["create", db, "c", "--dim", "4", "--metric", "l2"]);
    ok(&["import", db, "c", file.to_str().unwrap()]);
    std::fs::remove_file(db_path.join("VELLUM")).unwrap();
    for args in [
        vec!["inspect", db],
        vec!["import", db, "c", file.to_str().unwrap()],
    ] {
        let out = vellum(&args);
        assert!(!out.status.success(), "{args:?} ran without a catalog");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("VELLUM") && err.contains("repair-catalog"),
            "{args:?}: {err}"
        );
    }
    assert!(!db_path.join("VELLUM").exists(), "a catalog was written");
    let out = ok(&["repair-catalog", db]);
    assert!(
        out.contains("1 collection(s)") && out.contains("\"c\""),
        "{out}"
    );
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["points"], 20, "{out}");
    ok(&["verify", db]);
}

#[test]
fn search_takes_a_json_filter_answered_with_or_without_indexes_and_names_where_a_bad_one_is_wrong()
{
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let database = vellum::Database::open(&db, vellum::DatabaseOptions::default()).unwrap();
        let c = database
            .create_collection(
                "c",
                vellum::CollectionConfig::new(2, vellum::Metric::L2).flat(),
            )
            .unwrap();
        c.upsert_batch((0..40u64).map(|id| {
            let lang = if id % 4 == 0 { "de" } else { "en" };
            vellum::Point::new(id, vec![id as f32, 0.0]).with_payload(
                format!(r#"{{"lang": "{lang}", "year": {}}}"#, 2000 + id).into_bytes(),
            )
        }))
        .unwrap();
    }
    let db = db.to_str().unwrap();
    let filter =
        r#"{"must": [{"key": "lang", "match": "de"}, {"key": "year", "range": {"gte": 2010}}]}"#;
    let out = ok(&[
        "--json", "search", db, "c", "--query", "0,0", "-k", "3", "--filter", filter,
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<u64> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [12, 16, 20], "{out}");
    // With indexes on both fields the same search answers the same, and inspect shows them.
    ok(&["index", "create", db, "c", "lang", "--kind", "keyword"]);
    let out = ok(&[
        "--json", "index", "create", db, "c", "year", "--kind", "integer",
    ]);
    assert!(out.contains(r#""created":true"#), "{out}");
    let out = ok(&[
        "--json", "search", db, "c", "--query", "0,0", "-k", "3", "--filter", filter,
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let indexed: Vec<u64> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(indexed, [12, 16, 20], "{out}");
    // Hits with their payloads: JSON documents as JSON.
    let out = ok(&[
        "--json",
        "search",
        db,
        "c",
        "--query",
        "0,0",
        "-k",
        "3",
        "--filter",
        filter,
        "--with-payload",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["payload"]["lang"], "de", "{out}");
    assert_eq!(v["hits"][0]["payload"]["year"], 2012, "{out}");
    let out = ok(&[
        "search",
        db,
        "c",
        "--query",
        "0,0",
        "-k",
        "1",
        "--filter",
        filter,
        "--with-payload",
    ]);
    assert!(out.contains(r#""year": 2012"#), "{out}");
    let out = ok(&["index", "list", db, "c"]);
    assert!(
        out.contains("lang\tkeyword\t40 entries") && out.contains("year\tinteger"),
        "{out}"
    );
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["collections"][0]["payload_indexes"][0]["field"], "lang",
        "{out}"
    );
    let dup = vellum(&["index", "create", db, "c", "lang", "--kind", "keyword"]);
    assert!(!dup.status.success());
    ok(&["index", "drop", db, "c", "year"]);
    assert!(!ok(&["index", "list", db, "c"]).contains("year"));
    ok(&["verify", db]);
    let out = vellum(&[
        "search",
        db,
        "c",
        "--query",
        "0,0",
        "--filter",
        r#"{"must": [{"key": "year", "range": {"gte": "x"}}]}"#,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must[0].range.gte"), "{err}");
}

#[test]
fn an_import_adds_after_the_largest_id_and_replaces_only_with_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let five = dir.path().join("five.fvecs");
    write_fvecs(&five, 5, 4);
    let file = five.to_str().unwrap();
    ok(&["create", db, "c", "--dim", "4", "--metric", "l2", "--flat"]);
    let out = ok(&["import", db, "c", file]);
    assert!(
        out.contains("ids 0..5 (5 added, 0 replaced)") && out.contains("checkpointed"),
        "{out}"
    );
    // A second import of the same file adds five more points after id 4.
    let out = ok(&["--json", "import", db, "c", file]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["first_id"].as_u64(), v["added"].as_u64()),
        (Some(5), Some(5)),
        "{out}"
    );
    // Ids that are taken are refused before anything is written ...
    let refused = vellum(&["import", db, "c", file, "--first-id", "8"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--upsert") && err.contains("2 existing"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
    assert_eq!(v["collections"][0]["points"], 10);
    // ... and replaced when asked.
    let out = ok(&[
        "--json",
        "import",
        db,
        "c",
        file,
        "--first-id",
        "8",
        "--upsert",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["added"].as_u64(), v["replaced"].as_u64()),
        (Some(3), Some(2)),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
    assert_eq!(v["collections"][0]["points"], 13);
    // Every import ended with a checkpoint: a reopen replays nothing.
    assert_eq!(v["collections"][0]["ops_since_checkpoint"], 0, "{v}");
}

#[test]
fn delete_drop_completions_help_and_nonsense_arguments_behave_as_users_expect() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let five = dir.path().join("five.fvecs");
    write_fvecs(&five, 5, 4);
    // Help opens with what Vellum is.
    let help = ok(&["--help"]);
    assert!(
        help.starts_with("Vellum: a crash-safe vector store"),
        "{help}"
    );
    ok(&["create", db, "c", "--dim", "4", "--metric", "l2", "--flat"]);
    ok(&["import", db, "c", five.to_str().unwrap()]);
    // Nonsense is refused by the parser (exit 2), before anything is opened.
    for args in [
        vec!["search", db, "c", "--query", "0,0,0,0", "--ef", "0"],
        vec!["search", db, "c", "--query", "0,0,0,0", "-k", "0"],
    ] {
        let out = vellum(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // Delete by ids: those that exist go, the rest are reported.
    let out = ok(&["delete", db, "c", "--ids", "1,3,99"]);
    assert!(
        out.contains("deleted 2 point(s); 1 of the ids given did not exist"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
    assert_eq!(v["collections"][0]["points"], 3);
    // Drop asks for --yes and changes nothing without it.
    let refused = vellum(&["drop", db, "c"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
    assert_eq!(v["collections"].as_array().unwrap().len(), 1);
    ok(&["drop", db, "c", "--yes"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
    assert_eq!(v["collections"].as_array().unwrap().len(), 0);
    // With --json an error is JSON on stdout, with the same exit code, nothing on stderr.
    let out = vellum(&["--json", "search", db, "c", "--query", "0,0,0,0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "UnknownCollection", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    for cause in v["error"]["causes"].as_array().unwrap() {
        assert!(!message.contains(cause.as_str().unwrap()), "{v}");
    }
    // Completion scripts for the usual shells.
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        assert!(
            script.contains("vellum") && script.contains("import"),
            "{shell}"
        );
    }
}

#[test]
fn an_import_takes_payloads_from_json_lines_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let five = dir.path().join("five.fvecs");
    write_fvecs(&five, 5, 4);
    let file = five.to_str().unwrap();
    let lines = |text: &str| {
        let path = dir.path().join(format!("p{}.jsonl", text.len()));
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let good = lines(
        &(0..5)
            .map(|i| format!("{{\"n\": {i}}}\n"))
            .collect::<String>(),
    );
    let short = lines("{\"n\": 0}\n{\"n\": 1}\n");
    let bad = lines("{\"n\": 0}\n{\"n\": 1}\n[3]\n{}\n{}\n");
    ok(&["create", db, "c", "--dim", "4", "--metric", "l2", "--flat"]);
    let out = vellum(&["import", db, "c", file, "--payloads", &short]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 payload line(s) for 5"));
    let out = vellum(&["import", db, "c", file, "--payloads", &bad]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3 is not a JSON object"));
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
    assert_eq!(
        v["collections"][0]["points"], 0,
        "a refused import wrote points"
    );
    ok(&["import", db, "c", file, "--payloads", &good]);
    let out = ok(&[
        "--json",
        "search",
        db,
        "c",
        "--query",
        "0,0,0,0",
        "-k",
        "5",
        "--with-payload",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for hit in v["hits"].as_array().unwrap() {
        assert_eq!(hit["payload"]["n"], hit["id"], "{out}");
    }
}

#[test]
fn search_takes_many_queries_from_a_file_or_standard_input() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let five = dir.path().join("five.fvecs");
    write_fvecs(&five, 5, 4);
    let file = five.to_str().unwrap();
    ok(&["create", db, "c", "--dim", "4", "--metric", "l2", "--flat"]);
    ok(&["import", db, "c", file]);
    // Each row of the file as a query: its own point comes first.
    let out = ok(&["--json", "search", db, "c", "--query-file", file, "-k", "2"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{out}");
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["hits"][0]["id"], i as u64, "{out}");
    }
    // Standard input: one comma-separated vector a line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["search", db, "c", "--query-file", "-", "-k", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"0,0,0,0\n\n1,1,1,1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("query ").count(), 2, "{text}");
    // Both, or neither, is a usage error.
    assert_eq!(
        vellum(&[
            "search",
            db,
            "c",
            "--query",
            "0,0,0,0",
            "--query-file",
            file
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(vellum(&["search", db, "c"]).status.code(), Some(2));
}

/// What `inspect --json` says of collection `name`: nothing replayed at open, nothing
/// waiting to be indexed, the graph loaded from the checkpoint.
fn assert_settled(db: &str, name: &str, after: &str) {
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
    let c = v["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no collection {name}: {v}"));
    assert_eq!(c["index_pending"], 0, "after {after}: {c}");
    assert_eq!(c["replayed_at_open"], 0, "after {after}: {c}");
    assert_eq!(
        c["graph_loaded_from_checkpoint"], true,
        "after {after}: {c}"
    );
}

#[test]
fn long_writes_end_indexed_and_checkpointed_so_no_later_command_rebuilds_anything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let file = dir.path().join("v.fvecs");
    // Enough rows that the background indexer cannot have finished when the import ends.
    write_fvecs(&file, 1500, 8);
    ok(&["create", db, "c", "--dim", "8"]);
    let out = ok(&["import", db, "c", file.to_str().unwrap()]);
    assert!(out.contains("indexed and checkpointed"), "{out}");
    assert_settled(db, "c", "import");
    let archive = dir.path().join("c.vsnap");
    ok(&["snapshot", "export", db, "c", archive.to_str().unwrap()]);
    let other = dir.path().join("other");
    let other = other.to_str().unwrap();
    let out = ok(&[
        "snapshot",
        "import",
        other,
        "--name",
        "copy",
        archive.to_str().unwrap(),
    ]);
    assert!(out.contains("indexed and checkpointed"), "{out}");
    assert_settled(other, "copy", "snapshot import");
    let out = ok(&["--json", "snapshot", "create", db, "c"]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ok(&["snapshot", "restore", db, "c", &id, "--name", "back"]);
    assert!(out.contains("indexed and checkpointed"), "{out}");
    assert_settled(db, "back", "snapshot restore");
    ok(&["delete", db, "c", "--ids", "0,1,2,3,4,5,6,7,8,9"]);
    ok(&["compact", db, "c"]);
    assert_settled(db, "c", "compact");
}

#[test]
fn an_import_takes_ids_from_a_file_checked_whole_and_replaces_only_with_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let five = dir.path().join("five.fvecs");
    write_fvecs(&five, 5, 4);
    let file = five.to_str().unwrap();
    let ids = dir.path().join("ids.txt");
    let ids_arg = ids.to_str().unwrap();
    ok(&["create", db, "c", "--dim", "4", "--flat"]);
    let points = |db: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "inspect", db])).unwrap();
        v["collections"][0]["points"].as_u64().unwrap()
    };
    // Each bad file is refused by line, before anything is written.
    for (text, says) in [
        ("7\n9\n11\n", "3 id(s) for 5"),
        ("7\n9\nx\n13\n15\n", "line 3"),
        ("7\n9\n-1\n13\n15\n", "line 3"),
        ("7\n9\n7\n13\n15\n", "line 3 repeats id 7 of line 1"),
        ("7\n9\n11\n13\n18446744073709551616\n", "line 5"),
    ] {
        std::fs::write(&ids, text).unwrap();
        let out = vellum(&["import", db, "c", file, "--ids", ids_arg]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{text:?}: {err}"
        );
        assert_eq!(points(db), 0, "{text:?} wrote points");
    }
    std::fs::write(&ids, "1000\n7\n42\n3\n99\n").unwrap();
    let out = ok(&["--json", "import", db, "c", file, "--ids", ids_arg]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["added"].as_u64(), v["replaced"].as_u64()),
        (Some(5), Some(0)),
        "{out}"
    );
    // Row 2 (0-based) got id 42: searching for its vector finds it.
    let row2 = "1.4,1.5,1.6,1.7";
    let out = ok(&["--json", "search", db, "c", "--query", row2, "-k", "1"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["id"], 42, "{out}");
    // Taken ids are refused without --upsert, replaced with it.
    std::fs::write(&ids, "1\n7\n2\n3\n4\n").unwrap();
    let out = vellum(&["import", db, "c", file, "--ids", ids_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("replace 2 existing") && err.contains("--upsert"),
        "{err}"
    );
    assert_eq!(points(db), 5);
    let out = ok(&["import", db, "c", file, "--ids", ids_arg, "--upsert"]);
    assert!(out.contains("(3 added, 2 replaced)"), "{out}");
    assert_eq!(points(db), 8);
    // --ids and --first-id do not go together.
    let out = vellum(&["import", db, "c", file, "--ids", ids_arg, "--first-id", "5"]);
    assert!(!out.status.success());
}

#[test]
fn verbose_flags_and_rust_log_show_the_engine_s_events_on_standard_error_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let file = dir.path().join("v.fvecs");
    write_fvecs(&file, 20, 4);
    ok(&["create", db, "c", "--dim", "4"]);
    let out = vellum(&["-v", "import", db, "c", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkpoint committed"), "{err}");
    let quiet = vellum(&["--json", "inspect", db]);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let loud = vellum(&["--json", "-v", "inspect", db]);
    let err = String::from_utf8_lossy(&loud.stderr);
    assert!(
        err.contains("collection opened") && err.contains("replayed=0"),
        "{err}"
    );
    // Standard output stays the JSON result.
    serde_json::from_slice::<serde_json::Value>(&loud.stdout).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["inspect", db])
        .env("RUST_LOG", "vellum::database=info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database opened") && !err.contains("collection opened"),
        "{err}"
    );
}

#[test]
fn a_query_of_the_wrong_size_or_no_query_on_standard_input_is_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    ok(&["create", db, "c", "--dim", "4"]);
    let out = vellum(&["search", db, "c", "--query", "1,2,3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("got 3 in the query"),
        "{err}"
    );
    assert!(!err.contains("None"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["search", db, "c", "--query-file", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("held no query"),
        "{err}"
    );
    let out = ok(&["inspect", db]);
    assert!(out.contains("no records (the next is LSN 1)"), "{out}");
}

#[test]
fn create_and_quantize_make_and_convert_quantized_collections_that_inspect_shows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let file = dir.path().join("v.fvecs");
    write_fvecs(&file, 1500, 8);
    let out = ok(&["create", db, "q", "--dim", "8", "--quantization", "int8"]);
    assert!(out.contains("int8 codes"), "{out}");
    ok(&["import", db, "q", file.to_str().unwrap(), "--batch", "500"]);
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = &v["collections"][0];
    assert_eq!(c["quantization"], "int8", "{c}");
    assert!(c["quantized_code_bytes"].as_u64().unwrap() > 0);
    let out = ok(&[
        "search",
        db,
        "q",
        "--query",
        "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7",
        "-k",
        "1",
    ]);
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("0  0.0")),
        "{out}"
    );
    // Converted: f16, then none.
    let out = ok(&[
        "quantize",
        db,
        "q",
        "--quantization",
        "f16",
        "--oversampling",
        "3",
    ]);
    assert!(out.contains("f16 codes"), "{out}");
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["quantization"], "f16");
    let out = ok(&["quantize", db, "q", "--quantization", "none"]);
    assert!(out.contains("no quantized copy"), "{out}");
    let out = ok(&["--json", "inspect", db]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collections"][0]["quantization"], serde_json::Value::Null);
    // Refused in plain words: binary for L2, and a flat collection.
    let out = vellum(&["quantize", db, "q", "--quantization", "binary"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("int8 or f16"));
    let out = vellum(&[
        "create",
        db,
        "f",
        "--dim",
        "8",
        "--flat",
        "--quantization",
        "int8",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HNSW"));
}
