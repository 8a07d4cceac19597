//! The public types of a collection: points and batches to write, search parameters and
//! results, and the reports of stats, log dumps, checkpoints and verification.

use crate::error::{Error, Result};

/// A point to write: id, vector, optional payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its id, unique in the collection.
    pub id: u64,
    /// Its vector (the collection's dimension).
    pub vector: Vec<f32>,
    /// Arbitrary bytes stored and recovered with it.
    pub payload: Option<Vec<u8>>,
}

impl Point {
    /// A point without payload.
    pub fn new(id: u64, vector: Vec<f32>) -> Self {
        Point {
            id,
            vector,
            payload: None,
        }
    }

    /// With a payload.
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = Some(payload.into());
        self
    }

    /// With a JSON payload (serialised with serde_json).
    pub fn with_json<T: serde::Serialize>(self, value: &T) -> Result<Self> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::InvalidArgument(format!("payload does not serialise: {e}")))?;
        Ok(self.with_payload(bytes))
    }

    /// The payload parsed as JSON into `T` (`serde_json::Value` for any document): `None`
    /// without a payload, an error naming the id if it is not `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        self.payload
            .as_deref()
            .map(|bytes| {
                serde_json::from_slice(bytes).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "the payload of id {} is not the JSON asked for: {e}",
                        self.id
                    ))
                })
            })
            .transpose()
    }
}

/// A group of writes applied atomically: after any crash, all of them or none.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub(super) ops: Vec<BatchOp>,
}

#[derive(Debug, Clone)]
pub(super) enum BatchOp {
    Upsert(Point),
    Delete(u64),
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds an insert-or-replace.
    pub fn upsert(&mut self, point: Point) -> &mut Self {
        self.ops.push(BatchOp::Upsert(point));
        self
    }

