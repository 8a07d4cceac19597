//! The error type of the I/O seam.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias used across `vellum-fs`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which file-system operation an error (or an injected fault) concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OpKind {
    /// Creating a file (or truncating an existing one).
    Create,
    /// Opening an existing file.
    Open,
    /// Reading from a file.
    Read,
    /// Writing to a file (positioned write or append).
    Write,
    /// Changing a file's length (`set_len`, `allocate`).
    SetLen,
    /// Making a file's data and length durable.
    SyncData,
    /// Making a directory's entries durable.
    SyncDir,
    /// Renaming a file or directory.
    Rename,
    /// Removing a file or directory.
    Remove,
    /// Creating a directory.
    CreateDir,
    /// Listing a directory or asking whether a path exists.
    List,
    /// Asking for a file's length.
    Len,
    /// Mapping a file into memory.
    Map,
    /// Flushing a writable map to disk.
    FlushMap,
    /// A named fail point reached by engine code.
    FailPoint,
    /// Taking an advisory lock on a file.
    Lock,
}

impl OpKind {
    /// Whether the operation changes what is (or may become) on disk.
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            OpKind::Create
                | OpKind::Write
                | OpKind::SetLen
                | OpKind::SyncData
                | OpKind::SyncDir
                | OpKind::Rename
                | OpKind::Remove
                | OpKind::CreateDir
                | OpKind::FlushMap
        )
    }

    /// Whether the operation is a durability barrier (a sync of some kind).
    pub fn is_sync(self) -> bool {
        matches!(self, OpKind::SyncData | OpKind::SyncDir | OpKind::FlushMap)
    }

    fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Open => "open",
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::SetLen => "set_len",
            OpKind::SyncData => "sync_data",
            OpKind::SyncDir => "sync_dir",
            OpKind::Rename => "rename",
            OpKind::Remove => "remove",
            OpKind::CreateDir => "create_dir",
            OpKind::List => "list",
            OpKind::Len => "len",
            OpKind::Map => "map",
            OpKind::FlushMap => "flush_map",
            OpKind::FailPoint => "fail_point",
            OpKind::Lock => "lock",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from the I/O seam. Every variant names the path it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system (or the simulator's fault injection) reported an error.
    #[error("{op} {path}: {error}")]
    Io {
        /// The operation that failed.
        op: OpKind,
        /// The file or directory it concerned.
        path: PathBuf,
        /// The underlying error, with its `ErrorKind` and OS code kept. Its text is part of
        /// this error's message, so it is not returned again as the `source()`.
        error: io::Error,
    },
    /// The file system ran out of space allocating room a file needed (ENOSPC), with how
    /// much more was asked for.
    #[error("{op} {path}: {error} ({needed_bytes} more bytes were needed)")]
    NoSpace {
        /// The operation that failed.
        op: OpKind,
        /// The file it concerned.
        path: PathBuf,
        /// Bytes the operation would have added.
        needed_bytes: u64,
        /// The underlying error (ENOSPC, or the simulator's).
        error: io::Error,
    },
    /// A read asked for bytes beyond the end of a file.
    #[error(
        "read of {len} bytes at offset {offset} of {path} goes past its end ({file_len} bytes)"
    )]
    ReadPastEnd {
        /// The file read.
        path: PathBuf,
        /// Offset of the read.
        offset: u64,
        /// Bytes requested.
        len: u64,
        /// The file's length at the time.
        file_len: u64,
    },
    /// An earlier I/O error stopped the engine (fail-stop); nothing more is written until the
    /// engine is reopened, which recovers from what is durable.
    #[error("stopped after an earlier I/O error ({cause}); reopen to recover")]
    Poisoned {
        /// The first error, as text.
        cause: String,
    },
    /// The caller broke a rule of the [`crate::Fs`] contract (detected by the simulator,
    /// which checks rules the real file system cannot).
    #[error("{path}: contract violation: {rule}")]
    Contract {
        /// The file or directory concerned.
        path: PathBuf,
        /// The rule that was broken.
        rule: &'static str,
    },
}

impl Error {
    /// Wraps an `io::Error` with the operation and path.
    pub fn io(op: OpKind, path: impl Into<PathBuf>, error: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            error,
        }
    }

    /// An `Io` error saying the disk is full becomes [`Error::NoSpace`] naming
    /// `needed_bytes`; any other error is returned as it is.
    pub fn with_needed_bytes(self, needed_bytes: u64) -> Self {
        match self {
            Error::Io { op, path, error } if error.kind() == io::ErrorKind::StorageFull => {
                Error::NoSpace {
                    op,
                    path,
                    needed_bytes,
                    error,
                }
            }
            other => other,
        }
    }

    /// The `io::ErrorKind` behind this error, if it came from an I/O call.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { error, .. } | Error::NoSpace { error, .. } => Some(error.kind()),
            Error::ReadPastEnd { .. } => Some(io::ErrorKind::UnexpectedEof),
            _ => None,
        }
    }

    /// Whether the error says the file or directory does not exist.
    pub fn is_not_found(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::NotFound)
    }

    /// Whether the error says the path already exists.
    pub fn is_already_exists(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::AlreadyExists)
    }

    /// Whether the error is the fail-stop latch refusing work.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned { .. })
    }
}
