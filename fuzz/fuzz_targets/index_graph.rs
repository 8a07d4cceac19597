#![no_main]
//! The graph file decoder on arbitrary bytes: a typed error, or a graph whose every link is
//! valid (it is searched and re-encoded). Logic in `vellum_index::fuzzing::graph_bytes`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_index::fuzzing::graph_bytes(data);
});
