//! How a database and its collections are configured.

use std::time::Duration;

pub use vellum_index::{HnswParams, Metric, QuantKind};
pub use vellum_wal::{RecoveryMode, SyncPolicy};

use vellum_snapshot_format::ImportLimits;

use crate::error::{Error, Result};

/// How a database is opened. Build one with [`DatabaseOptions::default`] and the `with_*`
/// methods; every default is documented on its method.
#[derive(Clone)]
pub struct DatabaseOptions {
    pub(crate) sync_policy: SyncPolicy,
    /// The collections keep no write-ahead log (see [`DatabaseOptions::with_external_log`]).
    pub(crate) external_log: bool,
    pub(crate) recovery_mode: RecoveryMode,
    pub(crate) wal_segment_size_bytes: u64,
    pub(crate) checkpoint_after_ops: u64,
    pub(crate) checkpoint_after_wal_bytes: u64,
    pub(crate) checkpoint_after_payload_bytes: u64,
    pub(crate) background_checkpoints: bool,
    pub(crate) checkpoint_poll_interval: Duration,
    pub(crate) retain_checkpoints: u32,
    pub(crate) max_payload_runs: usize,
    pub(crate) zstd_level: Option<i32>,
    pub(crate) fallback_to_previous_checkpoint: bool,
    pub(crate) slots_per_segment: Option<u32>,
    pub(crate) import_limits: ImportLimits,
    /// Set by [`crate::Database::open_read_only`]: every change is refused.
    pub(crate) read_only: bool,
    pub(crate) index_lag_max_points: usize,
    pub(crate) index_lag_max_bytes: u64,
    pub(crate) index_lag_searched_points: usize,
    pub(crate) searched_window: std::time::Duration,
    /// Called by an indexer with a chunk taken, before inserting it (tests pause it here).
    pub(crate) indexer_hook: Option<IndexerHook>,
    pub(crate) background_indexing: bool,
    pub(crate) max_open_collections: Option<usize>,
    pub(crate) compact_below_live_fraction: Option<f64>,
    pub(crate) quantizer_train_min_points: usize,
    /// Called by a conversion to new codes before each chunk (tests pause it here).
    pub(crate) quantization_hook: Option<IndexerHook>,
}

/// A function an indexer calls before inserting each chunk (see
/// [`DatabaseOptions::with_indexer_hook`]).
pub type IndexerHook = std::sync::Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for DatabaseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseOptions")
            .field("sync_policy", &self.sync_policy)
            .field("external_log", &self.external_log)
            .field("recovery_mode", &self.recovery_mode)
            .field("wal_segment_size_bytes", &self.wal_segment_size_bytes)
            .field("checkpoint_after_ops", &self.checkpoint_after_ops)
            .field(
                "checkpoint_after_wal_bytes",
                &self.checkpoint_after_wal_bytes,
            )
            .field(
                "checkpoint_after_payload_bytes",
                &self.checkpoint_after_payload_bytes,
            )
            .field("background_checkpoints", &self.background_checkpoints)
            .field("retain_checkpoints", &self.retain_checkpoints)
            .field("max_payload_runs", &self.max_payload_runs)
            .field("zstd_level", &self.zstd_level)
            .field("read_only", &self.read_only)
            .field("max_open_collections", &self.max_open_collections)
            .field(
                "compact_below_live_fraction",
                &self.compact_below_live_fraction,
            )
            .field(
                "quantizer_train_min_points",
                &self.quantizer_train_min_points,
            )
            .field("index_lag_max_points", &self.index_lag_max_points)
            .field("index_lag_max_bytes", &self.index_lag_max_bytes)
            .field("index_lag_searched_points", &self.index_lag_searched_points)
            .field("searched_window", &self.searched_window)
            .field("indexer_hook", &self.indexer_hook.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            sync_policy: SyncPolicy::Always,
            external_log: false,
            recovery_mode: RecoveryMode::TolerateTornTail,
            wal_segment_size_bytes: 64 << 20,
            checkpoint_after_ops: 50_000,
            checkpoint_after_wal_bytes: 64 << 20,
            checkpoint_after_payload_bytes: 32 << 20,
            background_checkpoints: true,
            checkpoint_poll_interval: Duration::from_millis(200),
            retain_checkpoints: 2,
            max_payload_runs: 64,
            zstd_level: Some(3),
            fallback_to_previous_checkpoint: false,
            slots_per_segment: None,
            import_limits: ImportLimits::default(),
            read_only: false,
            index_lag_max_points: 16_384,
            index_lag_max_bytes: 32 << 20,
            index_lag_searched_points: 1024,
            searched_window: std::time::Duration::from_millis(100),
            indexer_hook: None,
            background_indexing: true,
            max_open_collections: None,
            compact_below_live_fraction: Some(0.5),
            quantizer_train_min_points: QUANTIZER_TRAIN_MIN_POINTS,
            quantization_hook: None,
        }
    }
}

