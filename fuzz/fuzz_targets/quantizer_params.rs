#![no_main]
//! The quantizer parameter decoder (docs/format/quantizer.md) on arbitrary bytes: a typed
//! error, or parameters that re-encode to the same bytes and score codes. Logic in
//! `vellum_index::fuzzing::quantizer_params`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_index::fuzzing::quantizer_params(data);
});
