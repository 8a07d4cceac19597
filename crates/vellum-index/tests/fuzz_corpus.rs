//! Replays the committed fuzz corpus of the graph decoder (fuzz/corpus/index_graph) and
//! single-byte damage of the v1 fixture through the fuzz entry point.

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
