//! Indexing behind the acknowledgement: a thread per collection with pending work inserts
//! the pending tail into the graph in short chunks under the state lock held shared, so
//! searches run beside it and a writer waits for at most one chunk.
//!
//! # Threads and their bound
//!
//! A collection's indexer thread starts when a write leaves slots pending (or open finds a
//! pending tail) and ends when nothing is left, so idle collections cost no thread. It holds
//! the collection only weakly between chunks. [`Indexers`], one per database and kept by
//! its directory lock, joins every indexer before the lock is released: when the last
//! handle goes, no indexer still runs over the files.
//!
//! # Chunks
//!
//! A chunk is sized so that holding the state lock for it takes about
//! [`CHUNK_HOLD_TARGET`] (measured per chunk, between 1 and [`CHUNK_MAX`] slots). It is
//! inserted with the parallel build on the rayon pool when no search started since the
//! previous chunk, else on the indexer's own thread: searches then keep the other cores.
//! `wait_indexed` and writers helping for room always use the parallel build.
//!
//! # The lag bound
//!
//! Writers wait for room under `index_lag_limit`, or under the tighter
//! `index_lag_searched_limit` while the collection is searched (a search started in the
//! last 100 ms, `DatabaseOptions::searched_window`): every search scans the tail exactly, so a tail of
//! thousands of vectors costs more than the graph search itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::CollectionInner;
use super::source::StoreSource;
use crate::error::{Error, Result};

/// How long one chunk should hold the state lock.
const CHUNK_HOLD_TARGET: Duration = Duration::from_millis(2);
/// Most slots in one chunk.
const CHUNK_MAX: usize = 512;
/// Slots of the first chunk, before anything is measured.
const CHUNK_FIRST: usize = 16;
/// Deleted nodes repaired per hold of the state lock.
const REPAIR_CHUNK: usize = 64;

