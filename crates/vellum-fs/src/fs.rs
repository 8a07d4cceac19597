//! The narrow file-system interface the engine is written against.
//!
//! # The contract the engine relies on
//!
//! Both implementations ([`crate::RealFs`] and [`crate::SimFs`]) keep these rules, and the
//! simulator checks the ones a real file system cannot:
//!
//! * **Reads past the end fail.** [`File::read_at`] reads exactly `buf.len()` bytes or fails
//!   with [`Error::ReadPastEnd`](crate::Error::ReadPastEnd); it never returns a short read.
//! * **`set_len` zero-fills.** Growing a file makes the new bytes read as zero.
//! * **Data is durable only after [`File::sync_data`].** Until then any subset of the writes
//!   since the last sync may reach the disk, each possibly torn at sector granularity. A
//!   successful `sync_data` makes the file's bytes *and its length* durable.
//! * **A name is durable only after its directory is synced.** Creating, renaming or removing
//!   an entry is durable only after [`Fs::sync_dir`] on the directory holding it (both
//!   directories for a rename across directories). A file whose data is synced but whose
//!   directory entry is not may vanish on a crash.
//! * **Close is not a sync.** Dropping a [`File`] makes nothing durable.
//! * **A failed sync loses the pending writes.** After `sync_data` fails, the writes it was
//!   meant to persist may never reach the disk, even if a later sync succeeds (Linux marks
//!   the pages clean). Never retry a failed sync: stop and reopen (see [`crate::FailStop`]).
//! * **Mapped memory may reach disk at any time.** Bytes stored through a [`MapMut`] may be
//!   written back at any moment, before or after any sync; [`MapMut::flush`] makes them
//!   durable. A file must not be shrunk below a live map, and a file with a live
//!   [`ReadMap`] must not be written (both checked by the simulator).

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::error::Result;

/// A shared handle to a file system: what every engine layer holds.
pub type DynFs = Arc<dyn Fs>;

/// A directory tree of files: the operations the engine needs and nothing more.
///
/// Paths are interpreted by the implementation: [`crate::RealFs`] uses them as given,
/// [`crate::SimFs`] resolves them from its own root.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates a file, truncating it if it exists, and opens it for reading and writing.
    /// The new name is durable only after the parent directory is synced.
    fn create(&self, path: &Path) -> Result<Box<dyn File>>;

    /// Creates a file that must not exist yet (fails with `AlreadyExists`).
    fn create_new(&self, path: &Path) -> Result<Box<dyn File>>;

    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> Result<Box<dyn File>>;

    /// Opens an existing file for reading only (it may sit on a read-only mount). Writes
    /// through the handle fail; [`File::map_private`] works.
    fn open_read(&self, path: &Path) -> Result<Box<dyn File>>;

    /// Renames `from` to `to`, atomically replacing `to` if it exists. Durable only after the
    /// directories of both names are synced. On Windows replacing `to` can fail while it is
    /// in use (open elsewhere without delete sharing, or mapped): an error, never a
    /// half-done rename.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;

    /// Removes a file. Durable only after the parent directory is synced.
    fn remove_file(&self, path: &Path) -> Result<()>;

    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> Result<()>;

    /// Creates a directory and any missing parents. Each new entry is durable only after its
    /// parent is synced; [`crate::create_dir_all_durable`] does both.
    fn create_dir_all(&self, path: &Path) -> Result<()>;

    /// Makes the entries of a directory durable (creates, renames and removes in it).
    /// [`crate::RealFs`]: `fsync` of the directory on Linux, `F_FULLFSYNC` on macOS; on
    /// Windows, which has no such call, it only checks that the directory exists (NTFS
    /// journals names, so they are all or nothing, but not durable on return: see
    /// docs/DURABILITY.md, "Platforms").
    fn sync_dir(&self, path: &Path) -> Result<()>;

    /// The names in a directory, sorted, without `.` and `..`.
    fn list_dir(&self, path: &Path) -> Result<Vec<String>>;

    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> Result<bool>;

    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> Result<bool>;

    /// Takes an advisory exclusive lock on the directory `path` itself, held until the
    /// returned guard is dropped (or the process dies). `Ok(None)` when another guard, in
    /// this process or another, holds it. Unlike a lock on a file inside the directory, it
    /// cannot be undone by removing or replacing that file. [`crate::RealFs`] uses `flock`
    /// (Linux, macOS); on Windows it fails with `ErrorKind::Unsupported`, since Windows
    /// cannot lock a directory.
    fn try_lock_dir(&self, path: &Path) -> Result<Option<DirLock>>;

    /// A named fail point: engine code calls this at interesting moments. Each crate declares
    /// its points as constants in its `fail_points` module (for example
    /// `vellum_wal::fail_points::SEGMENT_BEFORE_RENAME`, `"wal::segment_before_rename"`), and
    /// a test proves each is reached. The real file system always returns `Ok`; the simulator
    /// returns the error a test armed for that name, so tests can fail an exact step.
    fn fail_point(&self, name: &str) -> Result<()>;
}

