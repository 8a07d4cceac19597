//! The store: [`VectorStore`] open, upsert, delete, get, iteration and counters, over the
//! segments of [`crate::slots`]. Its checkpoint steps are in `checkpoint_steps.rs`, its checks in
//! `verify.rs`. No `unsafe` here: every read and write of a slot goes through
//! [`Segment`](crate::slots::Segment).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashSet;
use vellum_checkpoint::{Checkpointer, Codec, LoadedGeneration};
use vellum_fs::{DynFs, FailStop, create_dir_all_durable};

use crate::checkpoint_steps::InFlight;
use crate::error::{Error, Result};
use crate::idmap::IdMap;
use crate::segment::{
    ElementType, HEADER_BYTES, SegmentHeader, segment_file_name, segment_index_of, slot_bytes_for,
};
use crate::slots::Segment;
use crate::state::{
    IDMAP_DELTA_FILE, IDMAP_FILE, IdMapView, META_FILE, StateError, StoreMeta, merged,
};
/// About how many bytes of slots a new segment file starts with (at most a quarter of the
/// segment); it doubles as slots are taken, up to the whole segment
/// (`StoreConfig::slots_per_segment`).
pub const FIRST_SEGMENT_BYTES: usize = 256 << 10;

/// How a store is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Elements per vector.
    pub dimension: u32,
    /// Element type (only `f32` so far).
    pub element: ElementType,
    /// Slots per segment file.
    pub slots_per_segment: u32,
    /// Codec of the id map delta in checkpoints (the base is stored as is, so that open
    /// maps it rather than decoding it).
    pub idmap_codec: Codec,
    /// A checkpoint writes a new id map base once the ids changed since the last one
    /// outnumber `base entries / idmap_rewrite_divisor` (at least 1); until then it carries
    /// the base over and writes only the delta. Larger: smaller checkpoints more often, a
    /// longer delta to apply at open (at most this fraction of the base). Default 8.
    pub idmap_rewrite_divisor: u64,
}

impl StoreConfig {
    /// `f32` vectors of `dimension` elements, segments of about 64 MiB, zstd id maps.
    pub fn new(dimension: u32) -> Self {
        let slot = slot_bytes_for(ElementType::F32, dimension.max(1)) as u64;
        StoreConfig {
            dimension,
            element: ElementType::F32,
            slots_per_segment: ((64u64 << 20) / slot).clamp(1, 1 << 20) as u32,
            idmap_codec: Codec::ZSTD,
            idmap_rewrite_divisor: crate::checkpoint_steps::BASE_REWRITE_DIVISOR,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.element != ElementType::F32 {
            return Err(Error::InvalidConfig {
                reason: format!("vectors are f32, not {}", self.element),
            });
        }
        if self.idmap_rewrite_divisor == 0 {
            return Err(Error::InvalidConfig {
                reason: "idmap_rewrite_divisor must be at least 1".into(),
            });
        }
        let header = SegmentHeader {
            element: self.element,
            dimension: self.dimension,
            slot_bytes: slot_bytes_for(self.element, self.dimension) as u32,
            slots_per_segment: self.slots_per_segment,
            segment_index: 0,
        };
        header.check().map_err(|e| Error::InvalidConfig {
            reason: e.to_string(),
        })
    }
}

/// Where an open store's state comes from: a loaded checkpoint generation.
#[derive(Debug, Clone, Copy)]
pub struct StoreCheckpoint<'a> {
    /// The generation loaded by [`Checkpointer::open`].
    pub loaded: &'a LoadedGeneration,
    /// The prefix the store's files were committed under (see
    /// [`VectorStore::prepare_checkpoint`]).
    pub file_prefix: &'a str,
    /// The oldest generation the checkpointer retains
    /// ([`Checkpointer::oldest_retained_generation`]).
    pub oldest_retained_generation: u64,
}

/// Counters describing a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Live vectors.
    pub live: u64,
    /// Segment files mapped.
    pub segments: u32,
    /// Slots in all segments.
    pub slot_capacity: u64,
    /// Slots reusable now.
    pub free_slots: u64,
    /// Slots waiting for a checkpoint (or for older generations to expire) before reuse.
    pub protected_slots: u64,
    /// The checkpoint generation the store was last made durable at (0: none).
    pub durable_generation: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
}

