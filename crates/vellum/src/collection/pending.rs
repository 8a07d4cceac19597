//! The pending tail: live vector slots acknowledged but not yet in the HNSW graph.
//!
//! Every live slot of an HNSW collection is in the graph or in this tail, exactly once,
//! except while the indexer inserts it (then it is in both, and `in_flight` names it).
//! Searches scan the tail exactly and merge it with the graph's results, so a write is
//! searchable as soon as it is acknowledged.
//!
//! Bounds: `set` holds at most `max_points` slots (plus one batch larger than the whole
//! bound, which waits for an empty tail), and `max_points * vector bytes` at most
//! `max_bytes`; writers wait for room (`Collection` backpressure). `queue` may also hold
//! stale entries (slots replaced or deleted while pending); it is compacted when they
//! outnumber the live ones.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

/// The tail, guarded by `CollectionInner::pending` (taken after the state lock, never
/// before it; a leaf lock otherwise).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Slots in the order they were written; entries not in `set` are stale.
    queue: VecDeque<u64>,
    /// Slots not yet indexed (including `in_flight` ones).
    set: FxHashSet<u64>,
    /// Slots an indexer has taken from the queue and is inserting now.
    in_flight: FxHashSet<u64>,
    /// Room promised to writers between their check and their apply.
    reserved: usize,
    /// Whether an indexer thread is running for this collection.
    pub(crate) indexer_running: bool,
}

impl Pending {
    /// Slots written and not yet indexed.
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub(crate) fn contains(&self, slot: u64) -> bool {
        self.set.contains(&slot)
    }

    /// Whether `slot` is being inserted right now.
    pub(crate) fn is_in_flight(&self, slot: u64) -> bool {
        self.in_flight.contains(&slot)
    }

    /// Adds a slot written by an apply (the caller holds the state lock exclusively).
    pub(crate) fn push(&mut self, slot: u64) {
        if self.set.insert(slot) {
            self.queue.push_back(slot);
        }
    }

    /// Forgets a pending slot whose vector was replaced or deleted; true if it was pending.
    /// The caller holds the state lock exclusively, so no indexer has it in flight.
    pub(crate) fn remove(&mut self, slot: u64) -> bool {
        let removed = self.set.remove(&slot);
        if removed && self.queue.len() > 2 * self.set.len() + 1024 {
            let set = &self.set;
            self.queue.retain(|s| set.contains(s));
        }
        removed
    }

    /// Takes up to `max` pending slots for insertion, oldest first; they stay pending (and
    /// searchable through the tail) until `finish`.
    pub(crate) fn take(&mut self, max: usize) -> Vec<u64> {
        let mut taken = Vec::with_capacity(max.min(self.queue.len()));
        while taken.len() < max {
            let Some(slot) = self.queue.pop_front() else {
                break;
            };
            if self.set.contains(&slot) && self.in_flight.insert(slot) {
                taken.push(slot);
            }
        }
        taken
    }

    /// Slots taken by `take` are in the graph now.
    pub(crate) fn finish(&mut self, slots: &[u64]) {
        for slot in slots {
            self.in_flight.remove(slot);
            self.set.remove(slot);
        }
    }

    /// Slots taken by `take` whose insert failed go back to the front of the queue.
    pub(crate) fn give_back(&mut self, slots: &[u64]) {
        for &slot in slots.iter().rev() {
            self.in_flight.remove(&slot);
            self.queue.push_front(slot);
        }
    }

    /// Every pending slot (for a search's exact scan of the tail, or a checkpoint).
    pub(crate) fn slots(&self) -> Vec<u64> {
        self.set.iter().copied().collect()
    }

    /// Whether `n` more slots fit under `max_points` now (counting promised room). A batch
    /// larger than the bound fits only into an empty tail.
    pub(crate) fn has_room(&self, n: usize, max_points: usize) -> bool {
        let used = self.set.len() + self.reserved;
        used == 0 || used + n <= max_points
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.reserved += n;
    }

    pub(crate) fn unreserve(&mut self, n: usize) {
        self.reserved = self.reserved.saturating_sub(n);
    }

    /// Whether slots wait to be taken by an indexer.
    pub(crate) fn has_queued(&self) -> bool {
        self.set.len() > self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_taken_stays_pending_until_finished_and_removed_slots_are_never_taken() {
        let mut p = Pending::default();
        for s in 0..5 {
            p.push(s);
        }
        assert!(p.remove(1));
        let taken = p.take(2);
        assert_eq!(taken, vec![0, 2]);
        assert!(p.contains(0) && p.is_in_flight(0));
        p.finish(&taken);
        assert!(!p.contains(0));
        assert_eq!(p.len(), 2);
        let taken = p.take(1);
        p.give_back(&taken);
        assert_eq!(p.take(5), vec![3, 4]);
    }

    #[test]
    fn room_counts_promised_slots_and_an_oversized_batch_fits_only_an_empty_tail() {
        let mut p = Pending::default();
        assert!(p.has_room(50, 10));
        p.reserve(8);
        assert!(!p.has_room(3, 10));
        assert!(p.has_room(2, 10));
        p.unreserve(8);
        p.push(1);
        assert!(!p.has_room(50, 10));
    }
}
