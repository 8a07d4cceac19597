#![no_main]
//! The index file decoder (graph and vectors, docs/format/index-file.md) on arbitrary
//! bytes: a typed error, or a view that searches, copies into memory and saves again.
//! Logic in `vellum_index::fuzzing::index_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_index::fuzzing::index_file(data);
});
