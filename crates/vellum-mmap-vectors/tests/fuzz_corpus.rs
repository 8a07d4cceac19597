//! Replays the committed corpus of the `vector_segment` fuzz target as an ordinary test, plus
//! every single-byte corruption and every truncation of each input.

use std::path::PathBuf;

#[test]
fn the_vector_segment_fuzz_corpus_and_its_mutations_replay_without_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/vector_segment");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} must exist: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of vector_segment is empty");
    let mut runs = 0;
    for path in &files {
        let input = std::fs::read(path).unwrap();
        vellum_mmap_vectors::fuzzing::vector_segment(&input);
        runs += 1;
        // Truncations and byte flips over the first 256 bytes (headers live there).
        for i in 0..input.len().min(256) {
            vellum_mmap_vectors::fuzzing::vector_segment(&input[..i]);
            let mut flipped = input.clone();
            flipped[i] ^= 0xA5;
            vellum_mmap_vectors::fuzzing::vector_segment(&flipped);
            runs += 2;
        }
    }
    println!(
        "replayed {} vector_segment corpus inputs ({runs} runs with mutations)",
        files.len()
    );
}
