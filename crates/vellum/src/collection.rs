//! One collection: its log, vector store, payloads, index and checkpoints, and the write,
//! read, recovery and checkpoint paths over them.
//!
//! # Write path (numbered as in docs/ARCHITECTURE.md)
//!
//! 1. Validate every point (dimension, finite components) before anything is logged.
//! 2. Append the batch to the WAL as one all-or-nothing batch; under `SyncPolicy::Always`
//!    this returns after a sync covering it (concurrent writers share syncs).
//! 3. Wait for every earlier LSN to be applied, so memory changes in log order.
//! 4. Apply under the state lock: index delete of a replaced id (before its vector moves),
//!    store upsert/delete (copy-on-write slot), payloads, index insert.
//! 5. Acknowledge. A reader sees a batch whole or not at all (step 4 holds the write lock).
//!
//! # Recovery path
//!
//! 1. Load the newest checkpoint generation (checksums verified; optionally fall back).
//! 2. Open the vector store at that generation (maps segment files; no vector is read).
//! 3. Decode payloads and open the saved graph (no rebuild).
//! 4. Open the WAL (torn tail cut, corruption refused) and replay every record after the
//!    generation's LSN through the same apply step as the write path (idempotent).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};
use rustc_hash::FxHashMap;
use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec, FileSpec, LoadOptions};
use vellum_fs::{DynFs, FailStop, create_dir_all_durable};
use vellum_index::{Filter, Hnsw, SearchOptions, VectorSource};
use vellum_mmap_vectors::{StoreConfig, VectorStore};
use vellum_wal::{Wal, WalOptions};

use crate::error::{Error, Result};
use crate::meta::{
    META_VERSION_ID_KEYED, check_meta, decode_payloads, encode_meta, encode_payloads,
};
use crate::options::{CollectionConfig, DatabaseOptions, IndexKind};
use crate::record::{self, Op};

/// Name of the payload file inside a checkpoint generation.
pub(crate) const PAYLOADS_FILE: &str = "payloads";
/// Name of the graph file inside a checkpoint generation.
pub(crate) const GRAPH_FILE: &str = "graph";

/// Sub-directories of a collection directory.
pub(crate) const WAL_DIR: &str = "wal";
pub(crate) const VECTORS_DIR: &str = "vectors";
pub(crate) const CHECKPOINTS_DIR: &str = "checkpoints";

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
}

/// A group of writes applied atomically: after any crash, all of them or none.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

#[derive(Debug, Clone)]
enum BatchOp {
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The point's id.
    pub id: u64,
    /// Its distance to the query under the collection's metric (smaller is closer).
    pub distance: f32,
}

/// Which points a search may return.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum SearchFilter<'a> {
    /// Only these ids.
    Ids(&'a [u64]),
    /// Only ids for which the predicate holds.
    Id(&'a (dyn Fn(u64) -> bool + Sync)),
    /// Only points whose payload (`None` when they have none) satisfies the predicate.
    Payload(&'a (dyn Fn(Option<&[u8]>) -> bool + Sync)),
}

impl std::fmt::Debug for SearchFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchFilter::Ids(ids) => write!(f, "SearchFilter::Ids({} ids)", ids.len()),
            SearchFilter::Id(_) => f.write_str("SearchFilter::Id(..)"),
            SearchFilter::Payload(_) => f.write_str("SearchFilter::Payload(..)"),
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
    /// Points in the HNSW index (equal to `points` unless something is wrong).
    pub indexed: u64,
    /// First LSN the log still holds.
    pub wal_first_lsn: u64,
    /// Checkpoint generations retained, oldest first.
    pub retained_generations: Vec<u64>,
    /// Whether the HNSW graph was opened from the checkpoint (never rebuilt at open).
    pub graph_loaded_from_checkpoint: bool,
    /// Log records replayed when the collection was opened.
    pub replayed_at_open: u64,
    /// Vectors the index has read from the store since open (searches and inserts; zero
    /// right after open, because opening reads no vector).
    pub vectors_read_since_open: u64,
    /// The torn tail opening cut off the log (writes a crash interrupted before they were
    /// acknowledged), if there was one: where, the first LSN dropped, the bytes dropped.
    pub tail_cut_at_open: Option<vellum_wal::TailCut>,
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

/// Mutable state guarded by the collection's lock.
pub(crate) struct State {
    pub(crate) store: VectorStore,
    pub(crate) payloads: FxHashMap<u64, Vec<u8>>,
    /// The HNSW graph, keyed by vector-store slot rather than point id: a visited node's
    /// vector is read by address, with no id lookup. A point's slot changes when its vector
    /// is replaced, so the graph node is replaced with it.
    pub(crate) index: Option<Hnsw>,
    pub(crate) applied_lsn: u64,
    /// Vectors the index has read through the store since open (searches and inserts).
    pub(crate) vector_reads: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("points", &self.store.len())
            .field("applied_lsn", &self.applied_lsn)
            .finish()
    }
}

/// Read counters per thread group, each on its own cache line: the parallel graph build
/// reads vectors from every thread, and one shared counter would bounce between cores on
/// every read.
const READ_SHARDS: usize = 8;

#[derive(Default)]
#[repr(align(64))]
struct PaddedCount(AtomicU64);

static NEXT_SHARD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's shard; `usize::MAX` until first used (a const initialiser keeps the
    /// access a plain load).
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

fn read_shard() -> usize {
    SHARD.with(|shard| {
        let mut s = shard.get();
        if s == usize::MAX {
            s = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) as usize % READ_SHARDS;
            shard.set(s);
        }
        s
    })
}

