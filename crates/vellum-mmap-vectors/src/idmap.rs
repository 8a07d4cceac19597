//! The store's id -> slot map in memory: the entries loaded at open in one sorted array
//! (built from the checkpoint's id map in one pass, no hashing: a million entries open in
//! milliseconds), and a hash map of what changed since open on top of it.
//!
//! Memory follows the data: 16 bytes per entry loaded, plus a hash entry per id written
//! since open. The array is never rebuilt while the store runs (no write pays for it); the
//! next open folds the changes in, since the checkpoint's id map holds them.

use rustc_hash::FxHashMap;

/// The slot `changes` gives a loaded id deleted since open (no slot is this high).
const GONE: u64 = u64::MAX;

/// id -> slot. Lookups check the changes, then binary-search the loaded entries.
#[derive(Debug, Default)]
pub(crate) struct IdMap {
    /// (id, slot) as loaded at open, sorted by id; an id in `changes` is stale here.
    loaded: Vec<(u64, u64)>,
    /// Ids written since open: their slot (added, replaced or moved) or [`GONE`] (a loaded
    /// id deleted). 16 bytes an entry, as a plain id -> slot map.
    changes: FxHashMap<u64, u64>,
    len: usize,
}

impl IdMap {
    /// A map holding `entries`, which must be sorted by id with no id twice.
    pub(crate) fn from_sorted(entries: Vec<(u64, u64)>) -> IdMap {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        IdMap {
            len: entries.len(),
            loaded: entries,
            changes: FxHashMap::default(),
        }
    }

    fn loaded_slot(&self, id: u64) -> Option<&u64> {
        let i = self.loaded.binary_search_by_key(&id, |e| e.0).ok()?;
        Some(&self.loaded[i].1)
    }

    /// The slot of `id`.
    pub(crate) fn get(&self, id: &u64) -> Option<&u64> {
        match self.changes.get(id) {
            Some(slot) => (*slot != GONE).then_some(slot),
            None => self.loaded_slot(*id),
        }
    }

    /// Whether `id` is in the map.
    pub(crate) fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Maps `id` to `slot`; returns the slot it had.
    pub(crate) fn insert(&mut self, id: u64, slot: u64) -> Option<u64> {
        let old = self.get(&id).copied();
        debug_assert!(slot != GONE);
        self.changes.insert(id, slot);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `id`; returns the slot it had.
    pub(crate) fn remove(&mut self, id: &u64) -> Option<u64> {
        let old = self.get(id).copied()?;
        if self.loaded_slot(*id).is_some() {
            self.changes.insert(*id, GONE);
        } else {
            self.changes.remove(id);
        }
        self.len -= 1;
        Some(old)
    }

    /// Entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every (id, slot), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &u64)> + '_ {
        let changes = &self.changes;
        self.loaded
            .iter()
            .filter(move |e| changes.is_empty() || !changes.contains_key(&e.0))
            .map(|(id, slot)| (id, slot))
            .chain(changes.iter().filter(|(_, slot)| **slot != GONE))
    }

    /// Every id, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &u64> + '_ {
        self.iter().map(|e| e.0)
    }

    /// Every slot, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &u64> + '_ {
        self.iter().map(|e| e.1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn changes_over_loaded_entries_behave_as_one_map() {
        let mut map = IdMap::from_sorted(vec![(1, 10), (3, 30), (5, 50)]);
        let mut model: BTreeMap<u64, u64> = [(1, 10), (3, 30), (5, 50)].into();
        let ops: [(u64, Option<u64>); 9] = [
            (3, None),
            (3, Some(31)),
            (4, Some(40)),
            (4, None),
            (1, Some(11)),
            (6, Some(60)),
            (5, None),
            (7, None),
            (5, Some(51)),
        ];
        for (id, op) in ops {
            match op {
                Some(slot) => assert_eq!(map.insert(id, slot), model.insert(id, slot)),
                None => assert_eq!(map.remove(&id), model.remove(&id)),
            }
            assert_eq!(map.len(), model.len());
            let mut all: Vec<(u64, u64)> = map.iter().map(|(&a, &b)| (a, b)).collect();
            all.sort_unstable();
            assert_eq!(all, model.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>());
            for id in 0..8 {
                assert_eq!(map.get(&id), model.get(&id));
            }
        }
    }
}
