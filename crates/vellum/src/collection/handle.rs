//! `Collection`, the public handle to one collection, and `Points`, its paged iterator over
//! every point.

use std::sync::Arc;

use super::{
    CheckpointInfo, CollectionInner, CollectionStats, CompactReport, Hit, Point, SearchParams,
    VerifyReport, WalEntry, WriteBatch,
};
use crate::database::DbLock;
use crate::error::Result;
use crate::filter::Filter;
use crate::options::CollectionConfig;

/// A handle to one collection. Cheap to clone, `Send + Sync`: search from many threads
/// while others write.
#[derive(Debug, Clone)]
pub struct Collection {
    inner: Arc<CollectionInner>,
    /// A collection handle keeps the database's directory lock, too.
    _lock: Arc<DbLock>,
}

#[cfg(test)]
impl Collection {
    /// The shared collection, for tests that reach past the handle (its locks).
    pub(crate) fn inner(&self) -> &Arc<CollectionInner> {
        &self.inner
    }
}

/// Points read per lock by [`Collection::points`].
pub const POINTS_PAGE: usize = 512;

/// The iterator of [`Collection::points`].
#[derive(Debug)]
pub struct Points {
    collection: Collection,
    ids: Vec<u64>,
    next: usize,
    page: std::vec::IntoIter<Point>,
    failed: bool,
}

impl Iterator for Points {
    type Item = Result<Point>;

