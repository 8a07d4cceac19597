//! Decoders on arbitrary bytes, for the fuzz target `raft_state` (fuzz/) and its corpus
//! replay in `cargo test`.

use std::path::Path;

use crate::state_file::RaftState;

/// The Raft state file's decoder (docs/format/raft-state.md) and the state machine's
/// `sm-state` decoder on `data`: a typed error, or a state that encodes back to the same
/// bytes; a panic anywhere is a bug.
pub fn raft_state(data: &[u8]) {
    if let Ok(state) = RaftState::decode(data, Path::new("fuzz")) {
        assert_eq!(
            state.encode().as_slice(),
            data,
            "a decoded state re-encodes differently"
        );
    }
    let _ = crate::state_machine::decode_sm_state_for_fuzzing(data);
}
