//! The store's side of a checkpoint, in three steps: [`VectorStore::prepare_checkpoint`]
//! (in memory, under the owner's lock), [`PreparedCheckpoint::flush`] (the `msync`, with no
//! borrow of the store) and, once the checkpointer has committed
//! [`FlushedCheckpoint::files`], [`VectorStore::publish_checkpoint`]; a [`Ticket`] stops the
//! store if the checkpoint is dropped or abandoned in between. [`VectorStore::checkpoint`]
//! runs all three.

use std::cmp::Reverse;
use std::sync::Arc;

use vellum_checkpoint::{Checkpointer, Codec, CommitInfo, FileSpec};
use vellum_fs::{FailStop, MapMut};

use crate::error::{Error, Result};
use crate::state::{IDMAP_FILE, META_FILE, StoreMeta, encode_idmap};
use crate::store::{VectorStore, set_bit};
/// What the store remembers of a prepared, unpublished checkpoint.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// One bit per slot the prepared id map references.
    pub(crate) referenced: Vec<u64>,
    /// Slots among those released since: reusable only after the generation is published
    /// and expired.
    pub(crate) released: Vec<u64>,
}

impl VectorStore {
    /// Step one of a checkpoint, in memory only: takes the store's state (the id map's
    /// entries, copied; sorting and encoding them waits for the flush, outside the owner's
    /// lock) and marks the slots it references as protected. Then [`PreparedCheckpoint::flush`] it (no borrow of
    /// the store needed, so writers may go on), commit [`FlushedCheckpoint::files`] (with
    /// any files of your own) through a [`Checkpointer`], and hand the result to
    /// [`VectorStore::publish_checkpoint`].
    ///
    /// Writes in between are not part of the checkpoint; a slot it references stays
    /// protected even if its id is deleted or replaced meanwhile. Dropping the prepared or
    /// flushed checkpoint without publishing it stops the store (reopen), since the store
    /// cannot know whether the generation reached the disk. Only one checkpoint may be in
    /// flight: a second prepare is [`Error::CheckpointInFlight`].
    pub fn prepare_checkpoint(&mut self, file_prefix: &str) -> Result<PreparedCheckpoint> {
        self.failstop.check()?;
        if self.in_flight.is_some() {
            return Err(Error::CheckpointInFlight {
                dir: self.dir.clone(),
            });
        }
        let mut maps = Vec::new();
        for seg in &mut self.segments {
            if seg.dirty {
                maps.push(seg.shared_map());
                seg.dirty = false;
            }
        }
        let mut referenced = Vec::with_capacity(self.durable.len());
        let entries: Vec<(u64, u64, u32)> = self
            .ids
            .iter()
            .map(|(&id, &slot)| {
                set_bit(&mut referenced, slot);
                let (seg, within, _) = self.locate(slot);
                (id, slot, self.segments[seg].crcs[within])
            })
            .collect();
        let meta = StoreMeta {
            element: self.config.element,
            dimension: self.config.dimension,
            slots_per_segment: self.config.slots_per_segment,
            segment_count: self.segments.len() as u32,
            live_count: entries.len() as u64,
            pending: self.pending.clone(),
        };
        self.in_flight = Some(InFlight {
            referenced,
            released: Vec::new(),
        });
        Ok(PreparedCheckpoint {
            ticket: Ticket {
                failstop: Arc::clone(&self.failstop),
                done: false,
            },
            maps,
            files: StoreFiles {
                meta_name: format!("{file_prefix}{META_FILE}"),
                idmap_name: format!("{file_prefix}{IDMAP_FILE}"),
                meta: meta.encode(),
                entries,
                idmap: Vec::new(),
                codec: self.config.idmap_codec,
            },
        })
    }

    /// The last step of a checkpoint: tells the store the generation `info` describes (the
    /// one `flushed` was committed as) is durable. Slots it no longer references (and no
    /// retained generation does) become reusable; wholly free trailing segments are removed.
    pub fn publish_checkpoint(
        &mut self,
        mut flushed: FlushedCheckpoint,
        info: &CommitInfo,
    ) -> Result<()> {
        flushed.ticket.done = true;
        self.failstop.check()?;
        let Some(in_flight) = self.in_flight.take() else {
            let e = vellum_fs::Error::Contract {
                path: self.dir.clone(),
                rule: "publish_checkpoint needs a checkpoint prepared by this store",
            };
            self.failstop.poison(&e);
            return Err(e.into());
        };
        self.durable_generation = info.generation;
        self.durable = in_flight.referenced;
        self.pending
            .extend(in_flight.released.into_iter().map(|s| (s, info.generation)));
        self.release_pending(info.oldest_retained_generation);
        let reclaimed = self.reclaim_trailing_segments();
        self.failstop.guard(reclaimed)?;
        Ok(())
    }

