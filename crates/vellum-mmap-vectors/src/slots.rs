//! Slot access: the one place this crate touches mapped memory, and so its only `unsafe`.
//!
//! A [`Segment`] owns the map of one segment file and is the only code that reads or writes
//! through it. The map stays private to this module: a slice of it borrows the `Segment`,
//! and a store into it takes `&mut Segment`, so the borrow checker keeps every read and
//! write apart. A prepared checkpoint holds a second reference to the map
//! ([`Segment::shared_map`]) only to flush it; storing through that reference would need
//! `unsafe`, which the rest of the crate denies.
//!
//! Which slot may be written (copy-on-write, free lists, protected slots) is the store's
//! business and a matter of durability, not of memory safety: see `store.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vellum_fs::{File, MapMut};

use crate::segment::HEADER_BYTES;

/// One mapped segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    /// Shared with a prepared checkpoint that flushes it while the store goes on. Covers
    /// the header page and the first `capacity` slots: the whole file.
    map: Arc<MapMut>,
    /// Kept open for the life of the map, and to extend.
    file: Box<dyn File>,
    /// Slots the file holds now (it grows by whole slots up to `slots_per_segment`).
    capacity: usize,
    slot_bytes: usize,
    /// One bit per slot of the file: its bytes were checked against (or written with) its
    /// CRC. This and the arrays below cover the `capacity` slots the file holds.
    verified: Box<[AtomicU64]>,
    /// The CRC of each live slot's vector bytes.
    pub(crate) crcs: Vec<u32>,
    /// The id each live slot holds (stale for free slots).
    pub(crate) owners: Vec<u64>,
    /// One bit per slot: live (holds the current vector of `owners[slot]`).
    live: Vec<u64>,
    /// Written since the last checkpoint.
    pub(crate) dirty: bool,
}

impl Segment {
    /// A segment over `map` of `file` (which covers the whole file, a header page and
    /// whole slots of `slot_bytes`), with no slot live, checked or written yet.
    pub(crate) fn new(
        path: PathBuf,
        file: Box<dyn File>,
        map: MapMut,
        slots_per_segment: u32,
        slot_bytes: usize,
    ) -> Segment {
        let slots = slots_per_segment as usize;
        let capacity = (map.len().saturating_sub(HEADER_BYTES) / slot_bytes.max(1)).min(slots);
        Segment {
            path,
            map: Arc::new(map),
            file,
            capacity,
            slot_bytes,
            verified: fresh_bits(capacity),
            crcs: vec![0; capacity],
            owners: vec![0; capacity],
            live: vec![0; capacity.div_ceil(64)],
            dirty: false,
        }
    }

