//! Vellum: a crash-safe persistence engine for vector indexes.
//!
//! The facade (`Database`, `Collection`) is not built yet (issue 7). Today the workspace
//! provides the I/O seam, [`vellum_fs`], with its crash-simulating file system; the other
//! layers follow. This crate re-exports what exists.
#![forbid(unsafe_code)]

pub use vellum_fs as fs;