/// Fixed-dimension vectors in mapped segment files. See the crate docs for the durability
/// contract and the external-modification hazard.
#[derive(Debug)]
pub struct VectorStore {
    pub(crate) fs: DynFs,
    pub(crate) dir: PathBuf,
    pub(crate) config: StoreConfig,
    pub(crate) slot_bytes: usize,
    pub(crate) vector_bytes: usize,
    pub(crate) segments: Vec<Segment>,
    /// id -> slot.
    pub(crate) ids: IdMap,
    /// Live slots whose CRC has not been checked since open; at zero, `get` skips the check.
    pub(crate) unverified: AtomicU64,
    /// Slots below `fresh` reusable now, lowest first (so the store stays compact). Never
    /// handed-out slots are not listed: memory follows the slots used, not the segments.
    pub(crate) free: BinaryHeap<Reverse<u64>>,
    /// The lowest slot never handed out since open (every slot from it to the end of the
    /// last segment is free).
    pub(crate) fresh: u64,
    /// One bit per slot: referenced by the last durable checkpoint.
    pub(crate) durable: Vec<u64>,
    /// Slots no longer live but referenced by a retained generation: (slot, newest
    /// generation referencing it).
    pub(crate) pending: Vec<(u64, u64)>,
    pub(crate) durable_generation: u64,
    /// A checkpoint prepared but not yet published.
    pub(crate) in_flight: Option<InFlight>,
    /// The id map base the last prepared checkpoint wrote or carried: its entry count, or
    /// `None` before the first (the next checkpoint writes one).
    pub(crate) base_entries: Option<u64>,
    /// Ids added, replaced, moved or deleted since that base: the next checkpoint's delta.
    /// Grows with the writes since the base; a checkpoint writes a new base (and empties
    /// it) once it exceeds `1 / StoreConfig::idmap_rewrite_divisor` of the base.
    pub(crate) changed: FxHashSet<u64>,
    pub(crate) failstop: Arc<FailStop>,
    /// The attached code plane, written with every vector (`codes.rs`).
    pub(crate) codes: Option<crate::codes::CodePlane>,
    /// A code plane being encoded beside it (`codes.rs`).
    pub(crate) staged: Option<crate::codes::Staged>,
}

