//! Replays the `backup_catalog` fuzz corpus (`fuzz/corpus/backup_catalog/`) through the fuzz
//! target's logic, plus built-in seeds (the golden catalog, a chain, a parent cycle, a wrong
//! version) and deterministic byte mutations of them, so CI exercises the catalog decoder
//! under plain `cargo test`. `VELLUM_WRITE_CORPUS=1` (re)writes the seeds into the corpus.

use std::path::PathBuf;

use vellum_backup::fuzzing::fuzz_catalog;

const GOLDEN: &str = include_str!("fixtures/catalog-v1.json");

fn entry(id: &str, parent: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "id": id, "collection": "docs",
        "kind": if parent.is_some() { "incremental" } else { "full" },
        "parent": parent, "lsn": 7, "archive_bytes": 1000,
        "blake3": "ab".repeat(32), "object": format!("docs/{id}.vsnap"),
        "created_unix_ms": 1
    })
}

fn seeds() -> Vec<Vec<u8>> {
    let (a, b, c) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
    let catalog = |backups: Vec<serde_json::Value>, version: u32| {
        serde_json::to_vec(&serde_json::json!({"version": version, "backups": backups})).unwrap()
    };
    vec![
        GOLDEN.as_bytes().to_vec(),
        catalog(
            vec![entry(&a, None), entry(&b, Some(&a)), entry(&c, Some(&b))],
            1,
        ),
        catalog(vec![entry(&a, Some(&b)), entry(&b, Some(&a))], 1),
        catalog(vec![entry(&a, Some(&c))], 1),
        catalog(vec![entry(&a, None)], 2),
    ]
}

#[test]
fn the_catalog_decoder_survives_its_corpus_seeds_and_their_mutations() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/backup_catalog");
    let seeds = seeds();
    if std::env::var_os("VELLUM_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
        }
    }
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        inputs.extend(paths.iter().map(|p| std::fs::read(p).unwrap()));
    }
    let from_corpus = inputs.len() - seeds.len();
    // Deterministic mutations: every byte of each seed replaced, one at a time, by a few
    // values that matter to JSON (quotes, braces, digits, a cut).
    let mut mutated = 0;
    for seed in &seeds {
        for at in (0..seed.len()).step_by(3) {
            for b in [b'"', b'{', b']', b'9', b'-', 0xff] {
                let mut m = seed.clone();
                m[at] = b;
                fuzz_catalog(&m);
                mutated += 1;
            }
            fuzz_catalog(&seed[..at]);
        }
    }
    for input in &inputs {
        fuzz_catalog(input);
    }
    println!(
        "catalog decoder: {} seeds, {from_corpus} corpus files, {mutated} mutations",
        seeds.len()
    );
    assert!(from_corpus >= seeds.len(), "the corpus holds the seeds");
}
