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
use crate::state::{
    DELETED_SLOT, IDMAP_DELTA_FILE, IDMAP_FILE, META_FILE, StoreMeta, encode_idmap,
    encode_idmap_delta,
};
use crate::store::{VectorStore, set_bit};

/// The default [`StoreConfig::idmap_rewrite_divisor`](crate::StoreConfig): a checkpoint
/// writes a new id map base (every live id) when the ids changed since the last base
/// outnumber an eighth of it; otherwise it carries the base over and writes only the delta.
/// So a checkpoint's id map work, under the owner's lock and after it, is O(ids changed
/// since the base), at most an eighth of the base, and a base rewrite (O(live ids)) comes
/// once per eighth of the collection changed.
pub const BASE_REWRITE_DIVISOR: u64 = 8;
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
    /// Step one of a checkpoint, in memory only: takes the store's state (the ids changed
    /// since the id map base, or every id when a new base is due; sorting and encoding them
    /// waits for the flush, outside the owner's lock) and marks the slots it references as
    /// protected (a copy of the live bits, one per slot). Then [`PreparedCheckpoint::flush`] it (no borrow of
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
        // The code plane's dirty pages go with them: not needed for correctness (a code
        // that did not reach the disk fails its binding and is encoded again at attach),
        // but a power cut then leaves only the codes written since to redo.
        let code_segments = self
            .codes
            .iter_mut()
            .flat_map(|plane| plane.segments.iter_mut());
        for seg in self.segments.iter_mut().chain(code_segments) {
            if seg.dirty {
                maps.push(seg.shared_map());
                seg.dirty = false;
            }
        }
        let referenced = self.live_bitset();
        let crc_of = |slot: u64| {
            let (seg, within, _) = self.locate(slot);
            self.segments[seg].crcs[within]
        };
        let rewrite_base = self.base_entries.is_none_or(|base| {
            self.changed.len() as u64 * self.config.idmap_rewrite_divisor > base
        });
        let (base, delta) = if rewrite_base {
            (Some(self.segment_copies()), Vec::new())
        } else {
            let delta = self
                .changed
                .iter()
                .map(|&id| match self.ids.get(&id) {
                    Some(&slot) => (id, slot, crc_of(slot)),
                    None => (id, DELETED_SLOT, 0),
                })
                .collect();
            (None, delta)
        };
        if base.is_some() {
            self.base_entries = Some(self.ids.len() as u64);
            self.changed = Default::default();
        }
        let meta = StoreMeta {
            element: self.config.element,
            dimension: self.config.dimension,
            slots_per_segment: self.config.slots_per_segment,
            segment_count: self.segments.len() as u32,
            live_count: self.ids.len() as u64,
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
                delta_name: format!("{file_prefix}{IDMAP_DELTA_FILE}"),
                meta: meta.encode(),
                base,
                delta,
                idmap: None,
                delta_bytes: Vec::new(),
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
        let info = checkpointer.commit_carrying(
            wal_lsn,
            metadata,
            &flushed.files(),
            &flushed.carried(),
        )?;
        self.publish_checkpoint(flushed, &info)?;
        Ok(info)
    }

    /// Copies of the segments' live bits, owners and checksums, for a new id map base to
    /// be built from outside the owner's lock: under it, only copies of whole arrays
    /// (12 bytes a slot; at ten million points, the entries built under the lock held it
    /// 234 ms).
    fn segment_copies(&self) -> Vec<SegmentCopy> {
        let sps = u64::from(self.config.slots_per_segment);
        self.segments
            .iter()
            .enumerate()
            .map(|(index, seg)| SegmentCopy {
                first_slot: index as u64 * sps,
                live: seg.live_words().to_vec(),
                owners: seg.owners.clone(),
                crcs: seg.crcs.clone(),
            })
            .collect()
    }

    /// One bit per slot, set for every live slot: the segments' live bits side by side.
    /// O(slots / 64) when a segment's slots fill whole words, as the default geometry's do.
    fn live_bitset(&self) -> Vec<u64> {
        let sps = u64::from(self.config.slots_per_segment);
        let mut out = Vec::new();
        for (index, seg) in self.segments.iter().enumerate() {
            let first = index as u64 * sps;
            let words = seg.live_words();
            if first.is_multiple_of(64) {
                out.resize((first / 64) as usize, 0);
                out.extend_from_slice(words);
                continue;
            }
            for (w, &word) in words.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    set_bit(
                        &mut out,
                        first + w as u64 * 64 + u64::from(bits.trailing_zeros()),
                    );
                    bits &= bits - 1;
                }
            }
        }
        out
    }

    /// The highest live slot, from the segments' live bits, last word first: O(1) when the
    /// last segment holds a live slot near its end (not a walk over every id).
    fn highest_live_slot(&self) -> Option<u64> {
        let sps = u64::from(self.config.slots_per_segment);
        self.segments
            .iter()
            .enumerate()
            .rev()
            .find_map(|(index, seg)| {
                let words = seg.live_words();
                let (w, word) = words.iter().enumerate().rev().find(|(_, w)| **w != 0)?;
                let bit = 63 - u64::from(word.leading_zeros());
                Some(index as u64 * sps + w as u64 * 64 + bit)
            })
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

    /// Removes trailing segments holding no live or protected slot, and shrinks the last
    /// one's file to what it uses. Removals are not synced: a segment file that comes back
    /// after a crash is past what the checkpoint needs and is removed again at open. The
    /// cut is (`Segment::shrink_to`).
    fn reclaim_trailing_segments(&mut self) -> vellum_fs::Result<()> {
        let max_used = self
            .highest_live_slot()
            .into_iter()
            .chain(self.pending.iter().map(|p| p.0))
            .max();
        let sps = u64::from(self.config.slots_per_segment);
        let needed = max_used.map_or(0, |s| s / sps + 1) as usize;
        let mut shrunk = false;
        while self.segments.len() > needed {
            let seg = self.segments.pop().expect("len > needed >= 0");
            let path = seg.path.clone();
            drop(seg);
            self.fs.remove_file(&path)?;
            shrunk = true;
        }
        self.truncate_codes(needed)?;
        // The last segment's file shrinks to the slots it still uses, rounded up to a whole
        // first allocation (`FIRST_SEGMENT_BYTES` of slots), when that saves at least an
        // eighth of it. Writes after a shrink grow it again by doubling.
        if let Some(max_used) = max_used {
            let first = (needed as u64 - 1) * sps;
            let used = (max_used - first + 1) as usize;
            let step = self.first_segment_slots() as usize;
            let target = used.div_ceil(step).saturating_mul(step).min(sps as usize);
            let last = self.segments.last_mut().expect("a used slot has a segment");
            if target <= last.capacity() - last.capacity() / 8 {
                shrunk |= last.shrink_to(target)?;
            }
        }
        if shrunk {
            let limit = self
                .segments
                .last()
                .map_or(0, |last| (needed as u64 - 1) * sps + last.capacity() as u64);
            let free = std::mem::take(&mut self.free);
            self.free = free.into_iter().filter(|s| s.0 < limit).collect();
            self.fresh = self.fresh.min(limit);
        }
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

/// One segment's live bits, owners and checksums as a checkpoint took them.
#[derive(Debug)]
struct SegmentCopy {
    first_slot: u64,
    live: Vec<u64>,
    owners: Vec<u64>,
    crcs: Vec<u32>,
}

/// Every live (id, slot, crc) of the copies, in slot order: one sequential pass.
fn live_entries(copies: &[SegmentCopy]) -> Vec<(u64, u64, u32)> {
    let mut out = Vec::new();
    for seg in copies {
        for (w, &word) in seg.live.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let within = w * 64 + bits.trailing_zeros() as usize;
                out.push((
                    seg.owners[within],
                    seg.first_slot + within as u64,
                    seg.crcs[within],
                ));
                bits &= bits - 1;
            }
        }
    }
    out
}

