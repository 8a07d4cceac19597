//! Shared helpers for Vellum's benchmarks (data sets, timing tables).
//!
//! The benches themselves live in `benches/benches/` (criterion) and `src/bin/` (bench
//! binaries that print tables for docs/BENCHMARKS.md). Peers are compiled only with the
//! `compare` feature.
#![forbid(unsafe_code)]
