//! Compaction: space comes back after deletes and replacements.
//!
//! Checkpoints first release the slots deletes freed (a slot is reusable once no retained
//! generation names it); then live vectors in the highest slots move down into the lowest
//! free ones (`VectorStore::relocate`: a physical move, no log record, copy-on-write like any
//! write), in short holds of the state lock so readers and writers go on between them; then
//! checkpoints release the old slots, and trailing segments holding nothing are removed when
//! the last of them is published. Crash-safe through the generation protocol: a crash at
//! any point recovers a checkpoint and the log, with every vector where that checkpoint
//! put it. Moved points of an HNSW collection are re-indexed like replacements (the old
//! slot becomes a tombstone, the new one joins the pending tail).
//!
//! Automatic compaction (`DatabaseOptions::with_auto_compaction`, default 0.5): the
//! background thread, or `Database::maintain`, compacts a collection whose live vectors
//! fill less than that fraction of its segments' slots when compacting would remove at
//! least one segment file. A compaction packs the live vectors into the fewest segments,
//! so right after one the threshold is not crossed: it does not repeat at every poll.

use std::sync::atomic::Ordering;

use super::CollectionInner;
use super::types::CompactReport;
use super::write::relocate;
use crate::error::Result;

/// Moves per hold of the state lock.
const MOVES_PER_HOLD: usize = 1024;

impl CollectionInner {
    /// Whether the automatic compaction threshold is crossed (module docs).
    pub(crate) fn wants_compaction(&self) -> bool {
        let Some(below) = self.options.compact_below_live_fraction else {
            return false;
        };
        if self.options.read_only
            || self.failstop.is_poisoned()
            || self.dropped.load(Ordering::Acquire)
        {
            return false;
        }
        let (stats, slots_per_segment) = {
            let state = self.state.read();
            let store = &state.store;
            (store.stats(), u64::from(store.config().slots_per_segment))
        };
        let needed = stats.live.div_ceil(slots_per_segment).max(1);
        u64::from(stats.segments) > needed
            && (stats.live as f64) < below * stats.slot_capacity as f64
    }

    /// Compacts if [`CollectionInner::wants_compaction`]; the report if it did.
    pub(crate) fn compact_if_wanted(&self) -> Result<Option<CompactReport>> {
        if !self.wants_compaction() {
            return Ok(None);
        }
        self.compact().map(Some)
    }

    pub(crate) fn compact(&self) -> Result<CompactReport> {
        self.check_usable()?;
        self.check_writable("compacting")?;
        let before = self.state.read().store.stats();
        // Deleted and replaced slots are reusable once every retained generation that
        // names them has been replaced.
        for _ in 0..self.options.retain_checkpoints {
            self.checkpoint()?;
        }
        let moves = self.state.read().store.compaction_moves();
        let mut moved = 0u64;
        for chunk in moves.chunks(MOVES_PER_HOLD) {
            let indexed = self.config.index != crate::IndexKind::Flat;
            if indexed {
                // Moved slots join the pending tail: wait for room like a writer.
                self.wait_for_room(chunk.len())?;
            }
            let result = {
                let mut state = self.state.write();
                let mut pending = self.pending.lock();
                let mut result = Ok(());
                for &id in chunk {
                    match relocate(&mut state, &mut pending, id) {
                        Ok(did) => moved += u64::from(did),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                if indexed {
                    pending.unreserve(chunk.len());
                }
                if std::mem::take(&mut state.repairs_left) {
                    self.repairs_waiting.store(true, Ordering::Release);
                }
                result
            };
            result?;
        }
        // The old slots are released once no retained generation names them; the last of
        // these checkpoints removes the emptied trailing segments.
        for _ in 0..=self.options.retain_checkpoints {
            self.checkpoint()?;
        }
        let after = self.state.read().store.stats();
        Ok(CompactReport {
            moved,
            segments_before: before.segments,
            segments_after: after.segments,
            segment_bytes_before: before.segment_bytes,
            segment_bytes_after: after.segment_bytes,
        })
    }
}
