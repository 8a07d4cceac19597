//! Portable snapshot archives for Vellum.
//!
//! Not built yet (issue 6). It will define a documented, versioned archive of a collection
//! generation (sections with block checksums and a whole-archive hash), streamed as numbered
//! chunks that may arrive out of order, full and incremental (parent chains), restored into
//! a staging directory and swapped in atomically. Until then this crate exports nothing.
#![forbid(unsafe_code)]
