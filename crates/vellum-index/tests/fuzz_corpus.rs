//! Replays the committed fuzz corpora of the graph decoder (fuzz/corpus/index_graph) and of
//! the index file decoder (fuzz/corpus/index_file), and single-byte damage of the v1
//! fixtures, through the fuzz entry points. `VELLUM_WRITE_CORPUS=1` (re)writes the index
//! file seeds.

use std::path::{Path, PathBuf};

use vellum_fs::SimFs;
use vellum_index::{Hnsw, HnswParams, Metric, OwnedVectors};

#[test]
fn the_index_graph_fuzz_corpus_replays_without_a_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/index_graph");
    let entries = std::fs::read_dir(dir).expect("fuzz/corpus/index_graph exists");
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_file() {
            vellum_index::fuzzing::graph_bytes(&std::fs::read(&path).unwrap());
            count += 1;
        }
    }
    assert!(count > 0, "the corpus is empty");
    println!("replayed {count} corpus inputs");
}

#[test]
fn every_single_byte_change_of_the_fixture_is_handled() {
    let bytes = include_bytes!("fixtures/graph-v1.bin");
    vellum_index::fuzzing::graph_bytes(bytes);
    for offset in 0..bytes.len() {
        for value in [0x00, 0xFF, bytes[offset] ^ 0x01] {
            let mut damaged = bytes.to_vec();
            damaged[offset] = value;
            vellum_index::fuzzing::graph_bytes(&damaged);
        }
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// An index file of `ids` with vectors made from the ids, as `Hnsw::save` writes it.
fn index_file(ids: &[u64], dim: usize, metric: Metric) -> Vec<u8> {
    let mut vectors = OwnedVectors::new(dim);
    for &id in ids {
        let row: Vec<f32> = (0..dim)
            .map(|d| ((id as usize * 7 + d) % 11) as f32 - 5.0)
            .collect();
        vectors.insert(id, &row).unwrap();
    }
    let params = HnswParams {
        m: 3,
        ef_construction: 16,
        ef_search: 8,
        seed: 5,
    };
    let index = Hnsw::new(dim, metric, params).unwrap();
    index.insert_batch(&vectors, ids).unwrap();
    let fs = SimFs::new();
    index.save(&fs, "/seed", &vectors).unwrap();
    fs.read_file(Path::new("/seed")).unwrap()
}

/// Seeds for the index file target: valid files of several shapes, and a few damaged ones
/// so the fuzzer starts past the header checks.
fn index_file_seeds() -> Vec<Vec<u8>> {
    let sparse: Vec<u64> = (0..12u64).map(|i| i * i * 1_000 + 1).collect();
    let valid = index_file(&(0..30).collect::<Vec<u64>>(), 3, Metric::L2);
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() - 5);
    let mut flipped = valid.clone();
    flipped[200] ^= 0x04;
    vec![
        include_bytes!("fixtures/index-file-v1.bin").to_vec(),
        index_file(&[], 4, Metric::Dot),
        index_file(&[42], 2, Metric::Cosine),
        index_file(&sparse, 5, Metric::Cosine),
        valid,
        truncated,
        flipped,
    ]
}

#[test]
fn the_index_file_fuzz_corpus_replays_without_a_panic() {
    let dir = corpus_dir("index_file");
    if std::env::var_os("VELLUM_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in index_file_seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus/index_file exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in &paths {
        vellum_index::fuzzing::index_file(&std::fs::read(path).unwrap());
    }
    assert!(
        paths.len() >= index_file_seeds().len(),
        "the corpus lacks its seeds"
    );
    println!("replayed {} index file corpus inputs", paths.len());
}

#[test]
fn every_single_byte_change_of_the_index_file_fixture_is_handled() {
    let bytes = include_bytes!("fixtures/index-file-v1.bin");
    vellum_index::fuzzing::index_file(bytes);
    for offset in 0..bytes.len() {
        for value in [0x00, 0xFF, bytes[offset] ^ 0x01] {
            let mut damaged = bytes.to_vec();
            damaged[offset] = value;
            vellum_index::fuzzing::index_file(&damaged);
        }
    }
}
