//! The named fail points of snapshot import and restore: where a test on the simulated file
//! system can fail or pause an operation half way (`SimFs::arm_fail_point`,
//! `SimFs::pause_at`). Every point is declared here and nowhere else;
//! `tests/fail_points.rs` proves each is reached.

/// Restore: after a file is written into the staging directory, before it is synced.
pub const RESTORE_BEFORE_FILE_SYNC: &str = "snapshot::restore::before_file_sync";
/// Restore: the staging directory is complete and synced, before the swap begins.
pub const RESTORE_BEFORE_SWAP: &str = "snapshot::restore::before_swap";
/// Restore over an existing target: after the target was renamed aside, before the staging
/// directory takes its name.
pub const RESTORE_AFTER_TARGET_ASIDE: &str = "snapshot::restore::after_target_aside";
/// Restore: after the staging directory took the target's name, before the parent is synced.
pub const RESTORE_BEFORE_SWAP_SYNC: &str = "snapshot::restore::before_swap_sync";
/// Restore: after the swap is durable, before the old copy is removed.
pub const RESTORE_AFTER_SWAP_SYNC: &str = "snapshot::restore::after_swap_sync";
/// Chunked import: after received bytes are synced, before their log records are.
pub const IMPORT_AFTER_PAYLOAD_SYNC: &str = "snapshot::import::after_payload_sync";
/// Chunked import: the archive is complete and verified, before it is published.
pub const IMPORT_BEFORE_PUBLISH: &str = "snapshot::import::before_publish";

/// Every fail point of the crate.
pub const ALL: &[&str] = &[
    RESTORE_BEFORE_FILE_SYNC,
    RESTORE_BEFORE_SWAP,
    RESTORE_AFTER_TARGET_ASIDE,
    RESTORE_BEFORE_SWAP_SYNC,
    RESTORE_AFTER_SWAP_SYNC,
    IMPORT_AFTER_PAYLOAD_SYNC,
    IMPORT_BEFORE_PUBLISH,
];
