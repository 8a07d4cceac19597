//! Zero-copy vector storage for Vellum.
//!
//! A [`VectorStore`] keeps fixed-dimension `f32` vectors in *segment files* of fixed-size
//! slots, read and written through memory maps, with a `u64` id -> slot map in memory. A
//! [`VectorStore::get`] returns a `&[f32]` straight from the mapped memory.
//!
//! # Durability contract
//!
//! The store is durable only at checkpoints. Between checkpoints the caller's WAL is the
//! truth: after a crash, [`VectorStore::open`] restores the state of the last checkpoint,
//! and the caller replays its WAL from that checkpoint's LSN with [`VectorStore::upsert`]
//! and [`VectorStore::delete`], which are idempotent (replaying a record whose effect is
//! already present changes nothing).
//!
//! A checkpoint ([`VectorStore::checkpoint`], or the three steps below to add files of your
//! own and to keep the store usable while the files are written) flushes every dirty map
//! first (`msync`), then publishes the id map and the list of protected slots through
//! `vellum-checkpoint`, which syncs its files and publishes its manifest last. Only then may
//! the caller truncate its WAL, and only below the oldest retained generation's LSN.
//!
//! The three steps are [`VectorStore::prepare_checkpoint`] (in memory, fast: encodes the id
//! map and marks the slots it references), [`PreparedCheckpoint::flush`] (the `msync`, which
//! needs no borrow of the store) and, once the checkpointer has committed the files,
//! [`VectorStore::publish_checkpoint`]. Between the first and the last the store takes
//! writes as usual: a slot the prepared checkpoint references is protected like a durable
//! one, so a delete or replace never frees it for reuse before the generation naming it is
//! published (and then only once no retained generation names it).
//!
//! Mapped pages can reach the disk at any moment, so:
//!
//! * **Copy-on-write.** A slot that the last durable checkpoint (or any older retained one)
//!   references is never written. An update writes a fresh slot; the old one becomes
//!   reusable only after a checkpoint that no longer references it is durable and every
//!   retained generation that does reference it has been dropped.
//! * **Checksums.** The id map records a CRC-32 of each slot's bytes. The first `get` of a
//!   slot after open (and [`VectorStore::verify`]) checks it, so a torn or rotted page is
//!   reported as [`Error::SlotCorrupt`], never served as a vector.
//! * **Growth never remaps.** More slots come from a new segment file (created at full size,
//!   its name synced, then mapped; its bytes and length become durable with the next
//!   checkpoint's flush); existing maps never move, so a `&[f32]` stays
//!   valid for as long as it borrows the store. Wholly free trailing segments are removed
//!   after a checkpoint no longer needs them.
//!
//! # External modification hazard
//!
//! The segment files are mapped. If another process writes or truncates them while the store
//! is open, `get` may return changed bytes or the process may be killed by `SIGBUS`. The
//! store's directory must belong to this store alone.
//!
//! # On the real file system
//!
//! [`VectorStore::open_path`] opens a store and its checkpointer under one directory by
//! path, so a user of this crate alone needs nothing from `vellum-fs` (the checkpoint crate
//! is re-exported as [`checkpoint`]):
//!
//! ```
//! use vellum_mmap_vectors::{StoreConfig, VectorStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! {
//!     let (mut store, mut checkpointer) =
//!         VectorStore::open_path(dir.path(), StoreConfig::new(3))?;
//!     store.upsert(7, &[1.0, 2.0, 3.0])?;
//!     store.upsert(8, &[4.0, 5.0, 6.0])?;
//!     store.delete(8)?;
//!     // Durable from here on, as of LSN 3 of the caller's WAL (which logged the writes).
//!     let info = store.checkpoint(&mut checkpointer, 3, b"")?;
//!     assert_eq!(info.generation, 1);
//!     store.upsert(9, &[7.0, 8.0, 9.0])?; // after the checkpoint: the WAL's to replay
//! }
//! // Reopen, as after a crash: the store is at the checkpoint; replay the WAL after its LSN.
//! let (store, checkpointer) = VectorStore::open_path(dir.path(), StoreConfig::new(3))?;
//! assert_eq!(checkpointer.current().map(|m| m.wal_lsn), Some(3));
//! assert_eq!(store.get(7)?, Some(&[1.0, 2.0, 3.0][..]));
//! assert_eq!(store.get(8)?, None);
//! assert_eq!(store.get(9)?, None);
//! assert!(store.verify()?.damaged.is_empty());
//! # Ok(())
//! # }
//! ```

