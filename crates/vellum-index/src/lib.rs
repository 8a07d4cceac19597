//! Vector search for Vellum.
//!
//! Not built yet (issue 5). It will provide exact (flat) and HNSW search under L2, cosine
//! and dot-product metrics over vectors it borrows, and a graph file format that search runs
//! on directly from a mapped slice, so opening never rebuilds the graph. It does no file I/O.
//! Until then this crate exports nothing.
#![forbid(unsafe_code)]