pub(crate) fn bit(set: &[u64], i: u64) -> bool {
    set.get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

pub(crate) fn set_bit(set: &mut Vec<u64>, i: u64) {
    let w = (i / 64) as usize;
    if set.len() <= w {
        set.resize(w + 1, 0);
    }
    set[w] |= 1 << (i % 64);
}

impl VectorStore {
    /// Opens the store in `dir` (creating it if needed) at the state of `from`, or empty when
    /// there is no checkpoint yet. Segment files beyond what the checkpoint references (left
    /// by growth after it) are removed; the caller then replays its WAL.
    pub fn open(
        fs: DynFs,
        dir: &Path,
        config: StoreConfig,
        from: Option<StoreCheckpoint<'_>>,
    ) -> Result<VectorStore> {
        config.validate()?;
        create_dir_all_durable(fs.as_ref(), dir)?;
        let slot_bytes = slot_bytes_for(config.element, config.dimension);
        let mut store = VectorStore {
            fs,
            dir: dir.to_path_buf(),
            config,
            slot_bytes,
            vector_bytes: config.dimension as usize * config.element.size_bytes(),
            segments: Vec::new(),
            ids: IdMap::default(),
            unverified: AtomicU64::new(0),
            free: BinaryHeap::new(),
            fresh: 0,
            durable: Vec::new(),
            pending: Vec::new(),
            durable_generation: 0,
            in_flight: None,
            base_entries: None,
            changed: FxHashSet::default(),
            failstop: Arc::new(FailStop::new()),
            codes: None,
            staged: None,
        };
        let mut sps = u64::from(config.slots_per_segment);
        let mut needed_segments = 0u64;
        if let Some(from) = from {
            let generation = from.loaded.generation();
            let file = |name: &str| -> Result<&[u8]> {
                let full = format!("{}{name}", from.file_prefix);
                from.loaded.file(&full).ok_or(Error::StateMissing {
                    name: full,
                    generation,
                })
            };
            let corrupt = |name: &str, detail: StateError| Error::StateCorrupt {
                name: format!("{}{name}", from.file_prefix),
                generation,
                detail,
            };
            let meta = StoreMeta::decode(file(META_FILE)?).map_err(|e| corrupt(META_FILE, e))?;
            let meta_path = PathBuf::from(format!("{}{META_FILE}", from.file_prefix));
            let mismatch =
                |field: &'static str, stored: String, configured: String| Error::ConfigMismatch {
                    path: meta_path.clone(),
                    field,
                    stored,
                    configured,
                };
            if meta.element != config.element {
                return Err(mismatch(
                    "element type",
                    meta.element.to_string(),
                    config.element.to_string(),
                ));
            }
            if meta.dimension != config.dimension {
                return Err(mismatch(
                    "dimension",
                    meta.dimension.to_string(),
                    config.dimension.to_string(),
                ));
            }
            if meta.slots_per_segment != config.slots_per_segment {
                // What is stored wins: the segment geometry is chosen when a store is
                // created, and the option only applies to new stores (a tool opening a
                // store made with another setting must not be refused).
                store.config.slots_per_segment = meta.slots_per_segment;
                store.config.validate()?;
                sps = u64::from(meta.slots_per_segment);
            }
            let base = IdMapView::decode(file(IDMAP_FILE)?).map_err(|e| corrupt(IDMAP_FILE, e))?;
            let delta_name = format!("{}{IDMAP_DELTA_FILE}", from.file_prefix);
            let delta = match from.loaded.file(&delta_name) {
                Some(bytes) => {
                    Some(IdMapView::decode_delta(bytes).map_err(|e| corrupt(IDMAP_DELTA_FILE, e))?)
                }
                None => None,
            };
            let idmap = merged(base, delta);
            // The delta of the next checkpoint starts from this base: the ids the loaded
            // delta names are still changed relative to it.
            store.base_entries = Some(base.len() as u64);
            store.changed = delta.iter().flat_map(|d| d.iter().map(|e| e.0)).collect();
            let live = idmap.len();
            if live as u64 != meta.live_count {
                return Err(corrupt(
                    META_FILE,
                    StateError::InvalidField {
                        field: "live count",
                        value: meta.live_count,
                    },
                ));
            }
            let limit = u64::from(meta.segment_count) * sps;
            let mut referenced: Vec<u64> = Vec::new();
            let mut max_slot: Option<u64> = None;
            for &(_, slot, _) in &idmap {
                if slot >= limit || bit(&referenced, slot) {
                    return Err(corrupt(
                        if delta.is_some() {
                            IDMAP_DELTA_FILE
                        } else {
                            IDMAP_FILE
                        },
                        StateError::InvalidField {
                            field: "slot",
                            value: slot,
                        },
                    ));
                }
                set_bit(&mut referenced, slot);
                max_slot = max_slot.max(Some(slot));
            }
            // Sorted by id (merged from two sorted files), each id once: no hashing.
            store.ids = IdMap::from_sorted(idmap.iter().map(|e| (e.0, e.1)).collect());
            store.durable = referenced.clone();
            // Protected slots whose generations are no longer retained are free now (and
            // their segments may already have been reclaimed).
            let pending: Vec<(u64, u64)> = meta
                .pending
                .into_iter()
                .filter(|&(_, tag)| tag >= from.oldest_retained_generation)
                .collect();
            for &(slot, tag) in &pending {
                if slot >= limit || bit(&referenced, slot) || tag >= generation {
                    return Err(corrupt(
                        META_FILE,
                        StateError::InvalidField {
                            field: "protected slot",
                            value: slot,
                        },
                    ));
                }
                set_bit(&mut referenced, slot);
                max_slot = max_slot.max(Some(slot));
            }
            store.pending = pending;
            store.durable_generation = generation;
            // Only segments holding a referenced slot are needed: trailing ones may have been
            // reclaimed after this generation was published.
            needed_segments = max_slot.map_or(0, |s| s / sps + 1);
            for index in 0..needed_segments as u32 {
                let seg = store.open_segment(index)?;
                store.segments.push(seg);
            }
            // Every slot the generation references lies inside its segment file (a segment
            // grows before a slot past its end is written, and the checkpoint's flush made
            // that length durable).
            let mut needed_slots = vec![0usize; store.segments.len()];
            for slot in idmap
                .iter()
                .map(|e| e.1)
                .chain(store.pending.iter().map(|p| p.0))
            {
                let (seg, within, _) = store.locate(slot);
                needed_slots[seg] = needed_slots[seg].max(within + 1);
            }
            for (index, (segment, &needed)) in store.segments.iter().zip(&needed_slots).enumerate()
            {
                if needed > segment.capacity() {
                    return Err(Error::SegmentSize {
                        path: segment.path.clone(),
                        expected: store
                            .expected_header(index as u32)
                            .len_for_slots(needed as u32),
                        found: segment.file_len_bytes(),
                    });
                }
            }
            for (id, slot, crc) in idmap {
                let (seg, within, _) = store.locate(slot);
                store.segments[seg].crcs[within] = crc;
                store.segments[seg].set_live(within, id);
            }
            store.unverified = AtomicU64::new(store.ids.len() as u64);
            // Every slot neither live nor protected is free: those below the highest used
            // one are listed, the rest are fresh.
            store.fresh = max_slot.map_or(0, |s| s + 1);
            let mut free = Vec::with_capacity((store.fresh - store.ids.len() as u64) as usize);
            for slot in 0..store.fresh {
                if !bit(&referenced, slot) {
                    free.push(Reverse(slot));
                }
            }
            store.free = BinaryHeap::from(free);
        }
        // Segment files past the checkpoint's are leftovers of growth after it: remove them
        // (not synced: if a crash brings one back, the next open removes it again).
        for name in store.fs.list_dir(dir)? {
            if segment_index_of(&name).is_some_and(|i| u64::from(i) >= needed_segments) {
                store.fs.remove_file(&dir.join(&name))?;
            }
        }
        Ok(store)
    }

    /// Opens with the generation a [`Checkpointer`] loaded (file prefix `""`).
    pub fn open_from(
        fs: DynFs,
        dir: &Path,
        config: StoreConfig,
        checkpointer: &Checkpointer,
        loaded: Option<&LoadedGeneration>,
    ) -> Result<VectorStore> {
        let from = loaded.map(|loaded| StoreCheckpoint {
            loaded,
            file_prefix: "",
            oldest_retained_generation: checkpointer
                .oldest_retained_generation()
                .unwrap_or(loaded.generation()),
        });
        VectorStore::open(fs, dir, config, from)
    }

    pub(crate) fn locate(&self, slot: u64) -> (usize, usize, usize) {
        let sps = u64::from(self.config.slots_per_segment);
        let seg = (slot / sps) as usize;
        let within = (slot % sps) as usize;
        (seg, within, HEADER_BYTES + within * self.slot_bytes)
    }

    /// The bytes of a slot, borrowed from the map for as long as `self` is borrowed.
    fn slot_bytes(&self, slot: u64) -> (&Segment, usize, usize, &[u8]) {
        let (seg_index, within, offset) = self.locate(slot);
        let seg = &self.segments[seg_index];
        (seg, within, offset, seg.bytes(offset, self.vector_bytes))
    }

    /// The vector bytes at `offset` of `seg`'s map.
    pub(crate) fn checked_vector(&self, id: u64, slot: u64) -> Result<&[f32]> {
        let (seg, within, offset, bytes) = self.slot_bytes(slot);
        self.checked(seg, within, offset, bytes, || id)
    }

    /// `bytes` (slot `within` of `seg`, at `offset`) as a vector, its CRC checked on the
    /// first read since open.
    fn checked<'s>(
        &'s self,
        seg: &'s Segment,
        within: usize,
        offset: usize,
        bytes: &'s [u8],
        id: impl FnOnce() -> u64,
    ) -> Result<&'s [f32]> {
        // Once every live slot has been checked (or written) since open, skip the bitmap.
        if self.unverified.load(Ordering::Relaxed) != 0 && !seg.is_verified(within) {
            let computed = crc32fast::hash(bytes);
            let expected = seg.crcs[within];
            if computed != expected {
                return Err(Error::SlotCorrupt {
                    id: id(),
                    path: seg.path.clone(),
                    offset: offset as u64,
                    expected,
                    computed,
                });
            }
            if seg.set_verified(within) {
                self.unverified.fetch_sub(1, Ordering::Relaxed);
            }
        }
        // Slots start at HEADER_BYTES plus a multiple of 64 bytes in a page-aligned map, so
        // the bytes are 4-byte aligned for f32; bytemuck checks it anyway.
        Ok(bytemuck::cast_slice(bytes))
    }

    /// The vector stored under `id`, straight from the map (no copy). The first read of a
    /// slot after open checks its CRC; a mismatch is [`Error::SlotCorrupt`].
    pub fn get(&self, id: u64) -> Result<Option<&[f32]>> {
        match self.ids.get(&id) {
            None => Ok(None),
            Some(&slot) => self.checked_vector(id, slot).map(Some),
        }
    }

    /// The slot holding `id`'s vector: a key that changes when the vector is replaced
    /// (an upsert of a different vector moves it to a fresh slot) and may be reused for
    /// another id once the old vector is released. Index structures may key vectors by slot
    /// to read them with [`VectorStore::vector_at`], skipping the id lookup.
    pub fn slot_of(&self, id: u64) -> Option<u64> {
        self.ids.get(&id).copied()
    }

    /// The id whose current vector is in `slot`, if the slot is live.
    pub fn id_at(&self, slot: u64) -> Option<u64> {
        let (seg, within, _) = self.locate(slot);
        let seg = self.segments.get(seg)?;
        seg.is_live(within).then(|| seg.owners[within])
    }

    /// The vector in `slot` (checked like [`VectorStore::get`]), or `None` if the slot is
    /// not live. No id lookup: one bit test and the slot's address.
    #[inline]
    pub fn vector_at(&self, slot: u64) -> Result<Option<&[f32]>> {
        let (seg_index, within, offset) = self.locate(slot);
        let Some(seg) = self.segments.get(seg_index) else {
            return Ok(None);
        };
        if !seg.is_live(within) {
            return Ok(None);
        }
        let bytes = seg.bytes(offset, self.vector_bytes);
        // The owner is read only to name a damaged slot: the hot path touches the live bit
        // and the vector alone.
        self.checked(seg, within, offset, bytes, || seg.owners[within])
            .map(Some)
    }

    /// A bound on the slots in use: every live slot is below it (slots from it on were
    /// never handed out since open). A scan of `0..slot_bound()` in ranges, checking
    /// [`VectorStore::id_at`], visits every live slot without listing them first.
    pub fn slot_bound(&self) -> u64 {
        self.fresh
    }

    /// Every live slot, in no particular order.
    pub fn slots(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.values().copied()
    }

    /// Whether `id` is stored.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains_key(&id)
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Elements per vector.
    pub fn dimension(&self) -> u32 {
        self.config.dimension
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Every live `(id, vector)`, in no particular order, each checked like [`Self::get`].
    pub fn iter(&self) -> impl Iterator<Item = Result<(u64, &[f32])>> + '_ {
        self.ids
            .iter()
            .map(|(&id, &slot)| self.checked_vector(id, slot).map(|v| (id, v)))
    }

    /// Every live id, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.keys().copied()
    }

    /// Stores `vector` under `id`, replacing any earlier vector (into a fresh slot: the old
    /// one is never overwritten). Idempotent: storing the vector already held changes
    /// nothing. Not durable until the next checkpoint; the caller's WAL covers it until then.
    pub fn upsert(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        self.failstop.check()?;
        if vector.len() != self.config.dimension as usize {
            return Err(Error::DimensionMismatch {
                id,
                expected: self.config.dimension,
                found: vector.len(),
            });
        }
        let bytes: &[u8] = bytemuck::cast_slice(vector);
        let crc = crc32fast::hash(bytes);
        if let Some(&old) = self.ids.get(&id) {
            // Same vector already stored (replay of a record already applied)?
            let (seg, within, _, current) = self.slot_bytes(old);
            if seg.crcs[within] == crc && current == bytes {
                return Ok(());
            }
        }
        let slot = self.allocate_slot()?;
        self.write_slot(id, slot, bytes, crc);
        self.write_code(slot, vector, crc)?;
        if let Some(old) = self.ids.insert(id, slot) {
            self.release(old);
        }
        self.changed.insert(id);
        Ok(())
    }

    /// Writes a vector's `bytes` (whose CRC is `crc`) into `slot`, fresh from
    /// `allocate_slot`, as `id`'s (the id map is the caller's to update).
    pub(crate) fn write_slot(&mut self, id: u64, slot: u64, bytes: &[u8], crc: u32) {
        let (seg_index, within, offset) = self.locate(slot);
        let seg = &mut self.segments[seg_index];
        // `slot` came from the free list, so no live id refers to it and no checkpoint names
        // it: whatever part of this write a prepared checkpoint flushing this map on another
        // thread carries to the file is not referenced by anything durable. (Memory safety
        // is `Segment::write`'s argument.)
        seg.write(offset, bytes);
        seg.crcs[within] = crc;
        seg.set_verified(within);
        seg.set_live(within, id);
        seg.dirty = true;
    }

    /// Stores many vectors (all dimensions are checked before anything is written).
    pub fn upsert_batch<'v>(
        &mut self,
        items: impl IntoIterator<Item = (u64, &'v [f32])> + Clone,
    ) -> Result<()> {
        for (id, v) in items.clone() {
            if v.len() != self.config.dimension as usize {
                return Err(Error::DimensionMismatch {
                    id,
                    expected: self.config.dimension,
                    found: v.len(),
                });
            }
        }
        for (id, v) in items {
            self.upsert(id, v)?;
        }
        Ok(())
    }

    /// Removes `id`; returns whether it was present. Idempotent. Its slot is reused only
    /// once no retained checkpoint references it.
    pub fn delete(&mut self, id: u64) -> Result<bool> {
        self.failstop.check()?;
        match self.ids.remove(&id) {
            Some(old) => {
                self.release(old);
                self.changed.insert(id);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub(crate) fn release(&mut self, slot: u64) {
        // A live slot leaving before its first check no longer counts as unverified.
        let (seg, within, _) = self.locate(slot);
        self.segments[seg].clear_live(within);
        if self.segments[seg].set_verified(within) {
            self.unverified.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(in_flight) = &mut self.in_flight
            && bit(&in_flight.referenced, slot)
        {
            // Named by the checkpoint being written (and maybe by the durable one too):
            // protected by the generation that checkpoint gets when published.
            in_flight.released.push(slot);
        } else if bit(&self.durable, slot) {
            self.pending.push((slot, self.durable_generation));
        } else {
            self.free.push(Reverse(slot));
        }
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let sps = u64::from(self.config.slots_per_segment);
        StoreStats {
            live: self.ids.len() as u64,
            segments: self.segments.len() as u32,
            slot_capacity: self.segments.len() as u64 * sps,
            free_slots: self.free.len() as u64
                + (self.segments.len() as u64 * u64::from(self.config.slots_per_segment))
                    .saturating_sub(self.fresh),
            protected_slots: self.pending.len() as u64,
            durable_generation: self.durable_generation,
            segment_bytes: self.segments.iter().map(Segment::file_len_bytes).sum(),
        }
    }

    /// The directory holding the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment files of the store as it is now, as names in [`VectorStore::dir`], in
    /// segment order: every slot the store or its last published checkpoint references is
    /// in one of them (and no other segment file is left in the directory). Copying these
    /// with the files of that checkpoint, while the store is not written, copies the store
    /// at the checkpoint; [`is_segment_file_name`](crate::segment::is_segment_file_name)
    /// recognises each of them.
    pub fn segment_files(&self) -> Vec<String> {
        (0..self.segments.len() as u32)
            .map(segment_file_name)
            .collect()
    }
}
