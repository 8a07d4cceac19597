//! Segmented write-ahead log for Vellum.
//!
//! Not built yet (issue 3). It will hold framed, checksummed, LSN-numbered records in
//! segment files written through [`vellum-fs`], with group commit, sync policies, recovery
//! modes (torn-tail repair, corruption reporting, salvage) and prefix truncation after a
//! checkpoint. Until then this crate exports nothing.
#![forbid(unsafe_code)]
