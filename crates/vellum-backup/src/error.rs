//! The backup error: what failed, with the object, backup id or collection it concerns.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store refused or failed (credentials, network, a missing object).
    #[error("object store, {what}: {source}")]
    Store {
        /// The operation and object.
        what: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The database failed (export, import).
    #[error(transparent)]
    Db(#[from] vellum::Error),
    /// The archive or its transfer is wrong (a damaged object, a short download).
    #[error(transparent)]
    Archive(#[from] vellum_snapshot_format::Error),
    /// Local file system.
    #[error(transparent)]
    Fs(#[from] vellum_fs::Error),
    /// The catalog object does not parse, or names what is not there.
    #[error("backup catalog {object}: {reason}")]
    Catalog {
        /// The catalog object.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// No backup with this id in the target.
    #[error("no backup {id} in {target}")]
    NotFound {
        /// The id asked for.
        id: String,
        /// The target.
        target: String,
    },
    /// A target URL that is not understood.
    #[error("backup target {url:?}: {reason}")]
    BadTarget {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Refused: it would break something kept (a parent still needed).
    #[error("{0}")]
    Refused(String),
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> Error {
    let what = what.into();
    move |source| Error::Store { what, source }
}
