//! The I/O seam of Vellum.
//!
//! Every engine layer does its file I/O through the narrow [`Fs`] and [`File`] traits, so the
//! same code runs on the operating system's file system ([`RealFs`]) and on a simulated one
//! ([`SimFs`]) that knows which bytes are durable and can show every disk state a power loss
//! could leave. The contract both keep is in the [`fs`] module docs.
//!
//! Also here, because every layer needs them and none should write its own:
//!
//! * [`atomic_replace`]: temporary file, sync, rename, sync directory;
//! * [`create_dir_all_durable`] and [`remove_file_durable`];
//! * [`FailStop`]: the latch that turns the first I/O error into "reopen required";
//! * [`CrashHarness`]: crash a scenario at many moments and check every image.
//!
//! ```
//! use std::path::Path;
//! use vellum_fs::{CrashModel, Fs, SimFs, atomic_replace};
//!
//! let fs = SimFs::new();
//! atomic_replace(&fs, Path::new("/config"), b"v1").unwrap();
//! fs.cut_power();
//! for image in fs.crash_images(&CrashModel::torn_512(), 64, 7) {
//!     let file = image.open(Path::new("/config")).unwrap();
//!     let mut buf = vec![0; file.len().unwrap() as usize];
//!     file.read_at(&mut buf, 0).unwrap();
//!     assert_eq!(buf, b"v1");
//! }
//! ```

// `unsafe` lives in four places here, each with a SAFETY argument: mapping a real file
// (`real.rs`), copying into or out of mapped memory (`MapMut::write`, the simulator's map
// coherence in `sim/maps.rs`, which allows it for that file alone), and the fuzzing entry
// points (`fuzzing.rs`, hidden from the docs). Everything else is safe code.
#![deny(unsafe_code)]

mod atomic;
mod error;
mod failstop;
pub mod fs;
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod fuzzing;
mod harness;
pub mod le;
mod overlay;
mod platform;
mod prefetch;
#[allow(unsafe_code)]
mod real;
pub mod rng;
pub mod sim;

pub use atomic::{
    TMP_SUFFIX, atomic_replace, atomic_replace_with, create_dir_all_durable, parent_dir,
    remove_file_durable, tmp_path,
};
pub use error::{Error, OpKind, Result};
pub use failstop::FailStop;
pub use fs::{DirLock, DynFs, File, Fs, MapMut, ReadMap};
pub use harness::{CrashFailure, CrashHarness, CrashPoints, CrashReport};
pub use overlay::OverlayFs;
pub use prefetch::{CACHE_LINE_BYTES, prefetch, prefetch_read};
pub use real::{RealFs, open_files_soft_limit};
pub use sim::{
    CrashImages, CrashModel, DirSurvival, FailAction, Fault, FaultRule, Pause, SimFs, SimStats,
    WriteSurvival,
};
