#![no_main]
//! Arbitrary bytes as a vector segment file, segment header, store meta and id map,
//! and a store opened over the bytes as its segment file (never a panic).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_mmap_vectors::fuzzing::vector_segment(data);
});