/// Reads vectors from the store for the index; records the first failure (a slot whose
/// checksum does not match) instead of panicking, and the caller turns it into an error.
/// Counts its reads and adds them to the collection's counter when dropped.
pub(crate) struct StoreSource<'a> {
    store: &'a VectorStore,
    zeros: std::sync::OnceLock<Vec<f32>>,
    failure: Mutex<Option<Error>>,
    reads: &'a AtomicU64,
    counts: [PaddedCount; READ_SHARDS],
}

impl<'a> StoreSource<'a> {
    pub(crate) fn new(store: &'a VectorStore, reads: &'a AtomicU64) -> Self {
        StoreSource {
            store,
            zeros: std::sync::OnceLock::new(),
            failure: Mutex::new(None),
            reads,
            counts: Default::default(),
        }
    }

    pub(crate) fn into_result(self) -> Result<()> {
        match self.failure.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn zeros(&self) -> &[f32] {
        self.zeros
            .get_or_init(|| vec![0.0; self.store.dimension() as usize])
    }
}

impl Drop for StoreSource<'_> {
    fn drop(&mut self) {
        let total: u64 = self
            .counts
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum();
        self.reads.fetch_add(total, Ordering::Relaxed);
    }
}

impl VectorSource for StoreSource<'_> {
    fn dim(&self) -> usize {
        self.store.dimension() as usize
    }

    /// The index keys vectors by store slot (see `State::index`).
    fn vector(&self, slot: u64) -> &[f32] {
        self.counts[read_shard()].0.fetch_add(1, Ordering::Relaxed);
        match self.store.vector_at(slot) {
            Ok(Some(v)) => v,
            Ok(None) => {
                self.failure
                    .lock()
                    .get_or_insert_with(|| Error::Inconsistent {
                        reason: format!(
                            "the index names vector slot {slot}, which holds no live vector"
                        ),
                    });
                self.zeros()
            }
            Err(e) => {
                self.failure.lock().get_or_insert(Error::Store(e));
                self.zeros()
            }
        }
    }
}

/// What `stats` reports of the current checkpoint generation.
#[derive(Debug, Clone, Default)]
struct GenerationStats {
    generation: u64,
    wal_lsn: u64,
    stored_bytes: u64,
    raw_bytes: u64,
    retained: Vec<u64>,
}

impl GenerationStats {
    fn of(cp: &Checkpointer) -> Self {
        match cp.stats() {
            Some(s) => GenerationStats {
                generation: s.generation,
                wal_lsn: s.wal_lsn,
                stored_bytes: s.stored_bytes_total,
                raw_bytes: s.raw_bytes_total,
                retained: s.retained_generations,
            },
            None => GenerationStats::default(),
        }
    }
}

/// The ticket counter that makes writers apply in LSN order.
#[derive(Debug)]
struct ApplyOrder {
    applied: u64,
}

/// A collection's shared internals.
#[derive(Debug)]
pub(crate) struct CollectionInner {
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) config: CollectionConfig,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) fs: DynFs,
    pub(crate) wal: Wal,
    pub(crate) state: RwLock<State>,
    order: Mutex<ApplyOrder>,
    order_cv: Condvar,
    /// Held for a whole checkpoint, and by snapshot export to pin the current generation.
    /// Lock order: `checkpointer` before `state`, never the other way round.
    pub(crate) checkpointer: Mutex<Checkpointer>,
    /// The current generation's numbers, kept apart so `stats` never waits for a
    /// checkpoint in flight.
    checkpoint_stats: Mutex<GenerationStats>,
    failstop: FailStop,
    pub(crate) dropped: AtomicBool,
    ops_since_checkpoint: AtomicU64,
    wal_bytes_at_checkpoint: AtomicU64,
    options: DatabaseOptions,
    graph_loaded: bool,
    replayed_at_open: u64,
    tail_cut_at_open: Option<vellum_wal::TailCut>,
}

