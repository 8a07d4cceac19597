//! Replacing an id: the old node is deleted (its neighbours re-linked around it, as any
//! delete) and a new node is linked for the vector the source holds now.

use rustc_hash::FxHashSet;

use super::Hnsw;
use crate::error::{Error, Result};
use crate::graph::NO_NODE;
use crate::source::VectorSource;

impl Hnsw {
    /// Inserts `id`, or replaces it if it is present: returns whether an old node was
    /// replaced.
    ///
    /// `source` must already hold the new vector under `id`. The old node is deleted with
    /// its neighbours repaired (it never reads the old vector, which the source no longer
    /// has), then a new node is linked for the new vector, so searches find `id` only at
    /// its new place and never score the old one. [`Hnsw::len`] is unchanged by a replace.
    ///
    /// Not atomic for searches running at the same time: one of them may miss `id` (between
    /// the delete and the link), or return one hit fewer than asked for (when it scored both
    /// nodes), but never returns `id` twice. Changes to one id from several threads at once
    /// must be ordered by the caller.
    pub fn upsert<S: VectorSource + ?Sized>(&self, source: &S, id: u64) -> Result<bool> {
        Ok(self.upsert_batch(source, &[id])? == 1)
    }

    /// [`Hnsw::upsert`] for many ids, inserted one after another on this thread (as
    /// [`Hnsw::insert_batch`], so deterministic for a seed and order); returns how many
    /// replaced an id that was present.
    ///
    /// Fails before any change if an id is repeated in `ids`
    /// ([`Error::DuplicateId`]) or the new nodes would not fit ([`Error::Full`]: tombstones
    /// keep their node numbers until the next save, so a replace needs a new number).
    pub fn upsert_batch<S: VectorSource + ?Sized>(&self, source: &S, ids: &[u64]) -> Result<usize> {
        self.check_source(source)?;
        let mut seen = FxHashSet::default();
        for &id in ids {
            if !seen.insert(id) {
                return Err(Error::DuplicateId { id });
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let graph = self.thaw()?;
        if u64::from(graph.registry.read().next) + ids.len() as u64 >= u64::from(NO_NODE) {
            return Err(Error::Full {
                limit: u64::from(NO_NODE),
            });
        }
        let mut replaced = 0;
        for &id in ids {
            match self.delete(source, id) {
                Ok(()) => replaced += 1,
                // Not present (or deleted meanwhile by another thread): a plain insert.
                Err(Error::UnknownId { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.insert_batch(source, ids)?;
        Ok(replaced)
    }
}