/// An open file. All methods take `&self`: a file may be shared between threads, and the
/// positioned reads and writes do not share a cursor.
pub trait File: Send + Sync + fmt::Debug {
    /// The path the file was opened under (for error messages; it is not updated by renames).
    fn path(&self) -> &Path;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails without a short read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// Writes all of `buf` at `offset`, growing the file if needed (a gap reads as zeros).
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;

    /// Writes all of `buf` at the current end of the file and returns the offset it was
    /// written at. Appends through one handle are serialised with each other.
    fn append(&self, buf: &[u8]) -> Result<u64>;

    /// The file's current length in bytes (including writes not yet durable).
    fn len(&self) -> Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Sets the length; growing zero-fills, shrinking discards the tail.
    fn set_len(&self, len_bytes: u64) -> Result<()>;

    /// Grows the file to at least `len_bytes` with the space allocated and reading as zeros
    /// (`fallocate` where the file system has it, else written zeros), so later writes
    /// inside it, or through a map of it, overwrite allocated blocks instead of extending
    /// the file. A full disk is [`crate::Error::NoSpace`], naming how many bytes were asked
    /// for.
    fn allocate(&self, len_bytes: u64) -> Result<()>;

    /// Makes the file's data and length durable: `fdatasync` on Linux, `fcntl(F_FULLFSYNC)` on
    /// macOS (plain `fsync` where the file system refuses it), `FlushFileBuffers` on
    /// Windows. On failure, see the contract in the module docs: do not retry.
    fn sync_data(&self) -> Result<()>;

    /// Maps the whole file read-only. The file must not be written or shrunk while the map
    /// lives; the bytes seen are the file's current contents.
    fn map_read(&self) -> Result<ReadMap>;

    /// Maps the first `len_bytes` of the file for reading and writing (the file must be at
    /// least that long and must not shrink below it while the map lives).
    fn map_mut(&self, len_bytes: usize) -> Result<MapMut>;

    /// Maps the first `len_bytes` of the file copy-on-write: stores through the map stay in
    /// this process's memory and never reach the file; [`MapMut::flush`] does nothing. For
    /// opening a database without changing it.
    fn map_private(&self, len_bytes: usize) -> Result<MapMut>;

    /// Takes an advisory exclusive lock on the file, held until this handle is dropped (or
    /// the process dies). `Ok(false)` when another handle, in this process or another,
    /// holds it. Locks only exclude other lockers; they do not stop reads or writes (except
    /// on Windows, where the lock is `LockFileEx`'s and other handles can neither read nor
    /// write the file while it is held: lock only files whose contents nobody reads).
    fn try_lock_exclusive(&self) -> Result<bool>;
}

/// An advisory lock on a directory, from [`Fs::try_lock_dir`]; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _held: Box<dyn fmt::Debug + Send + Sync>,
}

impl DirLock {
    /// Wraps whatever keeps the lock held (an open directory handle, a table entry).
    pub(crate) fn new(held: Box<dyn fmt::Debug + Send + Sync>) -> Self {
        DirLock { _held: held }
    }
}

/// A read-only view of a whole file.
///
/// Hazard: the bytes come straight from the page cache. If another process changes or
/// truncates the file while it is mapped, reads see the change (or fault with SIGBUS). Vellum
/// maps only files it never changes while they are mapped.
pub struct ReadMap {
    pub(crate) inner: ReadMapInner,
}

pub(crate) enum ReadMapInner {
    Empty,
    Real(memmap2::Mmap),
    Sim(crate::sim::SimReadMap),
    Owned(Vec<u8>),
}

impl ReadMap {
    /// A view of bytes held in memory (a file of a copy-on-write overlay).
    pub(crate) fn owned(bytes: Vec<u8>) -> ReadMap {
        ReadMap {
            inner: ReadMapInner::Owned(bytes),
        }
    }
}

