//! The vector source the index reads through: vectors by store slot, failures recorded
//! instead of panicking, reads counted per thread group.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use vellum_index::VectorSource;
use vellum_mmap_vectors::VectorStore;

use crate::error::{Error, Result};

/// Read counters per thread group, each on its own cache line: the parallel graph build
/// reads vectors from every thread, and one shared counter would bounce between cores on
/// every read.
const READ_SHARDS: usize = 8;

#[derive(Default)]
#[repr(align(64))]
struct PaddedCount(AtomicU64);

static NEXT_SHARD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's shard; `usize::MAX` until first used (a const initialiser keeps the
    /// access a plain load).
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn read_shard() -> usize {
    SHARD.with(|shard| {
        let mut s = shard.get();
        if s == usize::MAX {
            s = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) as usize % READ_SHARDS;
            shard.set(s);
        }
        s
    })
}

/// Reads vectors from the store for the index; records the first failure (a slot whose
/// checksum does not match) instead of panicking, and the caller turns it into an error.
/// Counts its reads and adds them to the collection's counter when dropped.
pub(super) struct StoreSource<'a> {
    store: &'a VectorStore,
    zeros: std::sync::OnceLock<Vec<f32>>,
    failure: Mutex<Option<Error>>,
    reads: &'a AtomicU64,
    counts: [PaddedCount; READ_SHARDS],
}

impl<'a> StoreSource<'a> {
    pub(super) fn new(store: &'a VectorStore, reads: &'a AtomicU64) -> Self {
        StoreSource {
            store,
            zeros: std::sync::OnceLock::new(),
            failure: Mutex::new(None),
            reads,
            counts: Default::default(),
        }
    }

    pub(super) fn into_result(self) -> Result<()> {
        match self.failure.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn zeros(&self) -> &[f32] {
        self.zeros
            .get_or_init(|| vec![0.0; self.store.dimension() as usize])
    }
}

impl Drop for StoreSource<'_> {
    fn drop(&mut self) {
        let total: u64 = self
            .counts
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum();
        self.reads.fetch_add(total, Ordering::Relaxed);
    }
}

impl VectorSource for StoreSource<'_> {
    fn dim(&self) -> usize {
        self.store.dimension() as usize
    }

    /// The index keys vectors by store slot (see `State::index`).
    fn vector(&self, slot: u64) -> &[f32] {
        self.counts[read_shard()].0.fetch_add(1, Ordering::Relaxed);
        match self.store.vector_at(slot) {
            Ok(Some(v)) => v,
            Ok(None) => {
                self.failure
                    .lock()
                    .get_or_insert_with(|| Error::Inconsistent {
                        reason: format!(
                            "the index names vector slot {slot}, which holds no live vector"
                        ),
                    });
                self.zeros()
            }
            Err(e) => {
                self.failure.lock().get_or_insert(Error::Store(e));
                self.zeros()
            }
        }
    }
}