    /// A whole checkpoint through `checkpointer`: prepare, flush, commit the store's files
    /// (prefix `""`) with `metadata` covering WAL LSN `wal_lsn`, then publish. After it
    /// returns the caller may truncate its WAL below `info.oldest_retained_wal_lsn + 1`.
    pub fn checkpoint(
        &mut self,
        checkpointer: &mut Checkpointer,
        wal_lsn: u64,
        metadata: &[u8],
    ) -> Result<CommitInfo> {
        let flushed = self.prepare_checkpoint("")?.flush()?;
        let info = checkpointer.commit(wal_lsn, metadata, &flushed.files())?;
        self.publish_checkpoint(flushed, &info)?;
        Ok(info)
    }

    fn release_pending(&mut self, oldest_retained_generation: u64) {
        let free = &mut self.free;
        self.pending.retain(|&(slot, tag)| {
            if tag < oldest_retained_generation {
                free.push(Reverse(slot));
                false
            } else {
                true
            }
        });
    }

    /// Removes trailing segments holding no live or protected slot. Not synced: a segment
    /// file that comes back after a crash is past what the checkpoint needs and is removed
    /// again at open.
    fn reclaim_trailing_segments(&mut self) -> vellum_fs::Result<()> {
        let max_used = self
            .ids
            .values()
            .copied()
            .chain(self.pending.iter().map(|p| p.0))
            .max();
        let sps = u64::from(self.config.slots_per_segment);
        let needed = max_used.map_or(0, |s| s / sps + 1) as usize;
        if needed >= self.segments.len() {
            return Ok(());
        }
        while self.segments.len() > needed {
            let seg = self.segments.pop().expect("len > needed >= 0");
            let path = seg.path.clone();
            drop(seg);
            self.fs.remove_file(&path)?;
        }
        let limit = needed as u64 * sps;
        let free = std::mem::take(&mut self.free);
        self.free = free.into_iter().filter(|s| s.0 < limit).collect();
        self.fresh = self.fresh.min(limit);
        Ok(())
    }
}

/// Poisons the store when a checkpoint is abandoned between prepare and publish.
#[derive(Debug)]
struct Ticket {
    failstop: Arc<FailStop>,
    done: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.failstop.poison(
                &"a prepared checkpoint was dropped without being published; \
                 whether it reached the disk is unknown",
            );
        }
    }
}

/// The encoded state files of a checkpoint.
#[derive(Debug)]
struct StoreFiles {
    meta_name: String,
    idmap_name: String,
    meta: Vec<u8>,
    /// The id map's entries (id, slot, crc) as taken under the owner's lock, in no order;
    /// sorted and encoded into `idmap` by `flush`, outside that lock.
    entries: Vec<(u64, u64, u32)>,
    idmap: Vec<u8>,
    codec: Codec,
}

/// A checkpoint of the store taken in memory, its slots not yet flushed. It does not
/// borrow the store: flush it while the store takes other writes.
#[derive(Debug)]
pub struct PreparedCheckpoint {
    ticket: Ticket,
    /// Maps of the segments written since the last checkpoint.
    maps: Vec<Arc<MapMut>>,
    files: StoreFiles,
}

impl PreparedCheckpoint {
    /// Makes every slot the checkpoint references durable (`msync` of each segment written
    /// since the last checkpoint), so the id map naming them may be published. Stores into
    /// other slots of the same maps may run meanwhile; they are flushed again by the next
    /// checkpoint. A failure stops the store.
    pub fn flush(self) -> Result<FlushedCheckpoint> {
        let PreparedCheckpoint {
            ticket,
            maps,
            mut files,
        } = self;
        // The id map is sorted and encoded here, not under the owner's lock: at a million
        // points that is most of what `prepare_checkpoint` cost (scale_bench).
        let mut entries = std::mem::take(&mut files.entries);
        entries.sort_unstable_by_key(|e| e.0);
        files.idmap = encode_idmap(&entries);
        drop(entries);
        for map in &maps {
            // Slots reach the disk before the id map that references them is published.
            ticket.failstop.guard(map.flush())?;
        }
        Ok(FlushedCheckpoint { ticket, files })
    }
}

/// A checkpoint whose slots are durable: commit its [`FlushedCheckpoint::files`], then
/// [`VectorStore::publish_checkpoint`].
#[derive(Debug)]
pub struct FlushedCheckpoint {
    ticket: Ticket,
    files: StoreFiles,
}

impl FlushedCheckpoint {
    /// Gives the checkpoint up after committing its files failed: stops the store (as
    /// dropping it would) with `cause` as the reason, so the first error a writer sees names
    /// what went wrong (a full disk, say) rather than "a prepared checkpoint was dropped".
    pub fn abandon(mut self, cause: &dyn std::fmt::Display) {
        self.ticket.failstop.poison(&format!(
            "a checkpoint failed before it was published ({cause}); whether it reached the \
             disk is unknown"
        ));
        self.ticket.done = true;
    }

    /// The files to commit: the meta file (stored as is) and the id map (with the
    /// configured codec).
    pub fn files(&self) -> [FileSpec<'_>; 2] {
        let f = &self.files;
        [
            FileSpec {
                name: &f.meta_name,
                bytes: &f.meta,
                codec: Codec::None,
            },
            FileSpec {
                name: &f.idmap_name,
                bytes: &f.idmap,
                codec: f.codec,
            },
        ]
    }
}
