//! Opening a database for the tools: read-only for the commands that only read, locked for
//! the ones that change it, and never on a path that is plainly not a database.

use std::path::Path;

use vellum::{Database, DatabaseOptions};

use crate::BoxError;

/// Options for tools that open an existing database: no background thread, nothing
/// created by accident.
pub(crate) fn tool_options() -> DatabaseOptions {
    DatabaseOptions::default().with_background_checkpoints(false)
}

/// Refuses a path that is plainly not a database before anything opens it (so no directory
/// or lock file is made there). A directory with collections but no catalog goes on to the
/// library, which tells a database that lost its catalog from a stranger.
pub(crate) fn check_is_database(db: &Path) -> Result<(), BoxError> {
    if !db.join(vellum::CATALOG_FILE).exists() && !db.join("collections").exists() {
        return Err(format!(
            "{} is not a Vellum database (no {} file)",
            db.display(),
            vellum::CATALOG_FILE
        )
        .into());
    }
    Ok(())
}

/// Opens an existing database without changing it ([`Database::open_read_only`]): for the
/// commands that only read, so they work beside a process that holds the database, and on a
/// read-only copy.
pub(crate) fn open_for_reading(db: &Path) -> Result<Database, BoxError> {
    check_is_database(db)?;
    Ok(Database::open_read_only(db, tool_options())?)
}

/// Opens an existing database to change it (takes its lock, recovers).
pub(crate) fn open_existing(db: &Path) -> Result<Database, BoxError> {
    check_is_database(db)?;
    Ok(Database::open(db, tool_options())?)
}

/// Ends a long write (import, snapshot import or restore, compaction, `vellum checkpoint`):
/// indexes the pending tail, then checkpoints, so no later command replays the log or
/// searches a tail exactly (the graph is saved whole).
pub(crate) fn settle(c: &vellum::Collection) -> Result<vellum::CheckpointInfo, BoxError> {
    c.wait_indexed()?;
    Ok(c.checkpoint()?)
}
