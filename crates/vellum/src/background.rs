//! The background checkpointer: one thread per database that checkpoints collections whose
//! thresholds are crossed, stopped and joined when the database's last handle goes.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::database::DbInner;

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
        // Only collections opened so far: one never opened has nothing new to checkpoint.
        let slots: Vec<_> = db.collections.read().values().cloned().collect();
        drop(db);
        let colls: Vec<_> = slots.iter().filter_map(|s| s.get()).collect();
        for c in colls {
            if c.wants_checkpoint() {
                // An error stops the collection (its writers see it); nothing else to do here.
                let _ = c.checkpoint();
            }
        }
    }
}
