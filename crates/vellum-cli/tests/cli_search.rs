//! `vellum search` and `vellum quantize` end to end: JSON filters, many queries from a file
//! or standard input, bad queries refused in plain words, and quantized collections made,
//! converted and shown by `inspect`.

mod common;

use std::process::Command;

use common::*;

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