mod by_path;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod segment;
pub mod state;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;
use vellum_checkpoint::{Checkpointer, Codec, CommitInfo, FileSpec, LoadedGeneration};
use vellum_fs::{DynFs, FailStop, File, MapMut, create_dir_all_durable};

pub use by_path::{CHECKPOINTS_DIR, VECTORS_DIR};
pub use error::{Error, Result};
pub use segment::{ElementType, HeaderError, SegmentHeader};
pub use state::StateError;
/// The checkpoint crate this store commits through ([`Checkpointer`] and its configuration).
pub use vellum_checkpoint as checkpoint;

use segment::{HEADER_BYTES, segment_file_name, segment_index_of, slot_bytes_for};
use state::{IdMapView, StoreMeta, encode_idmap};

/// Name of the meta file inside a checkpoint generation (after the caller's prefix).
pub const META_FILE: &str = "vectors.meta";
/// Name of the id map file inside a checkpoint generation (after the caller's prefix).
pub const IDMAP_FILE: &str = "vectors.idmap";

/// How a store is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Elements per vector.
    pub dimension: u32,
    /// Element type (only `f32` so far).
    pub element: ElementType,
    /// Slots per segment file.
    pub slots_per_segment: u32,
    /// Codec of the id map in checkpoints.
    pub idmap_codec: Codec,
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
        }
    }

    fn validate(&self) -> Result<()> {
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

/// One mapped segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Shared with a prepared checkpoint that flushes it while the store goes on.
    map: Arc<MapMut>,
    /// Kept open for the life of the map.
    _file: Box<dyn File>,
    /// One bit per slot: its bytes were checked against (or written with) its CRC.
    verified: Box<[AtomicU64]>,
    /// The CRC of each live slot's vector bytes.
    crcs: Box<[u32]>,
    /// The id each live slot holds (stale for free slots).
    owners: Box<[u64]>,
    /// One bit per slot: live (holds the current vector of `owners[slot]`).
    live: Box<[u64]>,
    /// Written since the last checkpoint.
    dirty: bool,
}

