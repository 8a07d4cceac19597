//! The background checkpointer: one thread per database that checkpoints collections whose
//! thresholds are crossed and compacts those past the compaction threshold, stopped and
//! joined when the database's last handle goes; and [`Database::maintain`], the same pass
//! run by the caller.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::collection::CollectionInner;
use crate::database::{Database, DbInner};
use crate::error::Result;

/// What one maintenance pass ([`Database::maintain`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Collections checkpointed (a threshold was crossed).
    pub checkpoints: u64,
    /// Collections compacted (the compaction threshold was crossed).
    pub compactions: u64,
    /// Vector segment files those compactions removed.
    pub segments_removed: u64,
}

impl Database {
    /// Runs the background thread's pass now, on the collections opened so far: a
    /// checkpoint of each whose thresholds are crossed, then a compaction of each past the
    /// compaction threshold ([`crate::DatabaseOptions::with_auto_compaction`]). For
    /// applications that turn background checkpoints off and choose when this work runs.
    /// Stops at the first error (which also stops that collection).
    pub fn maintain(&self) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        for c in open_collections(&self.inner) {
            maintain_one(&c, &mut report)?;
        }
        Ok(report)
    }
}

/// The collections of `db` opened so far: one never opened has nothing new to checkpoint.
fn open_collections(db: &DbInner) -> Vec<Arc<CollectionInner>> {
    let slots: Vec<_> = db.collections.read().values().cloned().collect();
    slots.iter().filter_map(|s| s.get()).collect()
}

fn maintain_one(c: &CollectionInner, report: &mut MaintenanceReport) -> Result<()> {
    if c.wants_checkpoint() {
        c.checkpoint()?;
        report.checkpoints += 1;
    }
    if let Some(compacted) = c.compact_if_wanted()? {
        report.compactions += 1;
        report.segments_removed += u64::from(
            compacted
                .segments_before
                .saturating_sub(compacted.segments_after),
        );
    }
    Ok(())
}

/// The checkpointer thread and its stop signal.
#[derive(Debug)]
pub(crate) struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Background {
    /// Signals the thread to stop and waits for it.
    pub(crate) fn stop(mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

pub(crate) fn start_background(db: &Arc<DbInner>) {
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let weak: Weak<DbInner> = Arc::downgrade(db);
    let poll = db.options.checkpoint_poll_interval;
    let stop2 = stop.clone();
    let handle = std::thread::Builder::new()
        .name("vellum-checkpointer".into())
        .spawn(move || background_loop(weak, stop2, poll))
        .ok();
    *db.background.lock() = Some(Background { stop, handle });
}

fn background_loop(db: Weak<DbInner>, stop: Arc<(Mutex<bool>, Condvar)>, poll: Duration) {
    loop {
        {
            let mut stopped = stop.0.lock();
            if *stopped {
                return;
            }
            stop.1.wait_for(&mut stopped, poll);
            if *stopped {
                return;
            }
        }
        let Some(db) = db.upgrade() else { return };
        let colls = open_collections(&db);
        drop(db);
        for c in colls {
            // An error stops the collection (its writers see it); it is reported here, as
            // no caller waits for this work.
            if let Err(e) = maintain_one(&c, &mut MaintenanceReport::default()) {
                tracing::error!(
                    collection = %c.name,
                    error = %e,
                    "background checkpoint failed: the collection refuses writes until it is reopened"
                );
            }
        }
    }
}
