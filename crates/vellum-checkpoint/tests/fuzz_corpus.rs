//! Replays the committed corpus of the `checkpoint_manifest` fuzz target as an ordinary test, plus
//! every single-byte corruption and every truncation of each input.

use std::path::PathBuf;

#[test]
fn the_checkpoint_manifest_fuzz_corpus_and_its_mutations_replay_without_panics() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/checkpoint_manifest");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} must exist: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the corpus of checkpoint_manifest is empty"
    );
    let mut runs = 0;
    for path in &files {
        let input = std::fs::read(path).unwrap();
        vellum_checkpoint::fuzzing::manifest(&input);
        runs += 1;
        // Truncations and byte flips over the first 256 bytes (headers live there).
        for i in 0..input.len().min(256) {
            vellum_checkpoint::fuzzing::manifest(&input[..i]);
            let mut flipped = input.clone();
            flipped[i] ^= 0xA5;
            vellum_checkpoint::fuzzing::manifest(&flipped);
            runs += 2;
        }
    }
    println!(
        "replayed {} checkpoint_manifest corpus inputs ({runs} runs with mutations)",
        files.len()
    );
}
