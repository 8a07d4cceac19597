//! The checkpoint path: two short handovers under the state lock around the slow part
//! (flush, file writes, syncs, publish), and the generation numbers `stats` reports.

use std::sync::atomic::Ordering;
use std::time::Instant;

use vellum_checkpoint::{Checkpointer, Codec, FileBytes, FileSpec};
use vellum_mmap_vectors::PreparedCheckpoint;

use super::{
    CHECKPOINTS_DIR, CheckpointInfo, CollectionInner, GRAPH_FILE, PENDING_FILE, QUANTIZER_FILE,
};
use crate::error::{Error, Result};
use crate::meta::{encode_meta, encode_pending};
use crate::payloads::PayloadHandover;

/// What `stats` reports of the current checkpoint generation.
#[derive(Debug, Clone, Default)]
pub(super) struct GenerationStats {
    pub(super) generation: u64,
    pub(super) wal_lsn: u64,
    pub(super) stored_bytes: u64,
    pub(super) raw_bytes: u64,
    pub(super) retained: Vec<u64>,
}

impl GenerationStats {
    pub(super) fn of(cp: &Checkpointer) -> Self {
        match cp.stats() {
            Some(s) => GenerationStats {
                generation: s.generation,
                wal_lsn: s.wal_lsn,
                stored_bytes: s.stored_bytes_total,
                raw_bytes: s.raw_bytes_total,
                retained: s.retained_generations,
            },
            None => GenerationStats::default(),
        }
    }
}

/// What the first handover of a checkpoint takes from under the state lock: the state at
/// one LSN, encoded in memory, for the slow part to write without the lock.
struct Handover {
    /// The last LSN applied to the state taken: the LSN the new generation covers.
    lsn: u64,
    /// `ops_since_checkpoint` at the handover: subtracted once the generation is published,
    /// so writes applied meanwhile still count towards the next checkpoint.
    ops_covered: u64,
    /// The collection metadata file (id, config, point count).
    meta: Vec<u8>,
    /// The payload changes taken (the run and table are built without the lock).
    payloads: PayloadHandover,
    /// The encoded HNSW graph file (`None` for a flat collection).
    graph_bytes: Option<Vec<u8>>,
    /// The encoded pending tail: live slots the graph does not hold yet (HNSW only).
    pending_bytes: Option<Vec<u8>>,
    /// The trained quantizer and its code generation, when there is one.
    quantizer_bytes: Option<Vec<u8>>,
    /// The store's half of the checkpoint: the id map, the segment maps to flush, and the
    /// slots the id map names marked in flight.
    prepared: PreparedCheckpoint,
    /// How long the handover held the state lock.
    lock_held: std::time::Duration,
}

