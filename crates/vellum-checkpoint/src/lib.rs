//! Atomic checkpoints for Vellum.
//!
//! Not built yet (issue 4). It will commit a set of files as one numbered generation under a
//! manifest that is published last (write, sync, rename, sync directory), with per-file
//! checksums, optional zstd/gzip compression, retention of N generations and removal of
//! orphans left by a crash mid-checkpoint. Until then this crate exports nothing.
#![forbid(unsafe_code)]