    fn next(&mut self) -> Option<Result<Point>> {
        loop {
            if let Some(p) = self.page.next() {
                return Some(Ok(p));
            }
            if self.failed || self.next >= self.ids.len() {
                return None;
            }
            let end = (self.next + POINTS_PAGE).min(self.ids.len());
            match self.collection.inner.get_many(&self.ids[self.next..end]) {
                Ok(points) => {
                    self.next = end;
                    self.page = points.into_iter();
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Collection {
    /// A handle to `inner` that keeps the database's directory lock `lock`.
    pub(crate) fn new(inner: Arc<CollectionInner>, lock: Arc<DbLock>) -> Collection {
        inner.kick_indexer(&lock.indexers);
        Collection { inner, _lock: lock }
    }

    /// Writes, then starts the indexer if the write left points to index.
    fn written(&self, lsn: Result<u64>) -> Result<u64> {
        self.inner.kick_indexer(&self._lock.indexers);
        lsn
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its shape, and its quantization as set now.
    pub fn config(&self) -> CollectionConfig {
        self.inner.current_config()
    }

    /// Inserts or replaces one point; returns its LSN once durable (per the sync policy).
    pub fn upsert(&self, point: Point) -> Result<u64> {
        let mut batch = WriteBatch::new();
        batch.upsert(point);
        self.written(self.inner.write(batch))
    }

    /// Inserts or replaces many points atomically: after any crash, all or none.
    pub fn upsert_batch(&self, points: impl IntoIterator<Item = Point>) -> Result<u64> {
        let mut batch = WriteBatch::new();
        for p in points {
            batch.upsert(p);
        }
        self.written(self.inner.write(batch))
    }

    /// Deletes a point (a no-op for an id that does not exist, still logged).
    pub fn delete(&self, id: u64) -> Result<u64> {
        let mut batch = WriteBatch::new();
        batch.delete(id);
        self.written(self.inner.write(batch))
    }

    /// Applies a batch of upserts and deletes atomically.
    pub fn write(&self, batch: WriteBatch) -> Result<u64> {
        self.written(self.inner.write(batch))
    }

    /// The point with this id (vector copied out, payload cloned).
    pub fn get(&self, id: u64) -> Result<Option<Point>> {
        self.inner.get(id)
    }

    /// Calls `f` with the vector of `id` straight from the mapped file (no copy).
    pub fn with_vector<R>(&self, id: u64, f: impl FnOnce(&[f32]) -> R) -> Result<Option<R>> {
        self.inner.with_vector(id, f)
    }

    /// The `k` nearest points to `query`.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.inner.search(query, k, &SearchParams::default())
    }

    /// The points among `ids` that exist, in the order given, read under one hold of the
    /// collection's read lock (one consistent state).
    pub fn get_many(&self, ids: &[u64]) -> Result<Vec<Point>> {
        self.inner.get_many(ids)
    }

    /// The `k` nearest points, with options (ef, filter, exact, payloads and vectors in
    /// the hits).
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<Vec<Hit>> {
        let mut hits = self.inner.search(query, k, params)?;
        self.inner
            .fill_hits(&mut hits, params.with_payload, params.with_vector)?;
        Ok(hits)
    }

    /// Live points.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the collection is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live id, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.inner.ids()
    }

    /// Every point (id, vector, payload) in ascending id order, read in pages of
    /// `POINTS_PAGE` under the collection's read lock, so writers are held up for one page
    /// at a time, never for the whole scan.
    ///
    /// The iteration visits the ids live when it began; each page shows the points as they
    /// are when it is read (a point deleted meanwhile is skipped, one replaced meanwhile
    /// shows its new vector, one added meanwhile is not visited). An error (a damaged
    /// vector slot, a stopped collection) is yielded once and ends the iteration.
    pub fn points(&self) -> Points {
        Points {
            collection: self.clone(),
            ids: self.inner.ids(),
            next: 0,
            page: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Creates a payload index on `field` (a dotted path, as filters name fields) holding
    /// `kind` values: conditions on the field are then answered from it, without reading
    /// payloads. Reads every payload once (without holding back writers); returns once a
    /// checkpoint holds the index. An index on `field` that exists already is an error.
    pub fn create_payload_index(&self, field: &str, kind: crate::PayloadIndexKind) -> Result<()> {
        self.inner.create_payload_index(field, kind)
    }

    /// Drops the payload index on `field`; `Ok(false)` if there was none. Returns once the
    /// checkpoint generation without it is durable.
    pub fn drop_payload_index(&self, field: &str) -> Result<bool> {
        self.inner.drop_payload_index(field)
    }

    /// The payload indexes of this collection.
    pub fn payload_indexes(&self) -> Vec<crate::PayloadIndexInfo> {
        self.inner.payload_indexes()
    }

    /// How many points `filter` admits (every point with `None`). Conditions on indexed
    /// fields are answered by the payload indexes; others read payloads, in pages, each
    /// under one hold of the collection's read lock.
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        match filter {
            None => Ok(self.len() as u64),
            Some(f) => Ok(self.inner.matching_ids(f)?.len() as u64),
        }
    }

    /// The points `filter` admits, in ascending id order, read as [`Collection::points`]
    /// reads them (the ids are chosen first, a page of the filter at a time).
    pub fn points_matching(&self, filter: &Filter) -> Result<Points> {
        Ok(Points {
            collection: self.clone(),
            ids: self.inner.matching_ids(filter)?,
            next: 0,
            page: Vec::new().into_iter(),
            failed: false,
        })
    }

    /// Deletes every point `filter` admits; returns how many. Deletes are written in
    /// atomic batches of 10,000: after a crash in the middle, a prefix of the batches (in
    /// id order) is deleted, each whole. A point written after the call began is not
    /// looked at.
    pub fn delete_by_filter(&self, filter: &Filter) -> Result<u64> {
        let (deleted, last) = self.inner.delete_matching(filter)?;
        if let Some(lsn) = last {
            self.written(Ok(lsn))?;
        }
        Ok(deleted)
    }

    /// Checkpoints now: the state becomes one durable generation and older log segments go.
    pub fn checkpoint(&self) -> Result<CheckpointInfo> {
        self.inner.checkpoint()
    }

    /// Gives back the space of deleted and replaced points: checkpoints release their
    /// slots, live vectors move down into them (short holds of the lock; searches and writes
    /// go on), and vector segment files left empty are removed. Several checkpoints run
    /// (twice the retained generations, plus one). Safe to interrupt at any point.
    pub fn compact(&self) -> Result<CompactReport> {
        let report = self.inner.compact()?;
        tracing::info!(
            collection = %self.inner.name,
            moved = report.moved,
            segments_before = report.segments_before,
            segments_after = report.segments_after,
            "compaction done"
        );
        // Moved points of an HNSW collection wait in the pending tail.
        self.inner.kick_indexer(&self._lock.indexers);
        Ok(report)
    }

    /// Makes every write so far durable (a barrier under every sync policy).
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Waits until every write acknowledged so far is in the HNSW graph (the pending tail
    /// is empty and deleted nodes are repaired), indexing on this thread meanwhile with the
    /// parallel build. Writes are searchable before this (the tail is scanned exactly);
    /// call it to measure a fully built graph, or at the end of a bulk load.
    pub fn wait_indexed(&self) -> Result<()> {
        self.inner.wait_indexed()
    }

    /// Counters.
    pub fn stats(&self) -> CollectionStats {
        self.inner.stats()
    }

    /// Up to `limit` log records from `from_lsn` on (for inspection tools).
    pub fn wal_entries(&self, from_lsn: u64, limit: usize) -> Result<Vec<WalEntry>> {
        self.inner.wal_entries(from_lsn, limit)
    }

    /// Re-reads every checksum and reports damage.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.inner.verify()
    }
}
