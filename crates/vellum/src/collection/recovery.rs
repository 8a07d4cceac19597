//! The recovery path: `CollectionInner::open` loads the newest checkpoint generation and
//! replays the log after it.
//!
//! # Recovery path
//!
//! 1. Load the newest checkpoint generation (checksums verified; optionally fall back).
//! 2. Open the vector store at that generation (maps segment files; no vector is read).
//! 3. Decode payloads, open the saved graph (no rebuild) and read the generation's pending
//!    tail (live slots the graph did not hold yet).
//! 4. Open the WAL (torn tail cut, corruption refused) and replay every record after the
//!    generation's LSN through the same apply step as the write path (idempotent): new
//!    slots join the pending tail, no graph insert happens at open.
//! 5. The indexer thread (started once the collection is shared) indexes the tail in the
//!    background; searches scan it exactly meanwhile.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};
use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec, LoadOptions};
use vellum_fs::{DynFs, FailStop, create_dir_all_durable};
use vellum_index::Hnsw;
use vellum_mmap_vectors::{StoreConfig, VectorStore};
use vellum_wal::{Wal, WalOptions};

use super::checkpoint::GenerationStats;
use super::pending::Pending;
use super::quantized::QuantState;
use super::write::{ApplyOrder, apply};
use super::{
    CHECKPOINTS_DIR, CollectionInner, GRAPH_FILE, PAYLOADS_FILE, PENDING_FILE, QUANTIZER_FILE,
    State, VECTORS_DIR, WAL_DIR,
};
use crate::error::{Error, Result};
use crate::meta::{META_VERSION_ID_KEYED, check_meta, decode_payloads, decode_pending};
use crate::options::{CollectionConfig, DatabaseOptions, IndexKind};
use crate::payloads::PayloadStore;
use crate::record;

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
        let started = std::time::Instant::now();
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
        let mut payloads = PayloadStore::empty(&cp_dir, options.max_payload_runs);
        let mut graph_bytes: Option<vellum_index::GraphBytes> = None;
        let mut graph_loaded = false;
        let mut graph_keyed_by_id = false;
        let mut pending_slots: Vec<u64> = Vec::new();
        let mut saved_quantizer = None;
        if let Some(generation) = &loaded {
            if let Some(bytes) = generation.file(QUANTIZER_FILE) {
                saved_quantizer = Some(QuantState::decode(bytes, &cp_dir.join(QUANTIZER_FILE))?);
            }
            graph_keyed_by_id =
                check_meta(generation.metadata(), id, &config, &cp_dir)? == META_VERSION_ID_KEYED;
            base_lsn = generation.wal_lsn();
            // A generation written before payload runs holds them all in one map: read once,
            // written as a run by the next checkpoint.
            let legacy = match generation.file(PAYLOADS_FILE) {
                Some(bytes) => Some(decode_payloads(bytes, &cp_dir.join(PAYLOADS_FILE))?),
                None => None,
            };
            payloads = PayloadStore::open(&cp_dir, generation, legacy, options.max_payload_runs)?;
            if let Some(bytes) = generation.file(PENDING_FILE) {
                pending_slots = decode_pending(bytes, &cp_dir.join(PENDING_FILE))?;
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
        let mut pending = Pending::default();
        if let Some(graph) = &index {
            if graph_keyed_by_id {
                // A version 1 graph names point ids, not slots: every slot is pending, and
                // the indexer builds the graph in the background; the next checkpoint
                // writes version 2.
                let mut slots: Vec<u64> = store.slots().collect();
                slots.sort_unstable();
                pending_slots = slots;
            }
            for &slot in &pending_slots {
                if store.id_at(slot).is_none() || graph.contains(slot) {
                    return Err(Error::BadDatabaseFile {
                        path: cp_dir.join(PENDING_FILE),
                        reason: format!(
                            "pending slot {slot} {}",
                            if graph.contains(slot) {
                                "is also in the graph"
                            } else {
                                "holds no live vector"
                            }
                        ),
                    });
                }
                pending.push(slot);
            }
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
        let (wal, recovery) = if options.external_log && !options.read_only {
            // Nothing past the checkpoint is kept here: the caller's log holds it.
            Wal::volatile(fs.clone(), dir.join(WAL_DIR), wal_options)?
        } else {
            Wal::open(fs.clone(), dir.join(WAL_DIR), wal_options)?
        };
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
            repairs_left: false,
            vector_reads: AtomicU64::new(0),
            quant: Default::default(),
        };
        // Codes before the replay, so the replayed writes get theirs.
        super::quantized::attach_at_open(
            &mut state,
            &config,
            saved_quantizer,
            options.quantizer_train_min_points,
        )?;
        let mut replayed = 0u64;
        let mut iter = wal.iter_from(base_lsn + 1)?;
        while let Some(item) = iter.next_record() {
            let (lsn, bytes) = item?;
            apply(
                &mut state,
                &mut pending,
                record::decode(bytes, lsn, config.dim)?,
            )?;
            state.applied_lsn = lsn;
            replayed += 1;
        }
        drop(iter);
        // The replay may have brought the points a first quantizer waits for.
        super::quantized::train_if_due(&mut state, &config, options.quantizer_train_min_points)?;
        let repairs_waiting = std::mem::take(&mut state.repairs_left);
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
            pending: Mutex::new(pending),
            room_cv: Condvar::new(),
            index_lag_limit: index_lag_limit(options, config.dim),
            index_lag_searched_limit: options
                .index_lag_searched_points
                .min(index_lag_limit(options, config.dim)),
            repairs_waiting: AtomicBool::new(repairs_waiting),
            last_search_ns: AtomicU64::new(0),
            opened_at: std::time::Instant::now(),
            order: Mutex::new(ApplyOrder { applied }),
            order_cv: Condvar::new(),
            checkpoint_stats: Mutex::new(GenerationStats::of(&checkpointer)),
            checkpointer: Mutex::new(checkpointer),
            failstop: FailStop::new(),
            dropped: AtomicBool::new(false),
            ops_since_checkpoint: AtomicU64::new(replayed),
            counters: super::counters::Counters::default(),
            wal_bytes_at_checkpoint: AtomicU64::new(0),
            options: options.clone(),
            graph_loaded,
            replayed_at_open: replayed,
            tail_cut_at_open: recovery.tail_cut,
        };
        tracing::info!(
            collection = name,
            generation = inner.checkpoint_stats.lock().generation,
            graph_loaded,
            replayed,
            pending = inner.pending.lock().len(),
            tail_cut = ?inner.tail_cut_at_open,
            read_only = options.read_only,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "collection opened: checkpoint loaded, log tail replayed"
        );
        Ok(inner)
    }
}

/// Most slots the pending tail may hold: the points bound, and the bytes bound divided by
/// one vector's bytes; at least one.
fn index_lag_limit(options: &DatabaseOptions, dim: usize) -> usize {
    let by_bytes = options.index_lag_max_bytes / (dim as u64 * 4).max(1);
    options
        .index_lag_max_points
        .min(usize::try_from(by_bytes).unwrap_or(usize::MAX))
        .max(1)
}
