//! Compaction: moving live vectors down into free slots so trailing segments empty out.
//!
//! A move is physical, not logical: the id keeps its vector, only its slot changes, so it
//! needs no log record. It follows the copy-on-write rule of every write: the vector goes to
//! a free slot (referenced by no durable generation), and the old slot is released like a
//! replaced one (protected while a retained generation references it). A crash before the
//! next checkpoint recovers the old slot, intact; after it, the new one. Once the
//! generations that referenced the old slots are dropped, trailing segments holding no live
//! or protected slot are removed at publish (`reclaim_trailing_segments`).

use std::cmp::Reverse;

use crate::error::Result;
use crate::store::VectorStore;

impl VectorStore {
    /// Ids worth moving, highest slot first: as many of the live vectors in the highest
    /// slots as there are free slots below them. Moving each (`relocate`) in this order
    /// packs the store into its lowest slots.
    pub fn compaction_moves(&self) -> Vec<u64> {
        let mut free: Vec<u64> = self.free.iter().map(|r| r.0).collect();
        free.sort_unstable();
        let mut live: Vec<(u64, u64)> = self.ids.iter().map(|(&id, &slot)| (slot, id)).collect();
        live.sort_unstable_by_key(|&(slot, _)| Reverse(slot));
        live.iter()
            .zip(&free)
            .take_while(|((slot, _), free_slot)| *free_slot < slot)
            .map(|((_, id), _)| *id)
            .collect()
    }

    /// Moves `id`'s vector to the lowest free slot if that is below its own; returns the old
    /// and the new slot, or `None` when nothing moved (no such id, or no lower free slot).
    /// The vector is checked against its CRC before it is copied: a damaged slot is an
    /// error, never copied into a fresh slot with a fresh checksum.
    pub fn relocate(&mut self, id: u64) -> Result<Option<(u64, u64)>> {
        self.failstop.check()?;
        let Some(&old) = self.ids.get(&id) else {
            return Ok(None);
        };
        if self.free.peek().is_none_or(|lowest| lowest.0 >= old) {
            return Ok(None);
        }
        let vector: Vec<f32> = self.checked_vector(id, old)?.to_vec();
        let (seg, within, _) = self.locate(old);
        let crc = self.segments[seg].crcs[within];
        let slot = self.allocate_slot()?;
        debug_assert!(slot < old, "the lowest free slot was below {old}");
        self.write_slot(id, slot, bytemuck::cast_slice(&vector), crc);
        self.write_code(slot, &vector, crc)?;
        self.ids.insert(id, slot);
        self.changed.insert(id);
        self.release(old);
        Ok(Some((old, slot)))
    }
}
