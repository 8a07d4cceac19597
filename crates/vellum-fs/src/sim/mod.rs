//! The simulated file system: in memory, deterministic, and able to say what a power loss
//! could leave on disk.
//!
//! # Model
//!
//! * Each file (an inode) has its *live* bytes (what reads see), its *durable* bytes (what
//!   survives any crash) and the list of writes and length changes made since its last
//!   `sync_data`. A successful sync applies that list to the durable bytes; a failed sync
//!   throws the list away without applying it (the Linux behaviour after `EIO`).
//! * Each directory has live and durable entries. Creates, renames and removes change the
//!   live entries at once and join a list of pending directory operations; `sync_dir(d)`
//!   makes durable every pending operation that touches `d`.
//! * Stores through a writable map change the map's memory; the simulator turns the pages
//!   that differ from the file into pending page writes whenever it looks at the file (a
//!   read, a sync, a flush, a crash), so dirty pages may reach disk early or not at all.
//! * [`SimFs::crash_images`] builds the disk states a power loss could leave (see
//!   [`CrashModel`]). Each image is a fresh `SimFs` with everything durable, ready to reopen.
//! * Faults: countdown rules ([`FaultRule`]), named fail points, and a power cut after the
//!   n-th operation ([`SimFs::cut_power_after`]) which freezes the state for crash images.
//!
//! Simplifications (documented so tests do not over-trust them): file metadata other than
//! length (times, permissions) is not modelled; a rename is atomic (it survives whole or not
//! at all, as on journaling file systems); directories are never torn.

mod crash;
mod failpoints;
mod fault;
mod file;
mod fs_impl;
mod locks;
mod maps;
mod sim_fs;
mod state;

pub use crash::{CrashImages, CrashModel, DirSurvival, WriteSurvival};
pub use failpoints::{FailAction, Pause};
pub use fault::{Fault, FaultRule};
pub(crate) use maps::{SimMapLink, SimReadMap};
pub use sim_fs::{SimFs, SimStats};