    /// Adds a delete (of an id that may not exist).
    pub fn delete(&mut self, id: u64) -> &mut Self {
        self.ops.push(BatchOp::Delete(id));
        self
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Hit {
    /// The point's id.
    pub id: u64,
    /// Its distance to the query under the collection's metric (smaller is closer).
    pub distance: f32,
    /// Its payload, when the search asked for it (`SearchParams::with_payload`).
    pub payload: Option<Vec<u8>>,
    /// Its vector, when the search asked for it (`SearchParams::with_vector`).
    pub vector: Option<Vec<f32>>,
}

/// Which points a search may return.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum SearchFilter<'a> {
    /// Only these ids.
    Ids(&'a [u64]),
    /// Only these ids, which are in ascending order: tested by binary search as the search
    /// meets points, with no set built first (the better choice for a long list). An
    /// unsorted list is refused with `Error::InvalidArgument`.
    SortedIds(&'a [u64]),
    /// Only ids for which the predicate holds.
    Id(&'a (dyn Fn(u64) -> bool + Sync)),
    /// Only points whose payload (`None` when they have none) satisfies the predicate.
    Payload(&'a (dyn Fn(Option<&[u8]>) -> bool + Sync)),
    /// Only points the typed filter admits.
    Where(&'a crate::filter::Filter),
}

impl std::fmt::Debug for SearchFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchFilter::Ids(ids) => write!(f, "SearchFilter::Ids({} ids)", ids.len()),
            SearchFilter::SortedIds(ids) => {
                write!(f, "SearchFilter::SortedIds({} ids)", ids.len())
            }
            SearchFilter::Id(_) => f.write_str("SearchFilter::Id(..)"),
            SearchFilter::Payload(_) => f.write_str("SearchFilter::Payload(..)"),
            SearchFilter::Where(filter) => write!(f, "SearchFilter::Where({filter:?})"),
        }
    }
}

/// Options of one search.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchParams<'a> {
    /// HNSW candidate list size (`None`: the collection's `ef_search`). Ignored by flat
    /// collections.
    pub ef: Option<usize>,
    /// Restricts the result.
    pub filter: Option<SearchFilter<'a>>,
    /// Scan every point instead of using the index (the ground truth).
    pub exact: bool,
    /// Return each hit's payload (read right after the search, under one hold of the
    /// collection's read lock: a point deleted in between comes back without one).
    pub with_payload: bool,
    /// Return each hit's vector (read as `with_payload` is).
    pub with_vector: bool,
}

/// Counters of one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CollectionStats {
    /// The collection's name.
    pub name: String,
    /// Live points.
    pub points: u64,
    /// Points with a payload.
    pub payloads: u64,
    /// Payload runs in the current generation, their record bytes, and of those the bytes
    /// still referenced (the rest is reclaimed by later checkpoints' compaction).
    pub payload_runs: u64,
    /// See `payload_runs`.
    pub payload_run_bytes: u64,
    /// See `payload_runs`.
    pub payload_live_bytes: u64,
    /// Payload bytes written since the last checkpoint (held in memory until it).
    pub payload_unsaved_bytes: u64,
    /// The payload indexes.
    pub payload_indexes: Vec<crate::PayloadIndexInfo>,
    /// Bytes of log segments in use.
    pub wal_bytes: u64,
    /// Log segment files.
    pub wal_segments: u64,
    /// Last LSN applied.
    pub last_lsn: u64,
    /// Operations applied since the last checkpoint.
    pub ops_since_checkpoint: u64,
    /// Current checkpoint generation (0: none yet).
    pub generation: u64,
    /// LSN the current checkpoint covers.
    pub checkpoint_lsn: u64,
    /// Bytes of the current generation's files as stored (after compression).
    pub checkpoint_stored_bytes: u64,
    /// Bytes of the current generation's files before compression.
    pub checkpoint_raw_bytes: u64,
    /// Bytes of vector segment files.
    pub vector_segment_bytes: u64,
    /// Points in the HNSW graph. With `index_pending` it makes `points`: the rest wait in
    /// the pending tail (searched exactly) for the background indexer.
    pub indexed: u64,
    /// Points acknowledged but not yet in the HNSW graph (0 for a flat collection).
    pub index_pending: u64,
    /// Whether a background indexer is inserting the pending tail now (never on a
    /// read-only handle: it searches its tail exactly).
    pub indexer_running: bool,
    /// First LSN the log still holds.
    pub wal_first_lsn: u64,
    /// Checkpoint generations retained, oldest first.
    pub retained_generations: Vec<u64>,
    /// Whether the HNSW graph was opened from the checkpoint (never rebuilt at open).
    pub graph_loaded_from_checkpoint: bool,
    /// Log records replayed when the collection was opened.
    pub replayed_at_open: u64,
    /// Vectors searches and checkpoints have read from the store since open (zero right
    /// after open, because opening reads no vector; the background indexer's reads are
    /// not counted).
    pub vectors_read_since_open: u64,
    /// The torn tail opening cut off the log (writes a crash interrupted before they were
    /// acknowledged), if there was one: where, the first LSN dropped, the bytes dropped.
    pub tail_cut_at_open: Option<vellum_wal::TailCut>,
    /// Point writes acknowledged since open (each upserted or deleted point counts one).
    pub writes_since_open: u64,
    /// Searches run since open (plain, filtered and exact).
    pub searches_since_open: u64,
    /// Checkpoints committed since open.
    pub checkpoints_since_open: u64,
    /// Their total duration.
    pub checkpoint_time_total: std::time::Duration,
    /// The longest time one of them held the collection's state lock (writers and
    /// searches wait only during such holds).
    pub checkpoint_lock_held_max: std::time::Duration,
    /// `fsync`s (`sync_data`) of the log since open: group commit makes them fewer than
    /// the writes.
    pub wal_syncs_since_open: u64,
    /// Time those syncs took in total.
    pub wal_sync_time_total: std::time::Duration,
    /// The longest of them.
    pub wal_sync_time_max: std::time::Duration,
    /// Bytes of log frames written since open.
    pub wal_bytes_written_since_open: u64,
    /// The quantized codes searches use now (`None`: none set, or not trained yet).
    pub quantization: Option<crate::QuantKind>,
    /// Bytes of the code plane's files (what searches read in place of the vectors).
    pub quantized_code_bytes: u64,
    /// Points the quantizer was trained on (0 without one).
    pub quantizer_trained_points: u64,
}

/// One record of a collection's log, as `vellum wal dump` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalEntry {
    /// Its LSN.
    pub lsn: u64,
    /// `"upsert"` or `"delete"`.
    pub kind: &'static str,
    /// The point's id.
    pub id: u64,
    /// Payload size of an upsert that carries one.
    pub payload_bytes: Option<u64>,
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The new generation.
    pub generation: u64,
    /// The LSN it covers.
    pub lsn: u64,
    /// Log segments removed because no retained generation needs them.
    pub wal_segments_removed: u64,
    /// How long the checkpoint held the collection's lock, both handovers together: the
    /// longest a writer or reader waited for it.
    pub lock_held: std::time::Duration,
    /// The whole checkpoint, from taking the state to truncating the log.
    pub elapsed: std::time::Duration,
}

/// What [`crate::Collection::verify`] checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The collection.
    pub collection: String,
    /// Vectors whose checksum was checked.
    pub vectors_checked: u64,
    /// Log records re-read and decoded.
    pub wal_records_checked: u64,
    /// Checkpoint generations re-read with every checksum.
    pub generations_checked: u64,
    /// Payload records (in the current generation's runs) checked against their checksums.
    pub payload_records_checked: u64,
    /// What is wrong (empty when all is well).
    pub problems: Vec<String>,
    /// The torn tail opening cut off the log, if any: not damage (a crash interrupted
    /// writes that were never acknowledged), reported so the operator knows.
    pub tail_cut_at_open: Option<vellum_wal::TailCut>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`crate::Collection::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Vectors moved down into free slots.
    pub moved: u64,
    /// Vector segment files before and after.
    pub segments_before: u32,
    pub segments_after: u32,
    /// Bytes of the vector segment files before and after.
    pub segment_bytes_before: u64,
    pub segment_bytes_after: u64,
}