/// The indexer threads of one database.
#[derive(Debug, Default)]
pub(crate) struct Indexers {
    stop: AtomicBool,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Indexers {
    /// Stops every indexer at its next chunk boundary and waits for it to end.
    pub(crate) fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        let handles = std::mem::take(&mut *self.handles.lock());
        for h in handles {
            let _ = h.join();
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// What one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Work remains.
    More,
    /// Nothing was left to take (slots may still be in flight in another indexer).
    Idle,
}

impl CollectionInner {
    /// Records that a search starts now.
    pub(crate) fn note_search(&self) {
        let ns = u64::try_from(self.opened_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_search_ns.store(ns.max(1), Ordering::Relaxed);
    }

    /// The lag bound now: the tighter one while searches run.
    fn lag_limit(&self) -> usize {
        let last = self.last_search_ns.load(Ordering::Relaxed);
        let now = u64::try_from(self.opened_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let recent = u64::try_from(self.options.searched_window.as_nanos()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < recent {
            self.index_lag_searched_limit
        } else {
            self.index_lag_limit
        }
    }

    /// Starts this collection's indexer thread if work waits and none runs.
    ///
    /// Never on a read-only handle: it cannot save the graph it would build, so the tail is
    /// searched exactly instead (a read-only command pays nothing for a tail it only reads).
    pub(crate) fn kick_indexer(self: &Arc<Self>, indexers: &Arc<Indexers>) {
        if self.options.read_only || !self.options.background_indexing || indexers.stopped() {
            return;
        }
        let mut pending = self.pending.lock();
        if pending.indexer_running
            || !(pending.has_queued() || self.repairs_waiting.load(Ordering::Acquire))
        {
            return;
        }
        pending.indexer_running = true;
        drop(pending);
        let weak = Arc::downgrade(self);
        let stop = Arc::clone(indexers);
        let spawned = std::thread::Builder::new()
            .name(format!("vellum-indexer-{}", self.id))
            .spawn(move || indexer_loop(&weak, &stop));
        let mut handles = indexers.handles.lock();
        handles.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => handles.push(h),
            // No thread: the tail stays searchable, and writers that run out of room
            // index it themselves (`wait_for_room`).
            Err(_) => self.pending.lock().indexer_running = false,
        }
    }

    /// Inserts one chunk of the pending tail (or repairs one chunk of deletes) under the
    /// state lock held shared.
    fn index_chunk(&self, max: usize, parallel: bool) -> Result<Progress> {
        self.check_usable()?;
        let state = self.state.read();
        let Some(index) = &state.index else {
            return Ok(Progress::Idle);
        };
        // The indexer's reads are not counted in `vectors_read_since_open` (searches and
        // the write path are): that counter shows what opening and querying cost.
        let uncounted = AtomicU64::new(0);
        if self.repairs_waiting.swap(false, Ordering::AcqRel) || index.deferred_repairs() > 0 {
            let source = StoreSource::new(&state.store, &uncounted);
            let left = index.repair_deferred(&source, REPAIR_CHUNK)?;
            source.into_result()?;
            if left > 0 {
                self.repairs_waiting.store(true, Ordering::Release);
                return Ok(Progress::More);
            }
        }
        let slots = self.pending.lock().take(max);
        if slots.is_empty() {
            return Ok(Progress::Idle);
        }
        if let Some(hook) = &self.options.indexer_hook {
            hook();
        }
        let source = StoreSource::new(&state.store, &uncounted);
        let inserted = if parallel && slots.len() > 1 {
            index.insert_batch_parallel(&source, &slots)
        } else {
            index.insert_batch(&source, &slots)
        };
        let result = inserted
            .map_err(Error::from)
            .and_then(|()| source.into_result());
        let mut pending = self.pending.lock();
        match result {
            Ok(()) => {
                pending.finish(&slots);
                self.room_cv.notify_all();
                Ok(if pending.has_queued() {
                    Progress::More
                } else {
                    Progress::Idle
                })
            }
            Err(e) => {
                pending.give_back(&slots);
                Err(e)
            }
        }
    }

    /// Waits until every acknowledged write is in the graph (and every deleted node
    /// repaired, every node reachable), indexing on this thread meanwhile with the parallel
    /// build.
    pub(crate) fn wait_indexed(&self) -> Result<()> {
        loop {
            match self.index_chunk(CHUNK_MAX, true)? {
                Progress::More => continue,
                Progress::Idle => {
                    let mut pending = self.pending.lock();
                    if pending.is_empty() && !self.repairs_waiting.load(Ordering::Acquire) {
                        drop(pending);
                        return self.repair_unreachable();
                    }
                    if !pending.has_queued() {
                        // Another indexer has the rest in flight: wait for it to finish.
                        self.room_cv
                            .wait_for(&mut pending, Duration::from_millis(50));
                    }
                }
            }
        }
    }

    /// Links back any graph node no search can reach (`Hnsw::repair_unreachable`), under
    /// the state lock held shared.
    pub(crate) fn repair_unreachable(&self) -> Result<()> {
        let state = self.state.read();
        if let Some(index) = &state.index {
            let uncounted = AtomicU64::new(0);
            let source = StoreSource::new(&state.store, &uncounted);
            index.repair_unreachable(&source)?;
            source.into_result()?;
        }
        Ok(())
    }

    /// Waits until `n` more pending slots fit under the bound, indexing on this thread
    /// when no indexer thread runs. Returns with the room reserved.
    pub(super) fn wait_for_room(&self, n: usize) -> Result<()> {
        loop {
            let mut pending = self.pending.lock();
            if pending.has_room(n, self.lag_limit()) {
                pending.reserve(n);
                return Ok(());
            }
            if self.failstop.is_poisoned() {
                drop(pending);
                self.check_usable()?;
                continue;
            }
            if pending.indexer_running && pending.has_queued() {
                self.room_cv
                    .wait_for(&mut pending, Duration::from_millis(50));
                continue;
            }
            drop(pending);
            // No indexer thread to wait for (or all the rest is in flight): help.
            if self.index_chunk(CHUNK_MAX, true)? == Progress::Idle {
                let mut pending = self.pending.lock();
                if !pending.has_room(n, self.lag_limit()) && !pending.has_queued() {
                    self.room_cv
                        .wait_for(&mut pending, Duration::from_millis(50));
                }
            }
        }
    }
}

fn indexer_loop(weak: &Weak<CollectionInner>, indexers: &Indexers) {
    let mut chunk = CHUNK_FIRST;
    let mut searches_seen = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if indexers.stopped() || inner.dropped.load(Ordering::Acquire) {
            inner.pending.lock().indexer_running = false;
            return;
        }
        let searches = inner.last_search_ns.load(Ordering::Relaxed);
        let parallel = searches_seen.replace(searches) == Some(searches);
        let started = Instant::now();
        match inner.index_chunk(chunk, parallel) {
            Ok(Progress::More) => {
                chunk = next_chunk(chunk, started.elapsed());
            }
            Ok(Progress::Idle) => {
                let mut pending = inner.pending.lock();
                if !pending.has_queued() && !inner.repairs_waiting.load(Ordering::Acquire) {
                    pending.indexer_running = false;
                    return;
                }
            }
            Err(e) => {
                // The graph no longer matches the store: stop the collection (its writers
                // and readers see the cause); reopening rebuilds from the checkpoint.
                if !matches!(e, Error::Poisoned { .. } | Error::UnknownCollection { .. }) {
                    inner.stop(&e);
                }
                inner.pending.lock().indexer_running = false;
                inner.room_cv.notify_all();
                return;
            }
        }
    }
}

/// The next chunk size: the one that would have held the lock for the target time.
fn next_chunk(chunk: usize, took: Duration) -> usize {
    let per_slot = took.as_secs_f64() / chunk as f64;
    if per_slot <= 0.0 {
        return CHUNK_MAX;
    }
    let ideal = (CHUNK_HOLD_TARGET.as_secs_f64() / per_slot) as usize;
    // Move halfway, so one noisy chunk does not swing the size.
    ((chunk + ideal) / 2).clamp(1, CHUNK_MAX)
}
