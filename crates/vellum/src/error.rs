//! The facade's one error type. Every layer's error converts into it, keeping its source.

use std::path::PathBuf;

/// Result alias of the facade.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Vellum, with the file, LSN or collection involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file-system layer failed (I/O error, power loss in tests, contract violation).
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),
    /// The write-ahead log failed or found damage.
    #[error(transparent)]
    Wal(#[from] vellum_wal::Error),
    /// The vector store failed or found damage.
    #[error(transparent)]
    Store(#[from] vellum_mmap_vectors::Error),
    /// A checkpoint failed or a generation is damaged.
    #[error(transparent)]
    Checkpoint(vellum_checkpoint::Error),
    /// The current checkpoint generation of a collection cannot be loaded (damaged, or its
    /// `CURRENT` pointer removed); the source says what is wrong.
    #[error(
        "the current checkpoint in {dir} cannot be loaded; reopen with \
         DatabaseOptions::with_fallback_to_previous_checkpoint(true) to load the newest intact \
         retained generation and roll forward from the log"
    )]
    CheckpointDamaged {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What is wrong, with the generations involved.
        #[source]
        source: vellum_checkpoint::Error,
    },
    /// An internal invariant broke: a bug in Vellum, not a problem with the input or the
    /// disk. The collection should be verified (`vellum verify`) and the case reported.
    #[error(
        "internal inconsistency: {reason} (a bug; please report it with the output of `vellum verify`)"
    )]
    Inconsistent {
        /// What broke.
        reason: String,
    },
    /// The index failed (bad parameters, damaged graph file).
    #[error(transparent)]
    Index(#[from] vellum_index::Error),
    /// A snapshot archive is damaged, incomplete, or could not be restored.
    #[error(transparent)]
    Snapshot(#[from] vellum_snapshot_format::Error),
    /// No collection has this name.
    #[error("no collection named {name:?}")]
    UnknownCollection {
        /// The name asked for.
        name: String,
    },
    /// A collection with this name exists already.
    #[error("a collection named {name:?} exists already")]
    CollectionExists {
        /// The name.
        name: String,
    },
    /// A collection name is not allowed.
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A vector (or query) has the wrong number of dimensions.
    #[error(
        "collection {collection:?} holds {expected}-dimensional vectors, got {found} {}",
        whose(.id)
    )]
    DimensionMismatch {
        /// The collection.
        collection: String,
        /// Its dimension.
        expected: usize,
        /// What was given.
        found: usize,
        /// The point's id, when a point was given.
        id: Option<u64>,
    },
    /// A vector has a NaN or infinite component.
    #[error(
        "collection {collection:?}: {} has a non-finite component at {index}",
        whose_vector(.id)
    )]
    NonFinite {
        /// The collection.
        collection: String,
        /// The point's id, when a point was given.
        id: Option<u64>,
        /// The component's position.
        index: usize,
    },
    /// An option or argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A WAL record of the facade could not be decoded.
    #[error("WAL record at LSN {lsn} is not a valid operation: {reason}")]
    BadRecord {
        /// Its LSN.
        lsn: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file of the database itself (the catalog or a checkpoint's metadata) is damaged or
    /// from an unknown version.
    #[error("{path}: {reason}")]
    BadDatabaseFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An earlier error stopped this collection; reopen the database to recover.
    #[error(
        "collection {collection:?} stopped after an earlier error ({cause}); reopen to recover"
    )]
    Poisoned {
        /// The collection.
        collection: String,
        /// The first error.
        cause: String,
    },
    /// The path is not a Vellum database (and not empty).
    #[error("{path} is not a Vellum database: {reason}")]
    NotADatabase {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The directory holds a database's files but its catalog (`VELLUM`) is missing.
    /// Opening would start an empty catalog beside collections it does not name, so the
    /// database is refused and left exactly as it is.
    #[error(
        "{path} holds database files ({found}) but its catalog {catalog} is missing: refusing \
         to open it, since a new empty catalog would not name the collections there. Rebuild \
         it from the collections' own descriptions with Database::repair_catalog (`vellum \
         repair-catalog`), or restore it from a backup"
    )]
    CatalogMissing {
        /// The database directory.
        path: PathBuf,
        /// The catalog file that is missing.
        catalog: PathBuf,
        /// What was found instead (directory entries and collection directories).
        found: String,
    },
    /// The database was opened with [`crate::Database::open_read_only`]: nothing may change.
    #[error("{operation} is not possible: {path} is open read-only")]
    ReadOnly {
        /// What was refused.
        operation: &'static str,
        /// The database or collection directory.
        path: PathBuf,
    },
    /// Another open handle (in this process or another) holds the database's lock.
    #[error(
        "the database is in use: {path} is locked by another open handle (close it, or wait for \
         the other process to exit)"
    )]
    Locked {
        /// The locked database directory (or, for a lock taken by an older version, its
        /// `LOCK` file).
        path: PathBuf,
    },
    /// A snapshot does not belong to this collection or database.
    #[error("snapshot {snapshot} does not fit: {reason}")]
    SnapshotMismatch {
        /// The snapshot id (hex).
        snapshot: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether this error means "stopped after an earlier I/O error: reopen".
    pub fn is_poisoned(&self) -> bool {
        match self {
            Error::Poisoned { .. } => true,
            Error::Fs(e) => e.is_poisoned(),
            Error::Wal(e) => e.is_poisoned(),
            Error::Store(e) => e.is_poisoned(),
            Error::Checkpoint(e) | Error::CheckpointDamaged { source: e, .. } => e.is_poisoned(),
            Error::Snapshot(e) => e.is_poisoned(),
            _ => false,
        }
    }
}

impl From<vellum_checkpoint::Error> for Error {
    /// A damaged current generation gets the facade's advice (the option to set is
    /// `DatabaseOptions`'s, not the checkpoint crate's `LoadOptions`).
    fn from(e: vellum_checkpoint::Error) -> Self {
        match &e {
            vellum_checkpoint::Error::CurrentDamaged { dir, .. }
            | vellum_checkpoint::Error::CurrentMissing { dir, .. } => Error::CheckpointDamaged {
                dir: dir.clone(),
                source: e,
            },
            _ => Error::Checkpoint(e),
        }
    }
}

/// "for point N" or "in the query": where a wrong vector came from.
fn whose(id: &Option<u64>) -> String {
    id.map_or_else(|| "in the query".to_owned(), |id| format!("for point {id}"))
}

/// "the vector of point N" or "the query".
fn whose_vector(id: &Option<u64>) -> String {
    id.map_or_else(
        || "the query".to_owned(),
        |id| format!("the vector of point {id}"),
    )
}