impl Segment {
    fn is_live(&self, i: usize) -> bool {
        self.live[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_live(&mut self, i: usize, id: u64) {
        self.owners[i] = id;
        self.live[i / 64] |= 1 << (i % 64);
    }

    fn clear_live(&mut self, i: usize) {
        self.live[i / 64] &= !(1 << (i % 64));
    }

    fn is_verified(&self, i: usize) -> bool {
        self.verified[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// Sets the bit; returns whether it was clear before.
    fn set_verified(&self, i: usize) -> bool {
        let mask = 1 << (i % 64);
        self.verified[i / 64].fetch_or(mask, Ordering::Relaxed) & mask == 0
    }
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

/// A damaged slot found by [`VectorStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFault {
    /// The id whose vector is damaged.
    pub id: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Byte offset of the slot.
    pub offset: u64,
}

/// What [`VectorStore::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Live vectors checked.
    pub checked: u64,
    /// Vectors whose bytes do not match their checksum.
    pub damaged: Vec<SlotFault>,
}

/// Fixed-dimension vectors in mapped segment files. See the crate docs for the durability
/// contract and the external-modification hazard.
#[derive(Debug)]
pub struct VectorStore {
    fs: DynFs,
    dir: PathBuf,
    config: StoreConfig,
    slot_bytes: usize,
    vector_bytes: usize,
    segments: Vec<Segment>,
    /// id -> slot.
    ids: FxHashMap<u64, u64>,
    /// Live slots whose CRC has not been checked since open; at zero, `get` skips the check.
    unverified: AtomicU64,
    /// Slots reusable now, lowest first (so the store stays compact).
    free: BinaryHeap<Reverse<u64>>,
    /// One bit per slot: referenced by the last durable checkpoint.
    durable: Vec<u64>,
    /// Slots no longer live but referenced by a retained generation: (slot, newest
    /// generation referencing it).
    pending: Vec<(u64, u64)>,
    durable_generation: u64,
    /// A checkpoint prepared but not yet published.
    in_flight: Option<InFlight>,
    failstop: Arc<FailStop>,
}

/// What the store remembers of a prepared, unpublished checkpoint.
#[derive(Debug)]
struct InFlight {
    /// One bit per slot the prepared id map references.
    referenced: Vec<u64>,
    /// Slots among those released since: reusable only after the generation is published
    /// and expired.
    released: Vec<u64>,
}

fn bit(set: &[u64], i: u64) -> bool {
    set.get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_bit(set: &mut Vec<u64>, i: u64) {
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
            ids: FxHashMap::default(),
            unverified: AtomicU64::new(0),
            free: BinaryHeap::new(),
            durable: Vec::new(),
            pending: Vec::new(),
            durable_generation: 0,
            in_flight: None,
            failstop: Arc::new(FailStop::new()),
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
            let idmap = IdMapView::decode(file(IDMAP_FILE)?).map_err(|e| corrupt(IDMAP_FILE, e))?;
            if idmap.len() as u64 != meta.live_count {
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
            store.ids.reserve(idmap.len());
            for (id, slot, _) in idmap.iter() {
                if slot >= limit || bit(&referenced, slot) {
                    return Err(corrupt(
                        IDMAP_FILE,
                        StateError::InvalidField {
                            field: "slot",
                            value: slot,
                        },
                    ));
                }
                set_bit(&mut referenced, slot);
                max_slot = max_slot.max(Some(slot));
                store.ids.insert(id, slot);
            }
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
            for (id, slot, crc) in idmap.iter() {
                let (seg, within, _) = store.locate(slot);
                store.segments[seg].crcs[within] = crc;
                store.segments[seg].set_live(within, id);
            }
            store.unverified = AtomicU64::new(store.ids.len() as u64);
            // Every slot neither live nor protected is free.
            let capacity = needed_segments * sps;
            let mut free = Vec::with_capacity((capacity - store.ids.len() as u64) as usize);
            for slot in 0..capacity {
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

    fn expected_header(&self, index: u32) -> SegmentHeader {
        SegmentHeader {
            element: self.config.element,
            dimension: self.config.dimension,
            slot_bytes: self.slot_bytes as u32,
            slots_per_segment: self.config.slots_per_segment,
            segment_index: index,
        }
    }

    fn open_segment(&self, index: u32) -> Result<Segment> {
        let path = self.dir.join(segment_file_name(index));
        let file = match self.fs.open(&path) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Err(Error::SegmentMissing { path }),
            Err(e) => return Err(e.into()),
        };
        let expected = self.expected_header(index);
        let len = file.len()?;
        if len != expected.file_len_bytes() {
            return Err(Error::SegmentSize {
                path,
                expected: expected.file_len_bytes(),
                found: len,
            });
        }
        let mut page = vec![0u8; HEADER_BYTES];
        file.read_at(&mut page, 0)?;
        let header = SegmentHeader::decode(&page).map_err(|detail| Error::SegmentHeader {
            path: path.clone(),
            detail,
        })?;
        if header != expected {
            let (field, stored, configured) = if header.dimension != expected.dimension {
                ("dimension", header.dimension, expected.dimension)
            } else if header.slots_per_segment != expected.slots_per_segment {
                (
                    "slots per segment",
                    header.slots_per_segment,
                    expected.slots_per_segment,
                )
            } else {
                ("segment index", header.segment_index, index)
            };
            return Err(Error::ConfigMismatch {
                path,
                field,
                stored: stored.to_string(),
                configured: configured.to_string(),
            });
        }
        let map = Arc::new(file.map_mut(len as usize)?);
        Ok(Segment {
            path,
            map,
            _file: file,
            verified: fresh_bits(self.config.slots_per_segment),
            crcs: vec![0; self.config.slots_per_segment as usize].into_boxed_slice(),
            owners: vec![0; self.config.slots_per_segment as usize].into_boxed_slice(),
            live: vec![0; (self.config.slots_per_segment as usize).div_ceil(64)].into_boxed_slice(),
            dirty: false,
        })
    }

    /// Adds a segment: created at full size with its header, its name synced, then mapped.
    /// Its slots join the free list.
    fn grow(&mut self) -> Result<()> {
        let index = self.segments.len() as u32;
        let path = self.dir.join(segment_file_name(index));
        let header = self.expected_header(index);
        let seg = self.failstop.run(|| {
            let file = self.fs.create(&path)?;
            file.allocate(header.file_len_bytes())?;
            file.write_at(&header.encode(), 0)?;
            // No `sync_data` here: a new segment always has a slot written into it, so it is
            // dirty at the next checkpoint, whose flush of the whole map (`msync`, which
            // syncs the file's range and its size) makes header, length and slots durable
            // before the id map naming them is published. Until then nothing durable
            // references the segment. The name, though, needs its directory synced (a
            // checkpoint naming its slots must find the file).
            self.fs.sync_dir(&self.dir)?;
            let map = Arc::new(file.map_mut(header.file_len_bytes() as usize)?);
            Ok(Segment {
                path: path.clone(),
                map,
                _file: file,
                verified: fresh_bits(self.config.slots_per_segment),
                crcs: vec![0; self.config.slots_per_segment as usize].into_boxed_slice(),
                owners: vec![0; self.config.slots_per_segment as usize].into_boxed_slice(),
                live: vec![0; (self.config.slots_per_segment as usize).div_ceil(64)]
                    .into_boxed_slice(),
                dirty: false,
            })
        })?;
        let sps = u64::from(self.config.slots_per_segment);
        let first = u64::from(index) * sps;
        self.free.extend((first..first + sps).map(Reverse));
        self.segments.push(seg);
        Ok(())
    }

    fn locate(&self, slot: u64) -> (usize, usize, usize) {
        let sps = u64::from(self.config.slots_per_segment);
        let seg = (slot / sps) as usize;
        let within = (slot % sps) as usize;
        (seg, within, HEADER_BYTES + within * self.slot_bytes)
    }

    /// The bytes of a slot, borrowed from the map for as long as `self` is borrowed.
    fn slot_bytes(&self, slot: u64) -> (&Segment, usize, usize, &[u8]) {
        let (seg_index, within, offset) = self.locate(slot);
        let seg = &self.segments[seg_index];
        (seg, within, offset, self.bytes_in(seg, offset))
    }

    /// The vector bytes at `offset` of `seg`'s map.
    fn bytes_in<'s>(&'s self, seg: &'s Segment, offset: usize) -> &'s [u8] {
        assert!(offset + self.vector_bytes <= seg.map.len());
        // SAFETY: in bounds (asserted above; the map covers the whole segment file). The
        // mapping lives as long as `seg.map`, which `self` owns (a prepared checkpoint may
        // hold another reference, which only extends it), and the slice borrows `self`,
        // so no `&mut self` method can run while it lives: every write to a slot and every
        // unmap (segment reclaim) takes `&mut self`. Growth pushes new segments without
        // touching existing maps. The memory is initialised (file bytes) and `u8` has no
        // invalid values.
        unsafe { std::slice::from_raw_parts(seg.map.as_ptr().add(offset), self.vector_bytes) }
    }

    fn checked_vector(&self, id: u64, slot: u64) -> Result<&[f32]> {
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
        let bytes = self.bytes_in(seg, offset);
        // The owner is read only to name a damaged slot: the hot path touches the live bit
        // and the vector alone.
        self.checked(seg, within, offset, bytes, || seg.owners[within])
            .map(Some)
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
        let (seg_index, within, offset) = self.locate(slot);
        let seg = &mut self.segments[seg_index];
        // SAFETY: `slot` came from the free list, so no live id refers to it and no slice of
        // it exists (slices borrow `&self`; we hold `&mut self`). In bounds: `offset +
        // vector_bytes <= map.len()` (MapMut::write asserts it too). Only this thread writes.
        // A prepared checkpoint may be flushing this map on another thread: a flush only
        // writes pages back (the kernel's msync, or the simulator's copy of the map), never
        // stores into it, and no checkpoint names a free slot, so whatever part of this
        // write it carries to the file is not referenced by anything durable.
        unsafe { seg.map.write(offset, bytes) };
        seg.crcs[within] = crc;
        seg.set_verified(within);
        seg.set_live(within, id);
        seg.dirty = true;
        if let Some(old) = self.ids.insert(id, slot) {
            self.release(old);
        }
        Ok(())
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
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn release(&mut self, slot: u64) {
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

    fn allocate_slot(&mut self) -> Result<u64> {
        if self.free.is_empty() {
            self.grow()?;
        }
        Ok(self.free.pop().expect("grow adds free slots").0)
    }

    /// Step one of a checkpoint, in memory only: encodes the store's state and marks the
    /// slots it references as protected. Then [`PreparedCheckpoint::flush`] it (no borrow of
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
                maps.push(Arc::clone(&seg.map));
                seg.dirty = false;
            }
        }
        let mut referenced = Vec::with_capacity(self.durable.len());
        let mut entries: Vec<(u64, u64, u32)> = self
            .ids
            .iter()
            .map(|(&id, &slot)| {
                set_bit(&mut referenced, slot);
                let (seg, within, _) = self.locate(slot);
                (id, slot, self.segments[seg].crcs[within])
            })
            .collect();
        entries.sort_unstable_by_key(|e| e.0);
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
                idmap: encode_idmap(&entries),
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
        Ok(())
    }

    /// Checks every segment header and every live slot against its CRC (and marks the good
    /// ones checked).
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_headers()?;
        let ids: Vec<u64> = self.ids.keys().copied().collect();
        self.verify_ids(&ids)
    }

    /// Checks that every segment file's header names this store's shape and its index.
    pub fn verify_headers(&self) -> Result<()> {
        for (index, seg) in self.segments.iter().enumerate() {
            let header = SegmentHeader::decode(&self.header_page(seg)).map_err(|detail| {
                Error::SegmentHeader {
                    path: seg.path.clone(),
                    detail,
                }
            })?;
            if header != self.expected_header(index as u32) {
                return Err(Error::SegmentHeader {
                    path: seg.path.clone(),
                    detail: HeaderError::InvalidField {
                        field: "segment shape or index",
                        value: u64::from(header.segment_index),
                    },
                });
            }
        }
        Ok(())
    }

    /// Checks the slots of those `ids` that are live against their CRCs (ids not stored
    /// are skipped), so a caller can verify a large store a page at a time.
    pub fn verify_ids(&self, ids: &[u64]) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for &id in ids {
            let Some(&slot) = self.ids.get(&id) else {
                continue;
            };
            report.checked += 1;
            match self.checked_vector(id, slot) {
                Ok(_) => {}
                Err(Error::SlotCorrupt { path, offset, .. }) => {
                    report.damaged.push(SlotFault { id, path, offset })
                }
                Err(other) => return Err(other),
            }
        }
        report.damaged.sort_by_key(|f| f.id);
        Ok(report)
    }

    fn header_page(&self, seg: &Segment) -> Vec<u8> {
        let mut page = vec![0u8; HEADER_BYTES];
        // SAFETY: the map covers at least HEADER_BYTES (a segment file is a header page plus
        // at least one slot) and the header page is written only before the map exists.
        let src = unsafe { std::slice::from_raw_parts(seg.map.as_ptr(), HEADER_BYTES) };
        page.copy_from_slice(src);
        page
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let sps = u64::from(self.config.slots_per_segment);
        StoreStats {
            live: self.ids.len() as u64,
            segments: self.segments.len() as u32,
            slot_capacity: self.segments.len() as u64 * sps,
            free_slots: self.free.len() as u64,
            protected_slots: self.pending.len() as u64,
            durable_generation: self.durable_generation,
            segment_bytes: self.segments.len() as u64 * self.expected_header(0).file_len_bytes(),
        }
    }

    /// The directory holding the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn fresh_bits(slots: u32) -> Box<[AtomicU64]> {
    (0..(slots as usize).div_ceil(64))
        .map(|_| AtomicU64::new(0))
        .collect()
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
    idmap: Vec<u8>,
    codec: Codec,
}

/// A checkpoint of the store encoded in memory, its slots not yet flushed. It does not
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
            files,
        } = self;
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