impl CollectionInner {
    /// Opens (creating if needed) the collection in `dir` and recovers it.
    pub(crate) fn open(
        fs: DynFs,
        dir: &Path,
        id: u64,
        name: &str,
        config: CollectionConfig,
        options: &DatabaseOptions,
    ) -> Result<CollectionInner> {
        create_dir_all_durable(fs.as_ref(), dir)?;
        let cp_dir = dir.join(CHECKPOINTS_DIR);
        let (checkpointer, loaded) = Checkpointer::open_with(
            fs.clone(),
            &cp_dir,
            CheckpointConfig {
                retain_generations: options.retain_checkpoints,
                zstd_level: options.zstd_level.unwrap_or(3),
            },
            LoadOptions {
                fallback_to_previous: options.fallback_to_previous_checkpoint,
            },
        )?;
        let mut base_lsn = 0;
        let mut payloads = FxHashMap::default();
        let mut graph_bytes: Option<vellum_index::GraphBytes> = None;
        let mut graph_loaded = false;
        let mut graph_keyed_by_id = false;
        if let Some(generation) = &loaded {
            graph_keyed_by_id =
                check_meta(generation.metadata(), id, &config, &cp_dir)? == META_VERSION_ID_KEYED;
            base_lsn = generation.wal_lsn();
            if let Some(bytes) = generation.file(PAYLOADS_FILE) {
                payloads = decode_payloads(bytes, &cp_dir.join(PAYLOADS_FILE))?;
            }
            // Mapped, not copied: the graph is searched in place until its first change.
            graph_bytes = generation.shared_file(GRAPH_FILE).map(|f| f.shared());
            if graph_keyed_by_id {
                // A version 1 graph names point ids, not slots: it is rebuilt below from
                // the store, once; the next checkpoint writes version 2.
                graph_bytes = None;
            }
        }
        let mut store_config = StoreConfig::new(config.dim as u32);
        if let Some(slots) = options.slots_per_segment {
            store_config.slots_per_segment = slots;
        }
        if options.zstd_level.is_none() {
            store_config.idmap_codec = Codec::None;
        }
        let store = VectorStore::open_from(
            fs.clone(),
            &dir.join(VECTORS_DIR),
            store_config,
            &checkpointer,
            loaded.as_ref(),
        )?;
        let index = match config.index {
            IndexKind::Flat => None,
            IndexKind::Hnsw(params) => Some(match graph_bytes {
                Some(bytes) => {
                    let graph = Hnsw::open(bytes)?;
                    graph_loaded = true;
                    if graph.dim() != config.dim || graph.metric() != config.metric {
                        return Err(Error::BadDatabaseFile {
                            path: cp_dir.join(GRAPH_FILE),
                            reason: format!(
                                "graph is {}-dimensional {:?}, the collection {}-dimensional {:?}",
                                graph.dim(),
                                graph.metric(),
                                config.dim,
                                config.metric
                            ),
                        });
                    }
                    graph
                }
                None => Hnsw::new(config.dim, config.metric, params)?,
            }),
        };
        let mut index = index;
        if graph_keyed_by_id && let Some(graph) = index.as_mut() {
            let mut slots: Vec<u64> = store.slots().collect();
            slots.sort_unstable();
            let reads = AtomicU64::new(0);
            let source = StoreSource::new(&store, &reads);
            graph.insert_batch_parallel(&source, &slots)?;
            source.into_result()?;
        }
        let wal_options = WalOptions {
            segment_size_bytes: options.wal_segment_size_bytes,
            // A batch is one frame: allow up to 8 MiB, or half a segment when segments are
            // small, so a segment always holds a whole frame.
            max_record_bytes: (8u64 << 20).min(options.wal_segment_size_bytes / 2),
            // A log created empty (a restored collection) continues after the checkpoint.
            first_lsn: base_lsn + 1,
            sync_policy: options.sync_policy,
            recovery_mode: options.recovery_mode,
            ..WalOptions::default()
        };
        let (wal, recovery) = Wal::open(fs.clone(), dir.join(WAL_DIR), wal_options)?;
        if recovery.last_lsn >= recovery.first_lsn && recovery.first_lsn > base_lsn + 1 {
            return Err(Error::BadDatabaseFile {
                path: dir.join(WAL_DIR),
                reason: format!(
                    "the log starts at LSN {} but the checkpoint covers only up to {base_lsn}: \
                     records in between are missing",
                    recovery.first_lsn
                ),
            });
        }
        let mut state = State {
            store,
            payloads,
            index,
            applied_lsn: base_lsn,
            vector_reads: AtomicU64::new(0),
        };
        let mut replayed = 0u64;
        {
            // Consecutive upserts of distinct ids are replayed as one group, so a long log
            // tail takes the parallel graph build instead of one insert at a time. The
            // result is the same as applying them in order: no id repeats inside a group.
            let mut group: Vec<BatchOp> = Vec::new();
            let mut group_ids = rustc_hash::FxHashSet::default();
            let mut iter = wal.iter_from(base_lsn + 1)?;
            while let Some(item) = iter.next_record() {
                let (lsn, bytes) = item?;
                match record::decode(bytes, lsn, config.dim)? {
                    Op::Upsert {
                        id,
                        vector,
                        payload,
                    } if group_ids.insert(id) => {
                        group.push(BatchOp::Upsert(Point {
                            id,
                            vector,
                            payload,
                        }));
                        if group.len() >= REPLAY_GROUP_MAX {
                            apply_batch(&mut state, std::mem::take(&mut group))?;
                            group_ids.clear();
                        }
                    }
                    op => {
                        apply_batch(&mut state, std::mem::take(&mut group))?;
                        group_ids.clear();
                        apply(&mut state, op)?;
                    }
                }
                state.applied_lsn = lsn;
                replayed += 1;
            }
            apply_batch(&mut state, group)?;
        }
        let applied = state.applied_lsn;
        // Count reads from here on: replaying the tail is not "opening".
        state.vector_reads.store(0, Ordering::Relaxed);
        let inner = CollectionInner {
            name: name.to_owned(),
            id,
            config,
            dir: dir.to_path_buf(),
            fs,
            wal,
            state: RwLock::new(state),
            order: Mutex::new(ApplyOrder { applied }),
            order_cv: Condvar::new(),
            checkpoint_stats: Mutex::new(GenerationStats::of(&checkpointer)),
            checkpointer: Mutex::new(checkpointer),
            failstop: FailStop::new(),
            dropped: AtomicBool::new(false),
            ops_since_checkpoint: AtomicU64::new(replayed),
            wal_bytes_at_checkpoint: AtomicU64::new(0),
            options: options.clone(),
            graph_loaded,
            replayed_at_open: replayed,
            tail_cut_at_open: recovery.tail_cut,
        };
        Ok(inner)
    }