    /// Slots the file holds now.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of the file (and of its map).
    pub(crate) fn file_len_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// Extends the file to hold `slots` slots (allocated, zeros) and maps it anew. The old
    /// map stays valid for a prepared checkpoint that holds it (it flushes the same file's
    /// pages); stores go through the new one from here on. Not durable until the next
    /// flush of the new map, which carries the length with it (as for a new segment): no
    /// checkpoint references a slot past the old length before then.
    pub(crate) fn extend_to(&mut self, slots: usize) -> vellum_fs::Result<()> {
        if slots <= self.capacity {
            return Ok(());
        }
        let len = HEADER_BYTES + slots * self.slot_bytes;
        self.file.allocate(len as u64)?;
        let map = self.file.map_mut(len)?;
        // `&mut self`: no slice of the old map exists (see `bytes`).
        self.map = Arc::new(map);
        self.capacity = slots;
        // The per-slot arrays follow the file (memory follows the data).
        self.crcs.resize(slots, 0);
        self.owners.resize(slots, 0);
        self.live.resize(slots.div_ceil(64), 0);
        let verified = fresh_bits(slots);
        for (new, old) in verified.iter().zip(self.verified.iter()) {
            new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.verified = verified;
        Ok(())
    }

    /// Shrinks the file to `slots` slots (fewer than it holds; none of the slots cut may
    /// be live or named by any checkpoint: the caller's to know) and maps it anew: the
    /// smaller map first, then the old one goes, then the file is cut, so no map ever
    /// reaches past the file's end. The cut is synced before this returns: a crash may not
    /// apply it after a later growth of the file that a checkpoint made durable (which
    /// would cut slots that checkpoint names; the crash sweep finds that without the
    /// sync). Returns `false` (and does nothing) while a prepared checkpoint still holds
    /// the map to flush it.
    pub(crate) fn shrink_to(&mut self, slots: usize) -> vellum_fs::Result<bool> {
        if slots >= self.capacity || Arc::strong_count(&self.map) > 1 {
            return Ok(false);
        }
        debug_assert!((slots..self.capacity).all(|i| !self.is_live(i)));
        let len = HEADER_BYTES + slots * self.slot_bytes;
        let map = self.file.map_mut(len)?;
        // `&mut self`: no slice of the old map exists (see `bytes`), and the count above
        // says no checkpoint holds it.
        self.map = Arc::new(map);
        self.file.set_len(len as u64)?;
        self.file.sync_data()?;
        self.capacity = slots;
        self.crcs.truncate(slots);
        self.owners.truncate(slots);
        self.live.truncate(slots.div_ceil(64));
        if let Some(last) = self.live.last_mut()
            && !slots.is_multiple_of(64)
        {
            *last &= (1u64 << (slots % 64)) - 1;
        }
        let verified = fresh_bits(slots);
        for (new, old) in verified.iter().zip(self.verified.iter()) {
            new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.verified = verified;
        Ok(true)
    }

    /// Whether slot `i` is live (false past the file's end).
    pub(crate) fn is_live(&self, i: usize) -> bool {
        self.live
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// The live bits, one per slot of the file, 64 to a word.
    pub(crate) fn live_words(&self) -> &[u64] {
        &self.live
    }

    pub(crate) fn set_live(&mut self, i: usize, id: u64) {
        self.owners[i] = id;
        self.live[i / 64] |= 1 << (i % 64);
    }

    pub(crate) fn clear_live(&mut self, i: usize) {
        self.live[i / 64] &= !(1 << (i % 64));
    }

    pub(crate) fn is_verified(&self, i: usize) -> bool {
        self.verified[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// Sets the bit; returns whether it was clear before.
    pub(crate) fn set_verified(&self, i: usize) -> bool {
        let mask = 1 << (i % 64);
        self.verified[i / 64].fetch_or(mask, Ordering::Relaxed) & mask == 0
    }

    /// The `len` bytes at `offset` of the map, borrowed for as long as the segment is.
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.map.len());
        // SAFETY: in bounds (asserted above; the map covers the whole segment file). The
        // mapping lives as long as `self.map`, which `self` owns (a prepared checkpoint may
        // hold another reference, which only extends it), and the slice borrows `self`, so
        // no store into the map can run while it lives: the only store is
        // `Segment::write`, which takes `&mut self`, and the checkpoint's reference only
        // flushes. An unmap (segment reclaim) drops the segment, which the borrow prevents
        // too; so does `extend_to` (it replaces the map through `&mut self`; the old one
        // lives on only in a checkpoint that flushes it). The memory is initialised (file
        // bytes) and `u8` has no invalid values.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset), len) }
    }

    /// The header page, copied out of the map (the header page is written only before
    /// the map exists).
    pub(crate) fn header_page(&self) -> Vec<u8> {
        // A segment file is a header page plus at least one slot: the map covers it.
        self.bytes(0, HEADER_BYTES).to_vec()
    }

    /// Stores `bytes` at `offset` of the map (out of bounds panics). Not durable until the
    /// map is flushed.
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) {
        // SAFETY: `&mut self` means no slice of this map exists (slices borrow the segment,
        // see `Segment::bytes`) and no other store into it runs: only this method stores,
        // and only through `&mut self`. In bounds: `MapMut::write` asserts it. A prepared
        // checkpoint may be flushing this map on another thread: a flush only writes pages
        // back (the kernel's msync, or the simulator's copy of the map), never stores into
        // it.
        unsafe { self.map.write(offset, bytes) };
    }

    /// Another reference to the map, for a checkpoint to flush while the store goes on.
    /// Only [`MapMut::flush`] may be called on it.
    pub(crate) fn shared_map(&self) -> Arc<MapMut> {
        Arc::clone(&self.map)
    }
}

fn fresh_bits(slots: usize) -> Box<[AtomicU64]> {
    (0..slots.div_ceil(64)).map(|_| AtomicU64::new(0)).collect()
}
