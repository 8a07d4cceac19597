//! Counters an operator graphs: what a collection did since it was opened. Atomics, updated
//! with relaxed stores on the paths they count (no lock); read by `stats`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Since open: writes, searches, checkpoints. (The log's syncs and bytes are counted by the
/// log itself, `vellum_wal::WalStats`.)
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Point writes acknowledged (each upserted or deleted point counts one).
    writes: AtomicU64,
    /// Searches started (plain, filtered, exact scans).
    searches: AtomicU64,
    /// Checkpoints committed.
    checkpoints: AtomicU64,
    /// Their total duration, in nanoseconds.
    checkpoint_time_total_ns: AtomicU64,
    /// The longest time one of them held the collection's state lock, in nanoseconds.
    checkpoint_lock_held_max_ns: AtomicU64,
}

/// What [`Counters`] hold, read at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountersNow {
    pub(crate) writes: u64,
    pub(crate) searches: u64,
    pub(crate) checkpoints: u64,
    pub(crate) checkpoint_time_total: Duration,
    pub(crate) checkpoint_lock_held_max: Duration,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Counters {
    pub(crate) fn wrote(&self, points: u64) {
        self.writes.fetch_add(points, Ordering::Relaxed);
    }

    pub(crate) fn searched(&self) {
        self.searches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn checkpointed(&self, elapsed: Duration, lock_held: Duration) {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpoint_time_total_ns
            .fetch_add(nanos(elapsed), Ordering::Relaxed);
        self.checkpoint_lock_held_max_ns
            .fetch_max(nanos(lock_held), Ordering::Relaxed);
    }

    pub(crate) fn now(&self) -> CountersNow {
        CountersNow {
            writes: self.writes.load(Ordering::Relaxed),
            searches: self.searches.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            checkpoint_time_total: Duration::from_nanos(
                self.checkpoint_time_total_ns.load(Ordering::Relaxed),
            ),
            checkpoint_lock_held_max: Duration::from_nanos(
                self.checkpoint_lock_held_max_ns.load(Ordering::Relaxed),
            ),
        }
    }
}
