//! Payloads changed since a checkpoint took the last ones: appended, as run records, to one
//! buffer that becomes the next run file as it is (no copy at the checkpoint), with a map
//! from id to its latest record (or to its removal). A payload written twice before a
//! checkpoint leaves its first record behind as garbage, reclaimed by compaction.
//!
//! The buffer is one allocation that grows by doubling; large ones are mapped by the
//! allocator, so pages not yet written cost no memory and a checkpoint's drop returns them.

use rustc_hash::FxHashMap;

use super::index::Key;
use super::run::{RUN_HEADER_BYTES, RunWriter};

/// Changes not in any run file yet.
pub(crate) struct Unsaved {
    /// The number the run written from this buffer will have.
    seq: u64,
    buf: RunWriter,
    /// Latest record offset per id; `None`: the payload was removed.
    at: FxHashMap<u64, Option<u64>>,
    /// Per payload index (by number), the keys of each id changed here (empty: none).
    keys: FxHashMap<u32, FxHashMap<u64, Vec<Key>>>,
}

impl Unsaved {
    pub(crate) fn new(seq: u64) -> Self {
        Unsaved {
            seq,
            buf: RunWriter::new(seq, 0),
            at: FxHashMap::default(),
            keys: FxHashMap::default(),
        }
    }

    /// Records the keys index `index` takes from `id`'s payload as changed here.
    pub(crate) fn put_keys(&mut self, index: u32, id: u64, keys: Vec<Key>) {
        self.keys.entry(index).or_default().insert(id, keys);
    }

    /// The keys of the ids changed here, for index `index`.
    pub(crate) fn keys(&self, index: u32) -> Option<&FxHashMap<u64, Vec<Key>>> {
        self.keys.get(&index)
    }

    /// Forgets index `index` (dropped).
    pub(crate) fn drop_keys(&mut self, index: u32) {
        self.keys.remove(&index);
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// `Some(Some(payload))`, `Some(None)` if removed here, `None` if not changed here.
    pub(crate) fn get(&self, id: u64) -> Option<Option<&[u8]>> {
        self.at
            .get(&id)
            .map(|at| at.map(|offset| self.buf.payload_at(offset)))
    }

    pub(crate) fn put(&mut self, id: u64, payload: Option<&[u8]>) {
        let at = payload.map(|p| self.buf.push(id, p));
        self.at.insert(id, at);
    }

    /// The changes, each id once: `(id, Some((offset, len)))` or `(id, None)` for a removal.
    pub(crate) fn changes(&self) -> impl Iterator<Item = (u64, Option<(u64, u32)>)> + '_ {
        self.at.iter().map(|(&id, &at)| {
            (
                id,
                at.map(|offset| (offset, self.buf.payload_at(offset).len() as u32)),
            )
        })
    }

    pub(crate) fn is_changed(&self, id: u64) -> bool {
        self.at.contains_key(&id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The ids changed here.
    pub(crate) fn changed_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.at.keys().copied()
    }

    /// Whether the buffer holds any record (a run to write).
    pub(crate) fn has_records(&self) -> bool {
        self.buf.records() > 0
    }

    /// The buffer: a complete run file.
    pub(crate) fn run_bytes(&self) -> &[u8] {
        self.buf.bytes()
    }

    /// Bytes of records held (live or superseded).
    pub(crate) fn record_bytes(&self) -> u64 {
        (self.buf.bytes().len() - RUN_HEADER_BYTES) as u64
    }
}

impl std::fmt::Debug for Unsaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsaved")
            .field("seq", &self.seq)
            .field("changes", &self.at.len())
            .field("record_bytes", &self.record_bytes())
            .finish()
    }
}
