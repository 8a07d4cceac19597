//! What a generation is once written: a numbered set of files under a manifest, covering
//! the caller's WAL up to an LSN. [`LoadedGeneration`] is one read back and verified (its
//! files as [`FileBytes`]); [`CommitInfo`] and [`CheckpointStats`] describe one just
//! committed and the current one; `Retained` is what the checkpointer keeps of each
//! generation in its retention window.

use crate::manifest::{Codec, Manifest};

/// A loaded file's bytes, shareable without a copy: a decoded buffer, or for an
/// uncompressed file a read-only map of it (verified like a buffer before it is handed out).
///
/// A mapped file stays valid after retention removes it (the map keeps it alive); as with
/// every Vellum file, another process must not modify it.
#[derive(Clone)]
pub struct FileBytes(pub(crate) std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>);

impl FileBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        (*self.0).as_ref()
    }

    /// Bytes from elsewhere (a map of a file the caller just committed).
    pub fn from_shared(bytes: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        FileBytes(bytes)
    }

    /// The shared handle, to keep the bytes alive elsewhere (a graph searched in place).
    pub fn shared(&self) -> std::sync::Arc<dyn AsRef<[u8]> + Send + Sync> {
        std::sync::Arc::clone(&self.0)
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(bytes: Vec<u8>) -> Self {
        FileBytes(std::sync::Arc::new(bytes))
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileBytes({} bytes)", self.as_slice().len())
    }
}

impl PartialEq for FileBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for FileBytes {}

/// A generation read back and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedGeneration {
    /// Its manifest.
    pub manifest: Manifest,
    /// Each file's decoded contents, in manifest order.
    pub files: Vec<(String, FileBytes)>,
    /// Set when this is a fallback: the damaged generation skipped (if its number is known).
    pub fell_back_from: Option<Option<u64>>,
}

impl LoadedGeneration {
    /// The generation number.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// The WAL LSN it covers.
    pub fn wal_lsn(&self) -> u64 {
        self.manifest.wal_lsn
    }

    /// The caller metadata.
    pub fn metadata(&self) -> &[u8] {
        &self.manifest.metadata
    }

    /// The contents of the file called `name`.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.shared_file(name).map(FileBytes::as_slice)
    }

    /// The file called `name` as a shareable handle (no copy).
    pub fn shared_file(&self, name: &str) -> Option<&FileBytes> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// The generation now current.
    pub generation: u64,
    /// The WAL LSN it covers.
    pub wal_lsn: u64,
    /// The oldest generation still retained.
    pub oldest_retained_generation: u64,
    /// The WAL LSN the oldest retained generation covers: the WAL may be truncated only
    /// below the record after it.
    pub oldest_retained_wal_lsn: u64,
}

/// Sizes of one file of the current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStats {
    /// Its name.
    pub name: String,
    /// Its codec.
    pub codec: Codec,
    /// Bytes before compression.
    pub raw_len_bytes: u64,
    /// Bytes on disk.
    pub stored_len_bytes: u64,
}

/// What the current generation holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The current generation.
    pub generation: u64,
    /// The WAL LSN it covers.
    pub wal_lsn: u64,
    /// Its files.
    pub files: Vec<FileStats>,
    /// Sum of the files' sizes before compression.
    pub raw_bytes_total: u64,
    /// Sum of the files' sizes on disk.
    pub stored_bytes_total: u64,
    /// Generations retained (current included), oldest first.
    pub retained_generations: Vec<u64>,
    /// The WAL LSN of the oldest retained generation.
    pub oldest_retained_wal_lsn: u64,
}

/// A generation in the retention window: its number, the WAL LSN it covers, and the
/// on-disk names of its data files (some may carry an earlier generation's number: files
/// it carried over, which retention keeps while any retained generation names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retained {
    pub(crate) generation: u64,
    pub(crate) wal_lsn: u64,
    pub(crate) data_files: Vec<String>,
}

impl Retained {
    pub(crate) fn of(manifest: &crate::manifest::Manifest) -> Retained {
        Retained {
            generation: manifest.generation,
            wal_lsn: manifest.wal_lsn,
            data_files: manifest.data_file_names(),
        }
    }
}