impl DatabaseOptions {
    /// Collections keep no write-ahead log of their own: a write is applied in memory and
    /// becomes durable only when a checkpoint covers it; after a crash a collection opens at
    /// its last checkpoint. For a caller that holds every write in a log of its own and
    /// applies it again after a restart (vellum-raft's state machine: the Raft log). A
    /// collection whose log still holds records past its checkpoint is refused (open it
    /// without this first). Default off.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_external_log(mut self, on: bool) -> Self {
        self.external_log = on;
        self
    }

    /// When writes are acknowledged. Default [`SyncPolicy::Always`]: a write returns only
    /// after the log bytes that carry it are synced (concurrent writers share syncs). See
    /// docs/DURABILITY.md for what `Interval` and `Never` can lose.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.sync_policy = policy;
        self
    }

    /// What opening does with a damaged log. Default [`RecoveryMode::TolerateTornTail`]:
    /// cut a torn tail, refuse corruption in the middle.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.recovery_mode = mode;
        self
    }

    /// Size of a write-ahead log segment file. Default 64 MiB.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_wal_segment_size_bytes(mut self, bytes: u64) -> Self {
        self.wal_segment_size_bytes = bytes;
        self
    }

    /// Checkpoint a collection after this many operations since its last checkpoint.
    /// Default 50,000 (it also bounds how much log a crash leaves to replay at open).
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_checkpoint_after_ops(mut self, ops: u64) -> Self {
        self.checkpoint_after_ops = ops;
        self
    }

    /// Checkpoint a collection once its log holds this many bytes since its last
    /// checkpoint. Default 64 MiB.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_checkpoint_after_wal_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_after_wal_bytes = bytes;
        self
    }

    /// Checkpoint a collection once the payloads written since its last checkpoint (held
    /// in memory until then, docs/format/payloads.md) reach this many bytes. Default
    /// 32 MiB: with a checkpoint in flight, memory holds up to about twice this.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_checkpoint_after_payload_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_after_payload_bytes = bytes;
        self
    }

    /// Run checkpoints on a background thread when a threshold is crossed. Default on; off,
    /// checkpoints happen only through [`crate::Collection::checkpoint`].
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_background_checkpoints(mut self, on: bool) -> Self {
        self.background_checkpoints = on;
        self
    }

    /// When a collection is compacted without being asked (by the background thread, or
    /// [`crate::Database::maintain`]): once live vectors fill less than this fraction of
    /// its vector segments' slots and compacting would remove at least one segment file.
    /// Default `Some(0.5)`; `None` compacts only on request ([`crate::Collection::compact`],
    /// `vellum compact`).
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_auto_compaction(mut self, below_live_fraction: Option<f64>) -> Self {
        self.compact_below_live_fraction = below_live_fraction;
        self
    }

    /// Points a quantized collection holds before its quantizer is first trained (a
    /// quantizer trained on a handful of vectors would clamp most later ones). Default
    /// [`QUANTIZER_TRAIN_MIN_POINTS`]; at least 1.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_quantizer_train_min_points(mut self, points: usize) -> Self {
        self.quantizer_train_min_points = points.max(1);
        self
    }

    /// A function `Database::set_quantization` calls before encoding each chunk of a
    /// conversion to new codes (between chunks no lock is held), for tests that act while
    /// a conversion is half done. Default none.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_quantization_hook(mut self, hook: IndexerHook) -> Self {
        self.quantization_hook = Some(hook);
        self
    }

    /// How often the background checkpointer looks at the thresholds. Default 200 ms.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_checkpoint_poll_interval(mut self, every: Duration) -> Self {
        self.checkpoint_poll_interval = every;
        self
    }

    /// How many checkpoint generations to keep per collection (the log is kept from the
    /// oldest one on, so each can roll forward). Default 2.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_retained_checkpoints(mut self, generations: u32) -> Self {
        self.retain_checkpoints = generations;
        self
    }

    /// Most payload run files a checkpoint generation keeps (docs/format/payloads.md): a
    /// checkpoint that would leave more merges the smallest into one. Default 64. Fewer
    /// means more copying; the count costs nothing on reads (a table finds every payload).
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_max_payload_runs(mut self, runs: usize) -> Self {
        self.max_payload_runs = runs;
        self
    }

    /// Compress id maps and payloads in checkpoints with zstd at `level` (`None`: store
    /// them raw). Default `Some(3)`. Vectors and graphs are stored raw: f32 data compresses
    /// about 1.1x, not worth the time.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_zstd_level(mut self, level: Option<i32>) -> Self {
        self.zstd_level = level;
        self
    }

    /// If a collection's current checkpoint is damaged, open the previous retained one and
    /// roll forward from the log instead of failing. Default off: damage is an error.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_fallback_to_previous_checkpoint(mut self, on: bool) -> Self {
        self.fallback_to_previous_checkpoint = on;
        self
    }

    /// Slots per vector segment file (default: about 64 MiB worth). Small values are for
    /// tests.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_slots_per_segment(mut self, slots: u32) -> Self {
        self.slots_per_segment = Some(slots);
        self
    }

    /// What importing or restoring a snapshot may write: at most `max_total_bytes` of file
    /// content over the whole chain, `max_files` files per archive, names of at most
    /// `max_name_bytes` bytes and `max_name_depth` components, all checked against the
    /// archives' footers before anything is written (on top of the rule that a collection
    /// snapshot holds only the files a collection consists of). Default
    /// [`ImportLimits::default`]: 1 TiB, 65,536 files, 255 bytes, depth 8. Lower
    /// `max_total_bytes` to what you expect when importing an archive you do not trust.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_import_limits(mut self, limits: ImportLimits) -> Self {
        self.import_limits = limits;
        self
    }

    /// How many collections may be open (files and maps held) at once. Past it, opening
    /// one closes the least recently used idle ones: no handle to it outside the database,
    /// no indexer running (their writes are synced first). A closed collection opens again
    /// at its next use. Default: an eighth of the process's open-files limit
    /// (`RLIMIT_NOFILE`), at least 16, so a database of thousands of collections works under
    /// `ulimit -n 1024`; handles an application keeps are never closed under it.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_max_open_collections(mut self, n: usize) -> Self {
        self.max_open_collections = Some(n.max(1));
        self
    }

    /// How far the HNSW graph may lag behind acknowledged writes: at most `points` points
    /// and `bytes` bytes of their vectors wait to be indexed (searches scan them exactly,
    /// so these bound the extra cost of a search as well as the backlog); a writer whose
    /// batch does not fit waits for the indexer. A batch larger than the bound waits for an
    /// empty tail. Defaults 16,384 points and 32 MiB.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_index_lag(mut self, points: usize, bytes: u64) -> Self {
        self.index_lag_max_points = points;
        self.index_lag_max_bytes = bytes;
        self
    }

    /// How far the graph may lag while the collection is being searched (a search started
    /// in the last 100 ms): at most `points` points, within the [`with_index_lag`] bound.
    /// Every search scans the lag exactly, so this keeps a search close to its cost on a
    /// fully built graph (about as many vectors as one graph search reads) while writers
    /// run ahead of the indexer only when nobody searches. Default 1,024. Measured on
    /// fashion-mnist with one writer beside one search thread: search p99 1.9× idle and QPS
    /// 49% of idle with a bound of this size, 9.7× and 15% at the full default bound; the
    /// writer is then held to the indexer's pace (docs/BENCHMARKS.md).
    ///
    /// [`with_index_lag`]: DatabaseOptions::with_index_lag
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_index_lag_while_searching(mut self, points: usize) -> Self {
        self.index_lag_searched_points = points;
        self
    }

    /// How recent a search must be for the collection to count as searched (default
    /// 100 ms). For tests that must not depend on timing.
    #[doc(hidden)]
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_searched_window(mut self, window: std::time::Duration) -> Self {
        self.searched_window = window;
        self
    }

    /// A function every indexer calls with a chunk of pending points taken, before
    /// inserting it, holding the collection's state lock shared. For tests that need the
    /// indexer paused at a known point; it must not write to the collection.
    #[doc(hidden)]
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_indexer_hook(mut self, hook: IndexerHook) -> Self {
        self.indexer_hook = Some(hook);
        self
    }

    /// Whether a background thread indexes the pending tail (default on). Off, the tail is
    /// indexed only by `Collection::wait_indexed` and by writers that find it full: for
    /// tests that need a tail of a known size.
    #[doc(hidden)]
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn with_background_indexing(mut self, on: bool) -> Self {
        self.background_indexing = on;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.index_lag_max_points == 0
            || self.index_lag_max_bytes == 0
            || self.index_lag_searched_points == 0
        {
            return Err(Error::InvalidArgument(
                "the index lag bound must allow at least one point and one byte".into(),
            ));
        }
        if self.max_payload_runs < 2 {
            return Err(Error::InvalidArgument(
                "max_payload_runs must be at least 2 (a checkpoint may add two runs)".into(),
            ));
        }
        if self.retain_checkpoints == 0 {
            return Err(Error::InvalidArgument(
                "retained checkpoints must be at least 1".into(),
            ));
        }
        if let Some(f) = self.compact_below_live_fraction
            && !(f > 0.0 && f < 1.0)
        {
            return Err(Error::InvalidArgument(format!(
                "the automatic compaction threshold must be a fraction in (0, 1), not {f}"
            )));
        }
        if self.checkpoint_after_ops == 0 {
            return Err(Error::InvalidArgument(
                "checkpoint_after_ops must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Which index a collection keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexKind {
    /// Exact search over every vector: the right choice below tens of thousands of points.
    Flat,
    /// HNSW graph with these parameters, saved at every checkpoint and opened without a
    /// rebuild.
    Hnsw(HnswParams),
}

/// A quantized copy of a collection's vectors, searched in place of the `f32` originals
/// (which stay the source of truth and rescore the best candidates).
///
/// The graph walk scores codes (int8: 1 byte a dimension, f16: 2, binary: 1 bit), so a
/// search reads a quarter (int8) of the vector bytes; with `rescore` the best `k *
/// oversampling` candidates are scored again on the originals, so hits carry exact
/// distances. The quantizer is trained from a sample once the collection holds
/// [`QUANTIZER_TRAIN_MIN_POINTS`] points (searches use the originals until then) and
/// trained again when it has grown eightfold since; it is saved with every checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantization {
    /// Which codes.
    pub kind: QuantKind,
    /// Rescore the candidates with the originals (default true).
    pub rescore: bool,
    /// Candidates per requested hit the codes select for rescoring, at least 1 (default 2;
    /// 4 for binary).
    pub oversampling: f32,
}

/// Points a collection holds before its quantizer is first trained, by default
/// ([`DatabaseOptions::with_quantizer_train_min_points`]).
pub const QUANTIZER_TRAIN_MIN_POINTS: usize = 1000;

impl Quantization {
    /// int8 codes with rescoring, oversampling 2.
    pub fn int8() -> Quantization {
        Quantization {
            kind: QuantKind::Int8,
            rescore: true,
            oversampling: 2.0,
        }
    }

    /// f16 codes with rescoring, oversampling 2.
    pub fn f16() -> Quantization {
        Quantization {
            kind: QuantKind::F16,
            ..Quantization::int8()
        }
    }

    /// Binary codes with rescoring, oversampling 4 (one bit a dimension ranks coarsely).
    pub fn binary() -> Quantization {
        Quantization {
            kind: QuantKind::Binary,
            rescore: true,
            oversampling: 4.0,
        }
    }

    /// The default settings of `kind`.
    pub fn of(kind: QuantKind) -> Quantization {
        match kind {
            QuantKind::F16 => Quantization::f16(),
            QuantKind::Binary => Quantization::binary(),
            _ => Quantization::int8(),
        }
    }

    /// With or without rescoring.
    #[must_use = "a builder returns the changed settings; use the value"]
    pub fn rescore(mut self, rescore: bool) -> Quantization {
        self.rescore = rescore;
        self
    }

    /// With this oversampling.
    #[must_use = "a builder returns the changed settings; use the value"]
    pub fn oversampling(mut self, oversampling: f32) -> Quantization {
        self.oversampling = oversampling;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.oversampling.is_finite() && (1.0..=1000.0).contains(&self.oversampling)) {
            return Err(Error::InvalidArgument(format!(
                "quantization oversampling must be in 1..=1000, not {}",
                self.oversampling
            )));
        }
        Ok(())
    }
}

/// The shape of a collection, fixed at creation (the quantization can change later, with
/// `Database::set_quantization`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollectionConfig {
    /// Dimensions of every vector.
    pub dim: usize,
    /// Distance metric.
    pub metric: Metric,
    /// Index kind.
    pub index: IndexKind,
    /// A quantized copy searched in place of the originals (`None`: search the originals).
    pub quantization: Option<Quantization>,
}

