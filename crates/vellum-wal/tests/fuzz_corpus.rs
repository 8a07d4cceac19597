//! Replays the fuzz corpora (fuzz/corpus/wal_*) through the fuzz targets' logic, so every
//! seed and every input a fuzzer ever kept runs as an ordinary test.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {dir:?} must exist: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {dir:?} is empty");
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn the_segment_bytes_corpus_replays_without_panics() {
    let files = corpus("wal_segment_bytes");
    for (path, bytes) in &files {
        println!("{}", path.display());
        vellum_wal::fuzzing::segment_bytes(bytes);
    }
    println!("replayed {} wal_segment_bytes inputs", files.len());
}

#[test]
fn the_model_ops_corpus_replays_against_the_model() {
    let files = corpus("wal_model_ops");
    for (path, bytes) in &files {
        println!("{}", path.display());
        vellum_wal::fuzzing::model_ops(bytes);
    }
    println!("replayed {} wal_model_ops inputs", files.len());
}

/// A small deterministic sweep of inputs on top of the corpus, so the targets' logic runs
/// even on a fresh checkout without fuzzing.
#[test]
fn pseudo_random_inputs_hold_in_both_targets() {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..300 {
        let len = 1 + (i * 7) % 700;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        vellum_wal::fuzzing::segment_bytes(&bytes);
        vellum_wal::fuzzing::model_ops(&bytes);
    }
}
