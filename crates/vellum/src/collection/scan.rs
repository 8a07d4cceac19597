//! The exact scan of a large collection, a chunk of slots per hold of the state read lock:
//! a writer waits for one chunk (a few milliseconds), never for the whole scan (a million
//! 128-d vectors take ~200 ms on the 2-core machine, and a writer waiting for the lock
//! also holds back every search that comes after it).
//!
//! The chunks run one after another on the calling thread; each is scanned in parallel on
//! the rayon pool under the caller's hold (as every exact scan is). No pool task takes the
//! lock itself: the indexer holds the lock shared while its parallel insert waits for pool
//! tasks, and a pool task waiting for the lock behind a queued writer would leave that
//! insert, and so the writer, waiting forever.
//!
//! What a chunked scan returns: for each id, a distance to a vector that id held at some
//! moment of the scan (each chunk reads vectors and ids under one hold). A write that
//! lands between chunks may or may not be seen; an id replaced meanwhile may be met twice
//! (old and new slot) and is returned once, at its smaller distance.

use super::{CollectionInner, Hit, SearchParams};
use crate::error::Result;

/// Slots scanned under one hold of the state lock: enough for the exact scan to split the
/// chunk across the pool (`vellum_index::PARALLEL_EXACT_MIN_LEN`); with 128-d vectors,
/// 16 MiB of them.
pub(crate) const EXACT_SCAN_CHUNK_SLOTS: u64 = vellum_index::PARALLEL_EXACT_MIN_LEN as u64;

impl CollectionInner {
    /// The exact `k` nearest of every live slot below `slot_bound` (and of any slot added
    /// below it while the scan runs), a chunk of [`EXACT_SCAN_CHUNK_SLOTS`] at a time.
    pub(super) fn scan_in_chunks(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams<'_>,
        slot_bound: u64,
    ) -> Result<Vec<Hit>> {
        let mut hits: Vec<Hit> = Vec::new();
        for chunk in 0..slot_bound.div_ceil(EXACT_SCAN_CHUNK_SLOTS) {
            let state = self.state.read();
            let from = chunk * EXACT_SCAN_CHUNK_SLOTS;
            let slots: Vec<u64> = (from..from + EXACT_SCAN_CHUNK_SLOTS)
                .filter(|&slot| state.store.id_at(slot).is_some())
                .collect();
            hits.extend(self.exact_hits(&state, &slots, query, k, params)?);
        }
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        let mut seen = rustc_hash::FxHashSet::default();
        hits.retain(|h| seen.insert(h.id));
        hits.truncate(k);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{
        Collection, CollectionConfig, Database, DatabaseOptions, Metric, Point, SearchFilter,
    };

    /// A flat collection of `dim` dimensions in a new database (background work off).
    fn flat_collection(dim: usize) -> (tempfile::TempDir, Database, Collection) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(
            dir.path(),
            DatabaseOptions::default().with_background_checkpoints(false),
        )
        .unwrap();
        let c = db
            .create_collection("flat", CollectionConfig::new(dim, Metric::L2).flat())
            .unwrap();
        (dir, db, c)
    }

    #[test]
    fn a_writer_gets_in_between_the_chunks_of_a_long_exact_scan() {
        let (_dir, _db, c) = flat_collection(2);
        let n = 4 * EXACT_SCAN_CHUNK_SLOTS;
        c.upsert_batch((0..n).map(|i| Point::new(i, vec![i as f32, 0.0])))
            .unwrap();
        let inner = c.inner();
        let (queued, written, seen_during_scan) = (
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        let go = std::sync::Barrier::new(2);
        let first = AtomicBool::new(true);
        // One thread, so the chunks run one after another.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                go.wait();
                c.upsert(Point::new(n + 1, vec![-1.0, 0.0])).unwrap();
                written.store(true, Ordering::SeqCst);
            });
            let pred = |_: u64| {
                if first.swap(false, Ordering::SeqCst) {
                    // Under the first chunk's hold: let the writer in, and wait until it
                    // waits for the lock (a waiting writer fails every `try_read`).
                    go.wait();
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while inner.state.try_read().is_some() && Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                    queued.store(inner.state.try_read().is_none(), Ordering::SeqCst);
                }
                if written.load(Ordering::SeqCst) {
                    seen_during_scan.store(true, Ordering::SeqCst);
                }
                true
            };
            let params = SearchParams {
                filter: Some(SearchFilter::Id(&pred)),
                ..SearchParams::default()
            };
            let hits = pool.install(|| c.search_with(&[0.0, 0.0], 3, &params).unwrap());
            assert_eq!(hits.len(), 3);
        });
        assert!(
            queued.load(Ordering::SeqCst),
            "the writer never waited for the lock"
        );
        assert!(
            seen_during_scan.load(Ordering::SeqCst),
            "the write waited for the whole scan"
        );
    }

    #[test]
    fn a_chunked_scan_returns_the_exact_nearest_with_and_without_a_filter() {
        let (_dir, _db, c) = flat_collection(3);
        let n = 3 * EXACT_SCAN_CHUNK_SLOTS + 123;
        let v = |i: u64| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            [
                (h >> 40) as f32,
                (h >> 20 & 0xfffff) as f32,
                (h & 0xfffff) as f32,
            ]
        };
        c.upsert_batch((0..n).map(|i| Point::new(i, v(i).to_vec())))
            .unwrap();
        // Holes in every chunk, and replaced points (in new slots past the first ones).
        for i in (0..n).step_by(7) {
            c.delete(i).unwrap();
        }
        for i in (1..n).step_by(11) {
            c.upsert(Point::new(i, v(i + n).to_vec())).unwrap();
        }
        let live: Vec<(u64, [f32; 3])> = (0..n)
            .filter(|i| i % 7 != 0)
            .map(|i| (i, if i % 11 == 1 { v(i + n) } else { v(i) }))
            .collect();
        let query = [1.0e5f32, 2.0e5, 3.0e5];
        let dist =
            |x: &[f32; 3]| -> f32 { x.iter().zip(&query).map(|(a, b)| (a - b) * (a - b)).sum() };
        for odd_only in [false, true] {
            let mut want: Vec<(f32, u64)> = live
                .iter()
                .filter(|(i, _)| !odd_only || i % 2 == 1)
                .map(|(i, x)| (dist(x), *i))
                .collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let pred = |id: u64| id % 2 == 1;
            let params = SearchParams {
                filter: odd_only.then_some(SearchFilter::Id(&pred)),
                ..SearchParams::default()
            };
            let hits = c.search_with(&query, 10, &params).unwrap();
            let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
            let expected: Vec<u64> = want.iter().take(10).map(|w| w.1).collect();
            assert_eq!(got, expected, "odd only: {odd_only}");
        }
    }
}
