//! The named fail points of the log: where a test on the simulated file system can fail or
//! pause an operation half way (`SimFs::arm_fail_point`, `SimFs::pause_at`). Every point is
//! declared here and nowhere else; `tests/fail_points.rs` proves each is reached.

/// After a new segment's header is written, allocated and synced under its temporary name,
/// before the rename that makes it part of the log.
pub const SEGMENT_BEFORE_RENAME: &str = "wal::segment_before_rename";
/// After a torn tail is cut (`set_len`, re-allocation), before the sync that makes the cut
/// durable.
pub const TAIL_CUT_BEFORE_SYNC: &str = "wal::tail_cut_before_sync";
/// In the group-commit leader, before it syncs the active segment for every waiter.
pub const BEFORE_GROUP_SYNC: &str = "wal::before_group_sync";
/// In the group-commit leader, after its sync returned (either way), before it takes the
/// log's lock back to publish the outcome.
pub const AFTER_GROUP_SYNC: &str = "wal::after_group_sync";
/// In an append or truncation that must rotate, found a group sync running: it waits for
/// that sync's outcome before sealing the segment with a sync of its own.
pub const ROTATION_AWAITS_GROUP_SYNC: &str = "wal::rotation_awaits_group_sync";

/// In `truncate_after`, after the segment holding the cut is shortened (and re-allocated),
/// before the sync that makes the cut durable.
pub const TRUNCATE_AFTER_BEFORE_SYNC: &str = "wal::truncate_after_before_sync";
/// In `reset`, after the marker is published, before any segment is removed.
pub const RESET_AFTER_MARKER: &str = "wal::reset_after_marker";

/// Every fail point of the crate.
pub const ALL: &[&str] = &[
    SEGMENT_BEFORE_RENAME,
    TAIL_CUT_BEFORE_SYNC,
    BEFORE_GROUP_SYNC,
    AFTER_GROUP_SYNC,
    ROTATION_AWAITS_GROUP_SYNC,
    TRUNCATE_AFTER_BEFORE_SYNC,
    RESET_AFTER_MARKER,
];
