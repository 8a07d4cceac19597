//! Zero-copy vector storage for Vellum.
//!
//! Not built yet (issue 4). It will keep fixed-dimension vectors in slot segment files read
//! through memory maps, map u64 ids to slots, never overwrite a slot the last checkpoint
//! references (copy-on-write), and reuse freed slots only after a checkpoint releases them.
//! It is the one layer besides `vellum-fs` allowed to hold `unsafe` (for mapping); until it
//! is built it holds none.
#![forbid(unsafe_code)]
