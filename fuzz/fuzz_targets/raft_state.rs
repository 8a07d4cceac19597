#![no_main]
//! The Raft state file and `sm-state` decoders (docs/format/raft-state.md) on arbitrary
//! bytes: a typed error, or a state that re-encodes to the same bytes. Logic in
//! `vellum_raft::fuzzing::raft_state`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vellum_raft::fuzzing::raft_state(data);
});
