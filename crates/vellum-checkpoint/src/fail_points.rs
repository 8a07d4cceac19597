//! The named fail points of a checkpoint commit: where a test on the simulated file system
//! can fail or pause it half way (`SimFs::arm_fail_point`, `SimFs::pause_at`). Every point
//! is declared here and nowhere else; `tests/fail_points.rs` proves each is reached.

/// Before the generation's first file is written.
pub const BEFORE_FILES: &str = "checkpoint::before_files";
/// After each file of the generation is written and synced.
pub const AFTER_FILE: &str = "checkpoint::after_file";
/// After every file and the manifest copy are durable, before `CURRENT` is replaced.
pub const BEFORE_PUBLISH: &str = "checkpoint::before_publish";
/// After `CURRENT` names the new generation, before retention runs.
pub const AFTER_PUBLISH: &str = "checkpoint::after_publish";

/// Every fail point of the crate.
pub const ALL: &[&str] = &[BEFORE_FILES, AFTER_FILE, BEFORE_PUBLISH, AFTER_PUBLISH];
