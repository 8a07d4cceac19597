//! Operations over the points a [`Filter`] admits: which ids match (read in pages, each
//! under its own hold of the state read lock, so writers wait for one page, never for the
//! scan), and deleting them in batches.

use super::{CollectionInner, WriteBatch};
use crate::error::Result;
use crate::filter::Filter;

/// Ids whose filter is evaluated under one hold of the state read lock.
const FILTER_PAGE: usize = 4096;
/// Deletes per atomic batch of `delete_by_filter`.
pub(crate) const DELETE_BY_FILTER_BATCH: usize = 10_000;

impl CollectionInner {
    /// The live ids `filter` admits, ascending. Each page of ids is read under one hold of
    /// the lock: the result holds every id live from the start to the end of the call that
    /// matched when its page was read.
    pub(super) fn matching_ids(&self, filter: &Filter) -> Result<Vec<u64>> {
        self.check_usable()?;
        {
            let state = self.state.read();
            if let Some(ids) = super::payload_index::planned_ids(&state, filter, true)? {
                return Ok(ids);
            }
        }
        let ids = self.ids();
        let mut out = Vec::new();
        for page in ids.chunks(FILTER_PAGE) {
            let state = self.state.read();
            for &id in page {
                if state.store.contains(id) && filter.matches(id, state.payloads.get(id)?) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Deletes the points `filter` admits, in atomic batches of
    /// [`DELETE_BY_FILTER_BATCH`]; returns how many were deleted and the last LSN.
    pub(super) fn delete_matching(&self, filter: &Filter) -> Result<(u64, Option<u64>)> {
        let ids = self.matching_ids(filter)?;
        let mut last = None;
        for chunk in ids.chunks(DELETE_BY_FILTER_BATCH) {
            let mut batch = WriteBatch::new();
            for &id in chunk {
                batch.delete(id);
            }
            last = Some(self.write(batch)?);
        }
        Ok((ids.len() as u64, last))
    }
}