    /// Refuses `operation` on a collection opened read-only.
    pub(crate) fn check_writable(&self, operation: &'static str) -> Result<()> {
        if self.options.read_only {
            return Err(Error::ReadOnly {
                operation,
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        if self.dropped.load(Ordering::Acquire) {
            return Err(Error::UnknownCollection {
                name: self.name.clone(),
            });
        }
        self.failstop.check().map_err(|e| self.poisoned(e))
    }

    fn poisoned(&self, e: vellum_fs::Error) -> Error {
        match e {
            vellum_fs::Error::Poisoned { cause } => Error::Poisoned {
                collection: self.name.clone(),
                cause,
            },
            other => Error::Fs(other),
        }
    }

    fn stop(&self, e: &Error) {
        self.failstop.poison(e);
        // Wake writers waiting for their turn: they will see the latch.
        let _guard = self.order.lock();
        self.order_cv.notify_all();
    }

    fn check_vector(&self, id: Option<u64>, v: &[f32]) -> Result<()> {
        if v.len() != self.config.dim {
            return Err(Error::DimensionMismatch {
                collection: self.name.clone(),
                expected: self.config.dim,
                found: v.len(),
                id,
            });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                collection: self.name.clone(),
                id,
                index,
            });
        }
        Ok(())
    }

    /// Writes a batch durably (per the sync policy) and applies it; returns its last LSN.
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<u64> {
        self.check_usable()?;
        self.check_writable("writing")?;
        if batch.is_empty() {
            return Ok(self.order.lock().applied);
        }
        let mut records = Vec::with_capacity(batch.ops.len());
        for op in &batch.ops {
            records.push(match op {
                BatchOp::Upsert(p) => {
                    self.check_vector(Some(p.id), &p.vector)?;
                    record::encode_upsert(p.id, &p.vector, p.payload.as_deref())?
                }
                BatchOp::Delete(id) => record::encode_delete(*id),
            });
        }
        let lsns = match self.wal.append_batch(&records) {
            Ok(lsns) => lsns,
            Err(e) => {
                let e = Error::Wal(e);
                // A refused batch (too large, say) consumed no LSN; an I/O failure poisoned
                // the log and may have: only then stop, so later writers do not wait for an
                // LSN that will never be applied.
                if self.wal.is_poisoned() {
                    self.stop(&e);
                }
                return Err(e);
            }
        };
        // Apply in LSN order: wait until every earlier batch is applied.
        {
            let mut order = self.order.lock();
            while order.applied + 1 < *lsns.start() {
                if self.failstop.is_poisoned() {
                    return Err(self.poisoned(self.failstop.check().unwrap_err()));
                }
                self.order_cv.wait(&mut order);
            }
        }
        let result = {
            let mut state = self.state.write();
            let result = apply_batch(&mut state, batch.ops);
            if result.is_ok() {
                state.applied_lsn = *lsns.end();
            }
            result
        };
        if let Err(e) = result {
            // Memory no longer matches the log: stop; reopening replays the log.
            self.stop(&e);
            return Err(e);
        }
        {
            let mut order = self.order.lock();
            order.applied = *lsns.end();
            self.order_cv.notify_all();
        }
        let n = (lsns.end() - lsns.start()) + 1;
        self.ops_since_checkpoint.fetch_add(n, Ordering::Relaxed);
        Ok(*lsns.end())
    }

    /// Whether a checkpoint threshold is crossed.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        if self.failstop.is_poisoned() || self.dropped.load(Ordering::Acquire) {
            return false;
        }
        let ops = self.ops_since_checkpoint.load(Ordering::Relaxed);
        if ops >= self.options.checkpoint_after_ops {
            return true;
        }
        let wal_bytes = self.wal.stats().log_bytes;
        ops > 0
            && wal_bytes.saturating_sub(self.wal_bytes_at_checkpoint.load(Ordering::Relaxed))
                >= self.options.checkpoint_after_wal_bytes
    }

    /// Makes the current state durable as a new checkpoint generation and drops log
    /// segments no retained generation needs.
    pub(crate) fn checkpoint(&self) -> Result<CheckpointInfo> {
        self.check_usable()?;
        self.check_writable("checkpointing")?;
        let mut cp = self.checkpointer.lock();
        // Dropped while this call waited for the lock: the directory is going away.
        self.check_usable()?;
        let result = self.checkpoint_locked(&mut cp);
        if let Err(e) = &result {
            self.stop(e);
        }
        result
    }

    fn checkpoint_locked(&self, cp: &mut Checkpointer) -> Result<CheckpointInfo> {
        let codec = match self.options.zstd_level {
            Some(level) => Codec::Zstd { level },
            None => Codec::None,
        };
        // 1. A short handover under the state lock: the state at one LSN, encoded in memory,
        //    with the slots it references protected from reuse.
        let started = Instant::now();
        let (lsn, ops_covered, meta, payload_bytes, graph_bytes, prepared, first_hold) = {
            let mut state = self.state.write();
            let held = Instant::now();
            let lsn = state.applied_lsn;
            let ops_covered = self.ops_since_checkpoint.load(Ordering::Relaxed);
            let points = state.store.len() as u64;
            let payload_bytes = encode_payloads(&state.payloads);
            let graph_bytes = match &state.index {
                Some(index) => Some(index.to_bytes()?),
                None => None,
            };
            let meta = encode_meta(self.id, &self.config, points);
            let prepared = state.store.prepare_checkpoint("")?;
            let first_hold = held.elapsed();
            (
                lsn,
                ops_covered,
                meta,
                payload_bytes,
                graph_bytes,
                prepared,
                first_hold,
            )
        };
        // 2. The slow part without the lock: readers and writers go on while the slots are
        //    flushed and the generation's files are written, synced and published.
        let flushed = prepared.flush()?;
        let mut files: Vec<FileSpec<'_>> = flushed.files().to_vec();
        files.push(FileSpec {
            name: PAYLOADS_FILE,
            bytes: &payload_bytes,
            codec,
        });
        if let Some(graph) = &graph_bytes {
            files.push(FileSpec {
                name: GRAPH_FILE,
                bytes: graph,
                codec: Codec::None,
            });
        }
        let info = match cp.commit(lsn, &meta, &files) {
            Ok(info) => info,
            Err(e) => {
                // Stop the collection with the real cause before the store learns the
                // checkpoint was given up, so every caller's first error names it.
                let e = Error::from(e);
                self.stop(&e);
                drop(files);
                flushed.abandon(&e);
                return Err(e);
            }
        };
        drop(files);
        *self.checkpoint_stats.lock() = GenerationStats::of(cp);
        // 3. Another short handover: slots the new generation no longer references become
        //    reusable.
        let second_hold = {
            let mut state = self.state.write();
            let held = Instant::now();
            state.store.publish_checkpoint(flushed, &info)?;
            held.elapsed()
        };
        self.ops_since_checkpoint
            .fetch_sub(ops_covered, Ordering::Relaxed);
        let removed = self.wal.truncate_before(info.oldest_retained_wal_lsn + 1)?;
        self.wal_bytes_at_checkpoint
            .store(self.wal.stats().log_bytes, Ordering::Relaxed);
        Ok(CheckpointInfo {
            generation: info.generation,
            lsn: info.wal_lsn,
            wal_segments_removed: removed as u64,
            lock_held: first_hold + second_hold,
            elapsed: started.elapsed(),
        })
    }

    /// Makes every write so far durable (a barrier under every sync policy).
    pub(crate) fn sync(&self) -> Result<()> {
        self.check_usable()?;
        self.wal.sync().map(drop).map_err(|e| {
            let e = Error::Wal(e);
            self.stop(&e);
            e
        })
    }

    pub(crate) fn get(&self, id: u64) -> Result<Option<Point>> {
        self.check_usable()?;
        let state = self.state.read();
        let Some(v) = state.store.get(id)? else {
            return Ok(None);
        };
        Ok(Some(Point {
            id,
            vector: v.to_vec(),
            payload: state.payloads.get(&id).cloned(),
        }))
    }

    /// The points among `ids` that are live now, in the order given, read under one lock
    /// (so the page is one consistent state).
    pub(crate) fn get_many(&self, ids: &[u64]) -> Result<Vec<Point>> {
        self.check_usable()?;
        let state = self.state.read();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(v) = state.store.get(id)? {
                out.push(Point {
                    id,
                    vector: v.to_vec(),
                    payload: state.payloads.get(&id).cloned(),
                });
            }
        }
        Ok(out)
    }

    pub(crate) fn with_vector<R>(&self, id: u64, f: impl FnOnce(&[f32]) -> R) -> Result<Option<R>> {
        self.check_usable()?;
        let state = self.state.read();
        Ok(state.store.get(id)?.map(f))
    }

    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<Vec<Hit>> {
        self.check_usable()?;
        self.check_vector(None, query)?;
        let state = self.state.read();
        let store = &state.store;
        let payloads = &state.payloads;
        // The index and the scan below are keyed by slot: filters on ids are translated.
        let id_pred;
        let payload_pred;
        let allowed_slots: Vec<u64>;
        let filter = match params.filter {
            None => None,
            Some(SearchFilter::Ids(ids)) => {
                allowed_slots = ids.iter().filter_map(|&id| store.slot_of(id)).collect();
                Some(Filter::AllowIds(&allowed_slots))
            }
            Some(SearchFilter::Id(p)) => {
                id_pred = move |slot: u64| store.id_at(slot).is_some_and(p);
                Some(Filter::Allow(&id_pred))
            }
            Some(SearchFilter::Payload(p)) => {
                payload_pred = move |slot: u64| {
                    store
                        .id_at(slot)
                        .is_some_and(|id| p(payloads.get(&id).map(Vec::as_slice)))
                };
                Some(Filter::Allow(&payload_pred))
            }
        };
        let source = StoreSource::new(store, &state.vector_reads);
        let hits = match (&state.index, params.exact) {
            (Some(index), false) => index.search_with(
                &source,
                query,
                k,
                &SearchOptions {
                    ef: params.ef,
                    filter,
                },
            )?,
            _ => {
                let slots: Vec<u64> = store.slots().collect();
                vellum_index::exact_search(
                    &source,
                    &slots,
                    self.config.metric,
                    query,
                    k,
                    filter.as_ref(),
                )?
            }
        };
        source.into_result()?;
        hits.into_iter()
            .map(|n| match store.id_at(n.id) {
                Some(id) => Ok(Hit {
                    id,
                    distance: n.distance,
                }),
                None => Err(Error::Inconsistent {
                    reason: format!(
                        "the index returned vector slot {}, which holds no live vector",
                        n.id
                    ),
                }),
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.state.read().store.len()
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.state.read().store.ids().collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn stats(&self) -> CollectionStats {
        let state = self.state.read();
        let wal = self.wal.stats();
        let store = state.store.stats();
        let cp = self.checkpoint_stats.lock().clone();
        CollectionStats {
            name: self.name.clone(),
            points: state.store.len() as u64,
            payloads: state.payloads.len() as u64,
            wal_bytes: wal.log_bytes,
            wal_segments: wal.segments as u64,
            last_lsn: state.applied_lsn,
            ops_since_checkpoint: self.ops_since_checkpoint.load(Ordering::Relaxed),
            generation: cp.generation,
            checkpoint_lsn: cp.wal_lsn,
            checkpoint_stored_bytes: cp.stored_bytes,
            checkpoint_raw_bytes: cp.raw_bytes,
            vector_segment_bytes: store.segment_bytes,
            indexed: state.index.as_ref().map_or(state.store.len(), Hnsw::len) as u64,
            wal_first_lsn: wal.first_lsn,
            retained_generations: cp.retained,
            graph_loaded_from_checkpoint: self.graph_loaded,
            replayed_at_open: self.replayed_at_open,
            vectors_read_since_open: state.vector_reads.load(Ordering::Relaxed),
            tail_cut_at_open: self.tail_cut_at_open.clone(),
        }
    }

    pub(crate) fn wal_entries(&self, from_lsn: u64, limit: usize) -> Result<Vec<WalEntry>> {
        let mut out = Vec::new();
        let mut iter = self
            .wal
            .iter_from(from_lsn.max(self.wal.stats().first_lsn))?;
        while out.len() < limit {
            let Some(item) = iter.next_record() else {
                break;
            };
            let (lsn, bytes) = item?;
            out.push(match record::decode(bytes, lsn, self.config.dim)? {
                Op::Upsert { id, payload, .. } => WalEntry {
                    lsn,
                    kind: "upsert",
                    id,
                    payload_bytes: payload.map(|p| p.len() as u64),
                },
                Op::Delete { id } => WalEntry {
                    lsn,
                    kind: "delete",
                    id,
                    payload_bytes: None,
                },
            });
        }
        Ok(out)
    }

    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            collection: self.name.clone(),
            tail_cut_at_open: self.tail_cut_at_open.clone(),
            ..VerifyReport::default()
        };
        // One consistent look at headers, ids and the index; then the slots a page at a
        // time, so writers wait for one page of checksums, never for the whole store.
        let ids = {
            let state = self.state.read();
            state.store.verify_headers()?;
            if let Some(index) = &state.index {
                let mut indexed = index.ids()?;
                indexed.sort_unstable();
                let mut stored: Vec<u64> = state.store.slots().collect();
                stored.sort_unstable();
                if indexed != stored {
                    report.problems.push(format!(
                        "the index holds {} vectors, the store {}: they differ",
                        indexed.len(),
                        stored.len()
                    ));
                }
            }
            let mut ids: Vec<u64> = state.store.ids().collect();
            ids.sort_unstable();
            ids
        };
        for page in ids.chunks(VERIFY_PAGE) {
            let store = self.state.read().store.verify_ids(page)?;
            report.vectors_checked += store.checked;
            for fault in &store.damaged {
                report.problems.push(format!(
                    "vector of id {} in {} at offset {} does not match its checksum",
                    fault.id,
                    fault.path.display(),
                    fault.offset
                ));
            }
        }
        let cp = self.checkpointer.lock();
        for (generation, why) in cp.damaged_generations() {
            report.problems.push(format!(
                "checkpoint generation {generation}, which retention keeps for a fallback, \
                 cannot be read: {why}"
            ));
        }
        for generation in cp.retained_generations() {
            match cp.load_generation(generation) {
                Ok(_) => report.generations_checked += 1,
                Err(e) => report
                    .problems
                    .push(format!("checkpoint generation {generation}: {e}")),
            }
        }
        // Every retained generation must be able to roll forward: the log has to hold
        // every record after the oldest one's LSN.
        let wal_first = self.wal.stats().first_lsn;
        let needed = cp.oldest_retained_wal_lsn().map_or(1, |l| l + 1);
        if wal_first > needed {
            report.problems.push(format!(
                "the log in {} starts at LSN {wal_first}, but checkpoint generation {} needs \
                 every record from LSN {needed}: the segments before it are missing",
                self.dir.join(WAL_DIR).display(),
                cp.oldest_retained_generation().unwrap_or(0),
            ));
        }
        let first = needed.max(wal_first);
        // The checkpointer lock stays held while the log is read: a checkpoint meanwhile
        // could remove the segments being checked and look like damage.
        let mut iter = self.wal.iter_from(first)?;
        while let Some(item) = iter.next_record() {
            match item {
                Ok((lsn, bytes)) => match record::decode(bytes, lsn, self.config.dim) {
                    Ok(_) => report.wal_records_checked += 1,
                    Err(e) => report.problems.push(e.to_string()),
                },
                Err(e) => {
                    report.problems.push(format!("log: {e}"));
                    break;
                }
            }
        }
        drop(cp);
        Ok(report)
    }
}

