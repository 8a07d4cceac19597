//! Operation sequences with crashes and reopens on SimFs, checked against a model.
//! The logic lives in `vellum_wal::fuzzing::model_ops` (replayed by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_wal::fuzzing::model_ops(data);
});
