//! Replays the committed corpus of the `fs_ops` fuzz target as an ordinary test.

use std::path::PathBuf;

#[test]
fn the_fs_ops_fuzz_corpus_replays_without_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/fs_ops");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} must exist: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of fs_ops is empty");
    for path in &files {
        vellum_fs::fuzzing::fs_ops(&std::fs::read(path).unwrap());
    }
    println!("replayed {} fs_ops corpus inputs", files.len());
}