/// Batches at least this large with distinct ids and only upserts are inserted into the
/// HNSW graph with the parallel batch build.
const PARALLEL_INSERT_MIN_BATCH: usize = 256;

/// Vector checksums `verify` checks per hold of the collection's read lock.
const VERIFY_PAGE: usize = 4096;

/// Most upserts replayed as one group at open.
const REPLAY_GROUP_MAX: usize = 4096;

/// Applies a batch in order. A large upsert-only batch of distinct ids takes the parallel
/// graph build; the result is the same set of live ids and vectors as one-by-one.
fn apply_batch(state: &mut State, ops: Vec<BatchOp>) -> Result<()> {
    let parallel = state.index.is_some()
        && ops.len() >= PARALLEL_INSERT_MIN_BATCH
        && ops.iter().all(|op| matches!(op, BatchOp::Upsert(_)))
        && {
            let mut ids: Vec<u64> = ops
                .iter()
                .map(|op| match op {
                    BatchOp::Upsert(p) => p.id,
                    BatchOp::Delete(id) => *id,
                })
                .collect();
            ids.sort_unstable();
            ids.windows(2).all(|w| w[0] != w[1])
        };
    if !parallel {
        for op in ops {
            let op = match op {
                BatchOp::Upsert(p) => Op::Upsert {
                    id: p.id,
                    vector: p.vector,
                    payload: p.payload,
                },
                BatchOp::Delete(id) => Op::Delete { id },
            };
            apply(state, op)?;
        }
        return Ok(());
    }
    let State {
        store,
        index,
        payloads,
        vector_reads,
        ..
    } = state;
    let index = index.as_mut().expect("checked above");
    let mut slots = Vec::with_capacity(ops.len());
    for op in ops {
        let BatchOp::Upsert(p) = op else {
            unreachable!("checked above")
        };
        unindex(store, Some(&mut *index), vector_reads, p.id)?;
        store.upsert(p.id, &p.vector)?;
        set_payload(payloads, p.id, p.payload);
        slots.push(slot_after_upsert(store, p.id)?);
    }
    let source = StoreSource::new(store, vector_reads);
    index.insert_batch_parallel(&source, &slots)?;
    source.into_result()
}

