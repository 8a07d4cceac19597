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

use std::sync::atomic::Ordering;

use super::CollectionInner;
use super::types::CompactReport;
use super::write::relocate;
use crate::error::Result;

/// Moves per hold of the state lock.
const MOVES_PER_HOLD: usize = 1024;

impl CollectionInner {
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
