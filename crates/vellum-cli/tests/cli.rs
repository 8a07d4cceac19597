//! The `vellum` binary end to end: the tools, JSON output, exit codes, locks, snapshots,
//! the demo, and errors on bad input (never a panic). Imports are in `cli_import.rs`,
//! searches and quantization in `cli_search.rs`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

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