/// Removes `id`'s node (keyed by its current slot) from the graph if it is there. Done
/// before the store moves or drops the vector, so the graph is repaired with the vector it
/// was linked by.
fn unindex(
    store: &VectorStore,
    index: Option<&mut Hnsw>,
    reads: &AtomicU64,
    id: u64,
) -> Result<()> {
    if let Some(index) = index
        && let Some(slot) = store.slot_of(id)
        && index.contains(slot)
    {
        let source = StoreSource::new(store, reads);
        index.delete(&source, slot)?;
        source.into_result()?;
    }
    Ok(())
}

/// The slot `id` was just stored in.
fn slot_after_upsert(store: &VectorStore, id: u64) -> Result<u64> {
    store.slot_of(id).ok_or_else(|| Error::Inconsistent {
        reason: format!("id {id} is missing from the store right after its upsert"),
    })
}

fn set_payload(payloads: &mut FxHashMap<u64, Vec<u8>>, id: u64, payload: Option<Vec<u8>>) {
    match payload {
        Some(p) => {
            payloads.insert(id, p);
        }
        None => {
            payloads.remove(&id);
        }
    }
}

/// Applies one operation to memory. Idempotent for replay: re-applying a record whose effect
/// is present leaves the same state.
fn apply(state: &mut State, op: Op) -> Result<()> {
    let State {
        store,
        index,
        payloads,
        vector_reads,
        ..
    } = state;
    match op {
        Op::Upsert {
            id,
            vector,
            payload,
        } => {
            unindex(store, index.as_mut(), vector_reads, id)?;
            store.upsert(id, &vector)?;
            set_payload(payloads, id, payload);
            if let Some(index) = index.as_mut() {
                let slot = slot_after_upsert(store, id)?;
                let source = StoreSource::new(store, vector_reads);
                index.insert(&source, slot)?;
                source.into_result()?;
            }
        }
        Op::Delete { id } => {
            unindex(store, index.as_mut(), vector_reads, id)?;
            store.delete(id)?;
            payloads.remove(&id);
        }
    }
    Ok(())
}