/// The encoded state files of a checkpoint.
#[derive(Debug)]
struct StoreFiles {
    meta_name: String,
    idmap_name: String,
    delta_name: String,
    meta: Vec<u8>,
    /// The segments' live bits, owners and checksums as taken under the owner's lock, when
    /// this checkpoint writes a new id map base (`None`: it carries the last one over);
    /// turned into sorted entries and encoded into `idmap` by `flush`, outside that lock.
    base: Option<Vec<SegmentCopy>>,
    /// The ids changed since the base, likewise (empty with a new base).
    delta: Vec<(u64, u64, u32)>,
    idmap: Option<Vec<u8>>,
    delta_bytes: Vec<u8>,
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
        if let Some(copies) = files.base.take() {
            let mut base = live_entries(&copies);
            drop(copies);
            base.sort_unstable_by_key(|e| e.0);
            files.idmap = Some(encode_idmap(&base));
        }
        let mut delta = std::mem::take(&mut files.delta);
        delta.sort_unstable_by_key(|e| e.0);
        files.delta_bytes = encode_idmap_delta(&delta);
        drop(delta);
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

    /// The files to commit: the meta file and the id map base, when this checkpoint writes
    /// a new one (both stored as is), and the id map delta (with the configured codec).
    /// Commit them with [`Checkpointer::commit_carrying`], carrying
    /// [`FlushedCheckpoint::carried`] over.
    pub fn files(&self) -> Vec<FileSpec<'_>> {
        let f = &self.files;
        let mut files = vec![FileSpec {
            name: &f.meta_name,
            bytes: &f.meta,
            codec: Codec::None,
        }];
        if let Some(idmap) = &f.idmap {
            // Stored as is: every open reads the base, and a stored file is mapped and
            // checksummed, not decoded (at 1M points, 20 MiB mapped in ~7 ms against ~45 ms
            // to decode 6 MiB of zstd; 3% more disk beside the vectors).
            files.push(FileSpec {
                name: &f.idmap_name,
                bytes: idmap,
                codec: Codec::None,
            });
        }
        files.push(FileSpec {
            name: &f.delta_name,
            bytes: &f.delta_bytes,
            codec: f.codec,
        });
        files
    }

    /// The files of the current generation this checkpoint carries over unchanged: the id
    /// map base, unless it writes a new one.
    pub fn carried(&self) -> Vec<&str> {
        let f = &self.files;
        if f.idmap.is_some() {
            Vec::new()
        } else {
            vec![f.idmap_name.as_str()]
        }
    }
}