impl CollectionInner {
    /// Whether a checkpoint threshold is crossed.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        if self.failstop.is_poisoned() || self.dropped.load(Ordering::Acquire) {
            return false;
        }
        let ops = self.ops_since_checkpoint.load(Ordering::Relaxed);
        if ops >= self.options.checkpoint_after_ops {
            return true;
        }
        if ops == 0 {
            return false;
        }
        // Unsaved payloads are held in memory until a checkpoint writes them. Not waited
        // for: a writer holding the lock is checked on the next poll.
        if let Some(state) = self.state.try_read()
            && state.payloads.unsaved_bytes() >= self.options.checkpoint_after_payload_bytes
        {
            return true;
        }
        let wal_bytes = self.wal.stats().log_bytes;
        wal_bytes.saturating_sub(self.wal_bytes_at_checkpoint.load(Ordering::Relaxed))
            >= self.options.checkpoint_after_wal_bytes
    }

    /// Backpressure on payloads held in memory: a writer that finds twice
    /// `checkpoint_after_payload_bytes` unsaved (a checkpoint in flight let them pile up, or
    /// background checkpoints are off) waits for the checkpoint in flight and, if that did not
    /// bring them under the bound, checkpoints itself. So the payloads written since the
    /// last handover stay under twice the threshold (plus the batches of writers already
    /// past the check), and with a checkpoint in flight holding its own, memory holds at
    /// most about four times the threshold; normally the background checkpoint at the
    /// threshold keeps it near twice.
    pub(crate) fn bound_unsaved_payloads(&self) -> Result<()> {
        let bound = self
            .options
            .checkpoint_after_payload_bytes
            .saturating_mul(2);
        let over = || self.state.read().payloads.unsaved_bytes() >= bound;
        if !over() {
            return Ok(());
        }
        let mut cp = self.checkpointer.lock();
        self.check_usable()?;
        if !over() {
            return Ok(());
        }
        let result = self.checkpoint_locked(&mut cp);
        if let Err(e) = &result {
            self.stop(e);
        }
        result.map(drop)
    }

    /// Makes the current state durable as a new checkpoint generation and drops log
    /// segments no retained generation needs.
    pub(crate) fn checkpoint(&self) -> Result<CheckpointInfo> {
        self.check_usable()?;
        self.check_writable("checkpointing")?;
        let mut cp = self.checkpointer.lock();
        // Dropped while this call waited for the lock: the directory is going away.
        self.check_usable()?;
        let result = self.checkpoint_locked(&mut cp);
        if let Err(e) = &result {
            self.stop(e);
        }
        result
    }

    pub(super) fn checkpoint_locked(&self, cp: &mut Checkpointer) -> Result<CheckpointInfo> {
        let codec = match self.options.zstd_level {
            Some(level) => Codec::Zstd { level },
            None => Codec::None,
        };
        // 1. A short handover under the state lock: the state at one LSN, encoded in memory,
        //    with the slots it references protected from reuse.
        let started = Instant::now();
        // A quantizer due (enough points, or grown eightfold) is trained and its codes
        // encoded first, a chunk per hold of the write lock, so this generation names it.
        self.train_quantizer_if_due()?;
        // Deleted graph nodes are repaired first, outside the exclusive hold (a node
        // deleted after this is saved without its repair: its neighbours lose that link).
        {
            let state = self.state.read();
            if let Some(index) = &state.index {
                let source = super::source::StoreSource::new(&state.store, &state.vector_reads);
                index.repair_deferred(&source, usize::MAX)?;
                // The saved graph has no node a search cannot reach (a tombstone that was a
                // node's last way in is gone from the file).
                index.repair_unreachable(&source)?;
                source.into_result()?;
            }
        }
        let handover = {
            let mut state = self.state.write();
            let held = Instant::now();
            let quantizer_bytes = state.quant.trained.as_ref().map(|q| q.encode());
            let lsn = state.applied_lsn;
            let ops_covered = self.ops_since_checkpoint.load(Ordering::Relaxed);
            let points = state.store.len() as u64;
            let payloads = state.payloads.handover()?;
            let graph_bytes = match &state.index {
                Some(index) => Some(index.to_bytes()?),
                None => None,
            };
            // No indexer is inside an insert while the lock is held exclusively: the graph
            // and the tail are disjoint and together hold every live slot.
            let pending_bytes = state.index.as_ref().map(|_| {
                let mut slots = self.pending.lock().slots();
                slots.sort_unstable();
                encode_pending(&slots)
            });
            let meta = encode_meta(self.id, &self.config, points);
            let prepared = state.store.prepare_checkpoint("")?;
            Handover {
                lsn,
                ops_covered,
                meta,
                payloads,
                graph_bytes,
                pending_bytes,
                quantizer_bytes,
                prepared,
                lock_held: held.elapsed(),
            }
        };
        // 2. The slow part without the lock: readers and writers go on while the slots are
        //    flushed and the generation's files are written, synced and published.
        let flushed = handover.prepared.flush()?;
        let mut payloads = handover.payloads.build()?;
        let mut files: Vec<FileSpec<'_>> = flushed.files();
        files.extend(payloads.files());
        if let Some(graph) = &handover.graph_bytes {
            files.push(FileSpec {
                name: GRAPH_FILE,
                bytes: graph,
                codec: Codec::None,
            });
        }
        if let Some(quantizer) = &handover.quantizer_bytes {
            files.push(FileSpec {
                name: QUANTIZER_FILE,
                bytes: quantizer,
                codec: Codec::None,
            });
        }
        if let Some(pending) = &handover.pending_bytes {
            files.push(FileSpec {
                name: PENDING_FILE,
                bytes: pending,
                codec,
            });
        }
        let mut carried = flushed.carried();
        carried.extend(payloads.carried());
        let info = match cp.commit_carrying(handover.lsn, &handover.meta, &files, &carried) {
            Ok(info) => info,
            Err(e) => {
                // Stop the collection with the real cause before the store learns the
                // checkpoint was given up, so every caller's first error names it.
                let e = Error::from(e);
                self.stop(&e);
                drop((files, carried));
                flushed.abandon(&e);
                return Err(e);
            }
        };
        drop((files, carried));
        payloads.release_written();
        // The new runs are read through maps of their files from now on.
        let mapped = payloads
            .new_runs()
            .iter()
            .map(|(_, name)| self.map_checkpoint_file(info.generation, name))
            .collect::<Result<Vec<_>>>()?;
        let mapped_indexes = payloads
            .written_indexes()
            .into_iter()
            .map(|name| self.map_checkpoint_file(info.generation, name))
            .collect::<Result<Vec<_>>>()?;
        // The new table too: its pages are the file's, not the heap's.
        let mapped_table = match payloads.table_written() {
            true => {
                Some(self.map_checkpoint_file(info.generation, crate::payloads::LOCATIONS_FILE)?)
            }
            false => None,
        };
        *self.checkpoint_stats.lock() = GenerationStats::of(cp);
        // 3. Another short handover: slots the new generation no longer references become
        //    reusable.
        let (second_hold, taken) = {
            let mut state = self.state.write();
            let held = Instant::now();
            state.store.publish_checkpoint(flushed, &info)?;
            let taken = state.payloads.publish(
                payloads,
                mapped,
                mapped_table,
                mapped_indexes,
                info.generation,
            );
            // The changes' buffer is freed after the lock is released.
            (held.elapsed(), taken)
        };
        drop(taken);
        self.ops_since_checkpoint
            .fetch_sub(handover.ops_covered, Ordering::Relaxed);
        let removed = self.wal.truncate_before(info.oldest_retained_wal_lsn + 1)?;
        self.wal_bytes_at_checkpoint
            .store(self.wal.stats().log_bytes, Ordering::Relaxed);
        let done = CheckpointInfo {
            generation: info.generation,
            lsn: info.wal_lsn,
            wal_segments_removed: removed as u64,
            lock_held: handover.lock_held + second_hold,
            elapsed: started.elapsed(),
        };
        self.counters.checkpointed(done.elapsed, done.lock_held);
        let saved = self.checkpoint_stats.lock().clone();
        tracing::info!(
            collection = %self.name,
            generation = done.generation,
            lsn = done.lsn,
            stored_bytes = saved.stored_bytes,
            raw_bytes = saved.raw_bytes,
            wal_segments_removed = done.wal_segments_removed,
            elapsed_ms = done.elapsed.as_secs_f64() * 1e3,
            lock_held_ms = done.lock_held.as_secs_f64() * 1e3,
            "checkpoint committed"
        );
        Ok(done)
    }

    /// Maps a file the generation just committed wrote (its length was checked when it was
    /// written; its records carry their own checksums).
    fn map_checkpoint_file(&self, generation: u64, name: &str) -> Result<FileBytes> {
        let path = self
            .dir
            .join(CHECKPOINTS_DIR)
            .join(vellum_checkpoint::data_file_name(generation, name));
        let map = self.fs.open(&path)?.map_read()?;
        Ok(FileBytes::from_shared(std::sync::Arc::new(map)))
    }
}