impl CollectionConfig {
    /// `dim`-dimensional vectors under `metric`, with an HNSW index of default parameters.
    pub fn new(dim: usize, metric: Metric) -> Self {
        CollectionConfig {
            dim,
            metric,
            index: IndexKind::Hnsw(HnswParams::default()),
            quantization: None,
        }
    }

    /// With a quantized copy of the vectors (see [`Quantization`]).
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn quantized(mut self, quantization: Quantization) -> Self {
        self.quantization = Some(quantization);
        self
    }

    /// Exact search instead of HNSW.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn flat(mut self) -> Self {
        self.index = IndexKind::Flat;
        self
    }

    /// HNSW with these parameters.
    #[must_use = "a builder returns the changed options; use the value"]
    pub fn hnsw(mut self, params: HnswParams) -> Self {
        self.index = IndexKind::Hnsw(params);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > vellum_index::MAX_DIM {
            return Err(Error::InvalidArgument(format!(
                "dimension {} is outside 1..={}",
                self.dim,
                vellum_index::MAX_DIM
            )));
        }
        if let IndexKind::Hnsw(p) = self.index {
            // Let the index check its own parameters.
            vellum_index::Hnsw::new(self.dim, self.metric, p)?;
        }
        if let Some(q) = &self.quantization {
            q.validate()?;
            if q.kind == QuantKind::Binary && self.metric == Metric::L2 {
                return Err(Error::InvalidArgument(
                    "binary codes keep only which side of the mean each value is on, which \
                     ranks cosine and dot products; use int8 or f16 for L2"
                        .into(),
                ));
            }
            if self.index == IndexKind::Flat {
                return Err(Error::InvalidArgument(
                    "quantization needs an HNSW index (a flat collection scans the originals)"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}
