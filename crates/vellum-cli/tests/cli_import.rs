//! `vellum import` end to end: ids (after the largest, from a file, `--upsert`), payloads
//! from JSON Lines, everything checked before anything is written, and long writes that
//! end indexed and checkpointed.

mod common;

use common::*;

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
