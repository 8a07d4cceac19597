#![no_main]
//! Arbitrary operation sequences on the simulated file system, then crash images of the
//! result: the simulator never panics and every image reads back whole.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_fs::fuzzing::fs_ops(data);
});
