//! One collection: its log, vector store, payloads, index and checkpoints, and the write,
//! read, recovery and checkpoint paths over them (one file each below).

mod checkpoint;
mod compact;
mod counters;
mod filtered;
mod handle;
mod indexer;
mod payload_index;
mod pending;
mod quantized;
mod reads;
mod recovery;
mod scan;
mod source;
mod types;
mod verify;
mod write;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};
use vellum_checkpoint::Checkpointer;
use vellum_fs::{DynFs, FailStop};
use vellum_index::Hnsw;
use vellum_mmap_vectors::VectorStore;
use vellum_wal::Wal;

use crate::error::{Error, Result};
use crate::options::{CollectionConfig, DatabaseOptions};
use checkpoint::GenerationStats;
pub(crate) use indexer::Indexers;
use pending::Pending;
use write::ApplyOrder;

pub use handle::{Collection, POINTS_PAGE, Points};
pub use types::{
    CheckpointInfo, CollectionStats, CompactReport, Hit, Point, SearchFilter, SearchParams,
    VerifyReport, WalEntry, WriteBatch,
};

/// Name of the payload map of generations written before payload runs (read, not written).
pub(crate) const PAYLOADS_FILE: &str = "payloads";
/// Name of the graph file inside a checkpoint generation.
pub(crate) const GRAPH_FILE: &str = "graph";
/// Name of the pending-tail file inside a checkpoint generation (docs/format/pending.md).
pub(crate) const PENDING_FILE: &str = "pending";

/// Sub-directories of a collection directory.
pub(crate) const WAL_DIR: &str = "wal";
pub(crate) const VECTORS_DIR: &str = "vectors";
pub(crate) const CHECKPOINTS_DIR: &str = "checkpoints";

/// Vector checksums `verify` checks per hold of the collection's read lock.
const VERIFY_PAGE: usize = 4096;

/// Mutable state guarded by the collection's lock.
pub(crate) struct State {
    pub(crate) store: VectorStore,
    /// Payloads: mapped runs, a location table, and the changes since the last checkpoint.
    pub(crate) payloads: crate::payloads::PayloadStore,
    /// The HNSW graph, keyed by vector-store slot rather than point id: a visited node's
    /// vector is read by address, with no id lookup. A point's slot changes when its vector
    /// is replaced, so the graph node is replaced with it. Every live slot is in the graph
    /// or in `CollectionInner::pending` (see pending.rs). Changed through `&self`: the
    /// indexer inserts holding this lock shared, beside searches.
    pub(crate) index: Option<Hnsw>,
    pub(crate) applied_lsn: u64,
    /// Set by an apply that left tombstones in the graph to repair (moved to
    /// `CollectionInner::repairs_waiting` once the write lock is released).
    pub(crate) repairs_left: bool,
    /// Vectors the index has read through the store since open (searches and inserts).
    pub(crate) vector_reads: AtomicU64,
    /// The quantized copy: the setting, and the trained quantizer whose codes the store's
    /// code plane holds (`quantized.rs`).
    pub(crate) quant: quantized::Quant,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("points", &self.store.len())
            .field("applied_lsn", &self.applied_lsn)
            .finish()
    }
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
    /// Lock order: `checkpointer` → `state` → `pending` → `order`.
    pub(crate) state: RwLock<State>,
    /// The pending tail (slots not yet in the graph). Changed by writers holding `state`
    /// exclusively (adds, removals) and by indexers holding it shared (taking, finishing).
    pub(crate) pending: Mutex<Pending>,
    /// Signalled when pending slots are indexed (room for writers, `wait_indexed`).
    room_cv: Condvar,
    /// Most slots the pending tail may hold (from the options' points and bytes bounds).
    index_lag_limit: usize,
    /// Most slots it may hold while searches run (`index_lag_limit` or less).
    index_lag_searched_limit: usize,
    /// When the collection was opened; `last_search_ns` counts from it.
    opened_at: std::time::Instant,
    /// Set by a writer that left deleted graph nodes to repair; cleared by the indexer.
    repairs_waiting: AtomicBool,
    /// When the latest search started, in nanoseconds since `opened_at` (0: none yet). The
    /// indexer inserts on one thread while searches run, and the lag bound tightens
    /// (`indexer.rs`).
    last_search_ns: AtomicU64,
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
    /// Writes, searches and checkpoints since open (`counters.rs`; no lock).
    counters: counters::Counters,
    wal_bytes_at_checkpoint: AtomicU64,
    options: DatabaseOptions,
    graph_loaded: bool,
    replayed_at_open: u64,
    tail_cut_at_open: Option<vellum_wal::TailCut>,
}

pub(crate) use quantized::QUANTIZER_FILE;

/// The quantizer file's decoder on arbitrary bytes (the `collection_files` fuzz target):
/// whatever decodes re-encodes to the same bytes.
pub(crate) fn fuzz_quantizer_file(bytes: &[u8]) {
    if let Ok(state) = quantized::QuantState::decode(bytes, std::path::Path::new("fuzz")) {
        assert_eq!(
            state.encode(),
            bytes,
            "a decoded quantizer file re-encodes differently"
        );
    }
}

impl CollectionInner {
    /// The configuration, with the quantization as set now (it can change after open).
    pub(crate) fn current_config(&self) -> CollectionConfig {
        CollectionConfig {
            quantization: self.state.read().quant.wanted,
            ..self.config
        }
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
}