impl ReadMap {
    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.inner {
            ReadMapInner::Empty => &[],
            ReadMapInner::Real(map) => map,
            ReadMapInner::Sim(map) => map.bytes(),
            ReadMapInner::Owned(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for ReadMap {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Deref for ReadMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for ReadMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadMap")
            .field("len", &self.as_slice().len())
            .finish()
    }
}

/// A writable mapping of the start of a file, handed out as raw memory.
///
/// It hands out pointers rather than slices because the vector store writes fresh slots
/// while readers hold slices of other slots; turning the pointers into slices is the
/// caller's `unsafe`, with the rule that no slice may overlap a range being written.
///
/// Stores through the map reach the file's page cache at once and may reach the disk at any
/// time; [`MapMut::flush`] makes them durable.
///
/// Hazard: if another process changes or truncates the file while it is mapped, the memory
/// changes underneath (or faults with SIGBUS). Vellum's files must not be touched by others.
pub struct MapMut {
    pub(crate) raw: Arc<memmap2::MmapRaw>,
    pub(crate) len: usize,
    pub(crate) path: std::path::PathBuf,
    pub(crate) backend: MapBackend,
}

impl Drop for MapMut {
    fn drop(&mut self) {
        // An unmapped page cache keeps what was stored: the simulator turns this map's
        // stores into pending writes of its file before the memory goes.
        if let MapBackend::Sim(link) = &self.backend {
            link.unmapped();
        }
    }
}

pub(crate) enum MapBackend {
    /// A shared map of a real file; what it needs after `msync` differs per platform.
    Real(crate::platform::MapDurability),
    Sim(crate::sim::SimMapLink),
    /// Copy-on-write or anonymous: stores never reach a file, flushing does nothing.
    Private,
}

impl MapMut {
    /// Private memory holding a copy of `bytes` followed by zeros up to `len_bytes`
    /// (anonymous, never backed by a file).
    pub(crate) fn private_copy(path: &Path, bytes: &[u8], len_bytes: usize) -> Result<MapMut> {
        let mut map = memmap2::MmapMut::map_anon(len_bytes.max(1))
            .map_err(|e| crate::Error::io(crate::OpKind::Map, path, e))?;
        let n = bytes.len().min(len_bytes);
        map[..n].copy_from_slice(&bytes[..n]);
        Ok(MapMut {
            raw: Arc::new(memmap2::MmapRaw::from(map)),
            len: len_bytes,
            path: path.to_path_buf(),
            backend: MapBackend::Private,
        })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the mapped memory. Valid for `len()` bytes while this `MapMut` lives; the
    /// memory does not move.
    pub fn as_ptr(&self) -> *const u8 {
        self.raw.as_ptr()
    }

    /// Start of the mapped memory, for stores. Same validity as [`MapMut::as_ptr`].
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }

    /// Copies `data` into the map at `offset` (a convenience over the raw pointer).
    ///
    /// # Safety
    ///
    /// No live slice made from this map may overlap `offset..offset + data.len()`, and no
    /// other thread may write that range concurrently.
    #[allow(unsafe_code)]
    pub unsafe fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset
                .checked_add(data.len())
                .is_some_and(|end| end <= self.len),
            "MapMut::write out of bounds: {offset}+{} > {}",
            data.len(),
            self.len
        );
        // SAFETY: the range is in bounds (asserted above) of memory that stays mapped while
        // `self` lives; the caller guarantees no reference overlaps it and no concurrent
        // writer; `data` is a separate allocation so the copy does not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_mut_ptr().add(offset), data.len())
        };
    }

    /// Makes every store through the map durable: `msync` on Linux, `msync` then
    /// `F_FULLFSYNC` of the file on macOS, `FlushViewOfFile` then `FlushFileBuffers` on
    /// Windows.
    pub fn flush(&self) -> Result<()> {
        self.flush_range(0, self.len)
    }

    /// Makes the stores in `offset..offset + len` durable.
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        match &self.backend {
            MapBackend::Real(durability) => self
                .raw
                .flush_range(offset, len)
                .and_then(|()| durability.after_flush())
                .map_err(|e| crate::Error::io(crate::OpKind::FlushMap, &self.path, e)),
            MapBackend::Sim(link) => link.flush(self, offset, len),
            MapBackend::Private => Ok(()),
        }
    }
}

impl fmt::Debug for MapMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapMut")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish()
    }
}
