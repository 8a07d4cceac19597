//! Replays the committed fuzz corpus of the generation files' decoders
//! (fuzz/corpus/collection_files, fuzz/corpus/payload_files) and damage of each valid entry through the fuzz entry
//! point: never a panic.

#[test]
fn the_collection_files_fuzz_corpus_replays_without_a_panic() {
    replay("collection_files", vellum::fuzzing::collection_files);
}

#[test]
fn the_payload_files_fuzz_corpus_replays_without_a_panic() {
    replay("payload_files", vellum::fuzzing::payload_files);
}

fn replay(target: &str, decode: fn(&[u8])) {
    let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus directory exists") {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        decode(&bytes);
        count += 1;
        // Every single-byte change and every truncation after the selector byte.
        for offset in 1..bytes.len() {
            for value in [0x00, 0xFF, bytes[offset] ^ 0x01] {
                let mut damaged = bytes.clone();
                damaged[offset] = value;
                decode(&damaged);
            }
            decode(&bytes[..offset]);
        }
    }
    assert!(count > 0, "the corpus is empty");
    println!("replayed {count} corpus inputs with their single-byte damage");
}
