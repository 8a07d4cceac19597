//! Durability callbacks: appends that return once their frames are readable and learn of
//! durability later (a consensus engine pipelines its log this way: openraft's
//! `IOFlushed`). A flusher thread per log syncs while callbacks wait and calls them in LSN
//! order; group commit still merges its syncs with those of other appenders.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::wal::{Shared, Wal};

/// Called once the records of an append are durable, with the last LSN of the append, or
/// with the error that stopped the log (fail-stop: the records may or may not be on disk).
pub type DurableCallback = Box<dyn FnOnce(Result<u64>) + Send + 'static>;

/// At most this many appends wait for their durability callback; the next one blocks until
/// a sync takes some off the queue (backpressure on a caller that outruns the disk).
pub const MAX_PENDING_CALLBACKS: usize = 4096;

/// A queued callback: `done` is called once `lsn` is durable.
pub(crate) struct Pending {
    pub(crate) lsn: u64,
    pub(crate) done: DurableCallback,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("lsn", &self.lsn).finish()
    }
}

impl Wal {
    /// Starts the flusher thread if it is not running.
    pub(crate) fn ensure_flusher(&self) {
        let mut flusher = self.flusher.lock();
        if flusher.is_none() {
            let shared = std::sync::Arc::clone(&self.shared);
            *flusher = Some(std::thread::spawn(move || shared.flusher()));
        }
    }
}

impl Shared {
    /// The flusher: while callbacks wait, syncs up to the newest of them and calls those
    /// now durable. Ends when the log closes with nothing queued, or when a failed sync
    /// stopped the log (every queued callback gets the error).
    fn flusher(&self) {
        loop {
            let mut st = self.state.lock();
            loop {
                if !st.pending.is_empty() {
                    break;
                }
                if self.closing.load(Ordering::Acquire) {
                    return;
                }
                self.flush_cv.wait(&mut st);
            }
            let target = st.pending.back().map_or(0, |p| p.lsn);
            let synced = self.wait_synced(st, target);
            self.fire_ready();
            if synced.is_err() {
                return;
            }
        }
    }

    /// Calls (outside the lock) every queued callback whose LSN is durable, or all of them
    /// with the error if the log is stopped, and wakes appenders held by backpressure.
    pub(crate) fn fire_ready(&self) {
        let (ready, failed) = {
            let mut st = self.state.lock();
            let failed = self.fail.is_poisoned();
            let synced = st.synced_lsn;
            let n = if failed {
                st.pending.len()
            } else {
                st.pending.iter().take_while(|p| p.lsn <= synced).count()
            };
            let ready: Vec<Pending> = st.pending.drain(..n).collect();
            self.synced.notify_all();
            (ready, failed)
        };
        for p in ready {
            let outcome = if failed {
                self.fail.check().map(|()| p.lsn).map_err(Into::into)
            } else {
                Ok(p.lsn)
            };
            (p.done)(outcome);
        }
    }
}
