//! What the real file system does differently per operating system, in one place.
//!
//! | operation | Linux | macOS | Windows |
//! |---|---|---|---|
//! | positioned read/write | `pread`/`pwrite` | `pread`/`pwrite` | `ReadFile`/`WriteFile` at an offset, looped over short counts |
//! | [`sync_file`] (`File::sync_data`) | `fdatasync` | `fcntl(F_FULLFSYNC)`, `fsync` where the file system refuses it | `FlushFileBuffers` |
//! | [`sync_dir`] | `fsync` of the directory | `F_FULLFSYNC` of the directory, `fsync` where refused | nothing: checks the directory exists |
//! | [`MapDurability`] after `msync` | nothing more | `F_FULLFSYNC` of the file | nothing more (`memmap2` already calls `FlushFileBuffers`) |
//! | [`reserve`] (`File::allocate`) | `fallocate` | `F_PREALLOCATE` + `ftruncate` | not reserved: the caller writes zeros |
//! | [`lock_dir`] | `flock` | `flock` | refused with `Unsupported` |
//! | [`open_files_soft_limit`] | `RLIMIT_NOFILE` | `RLIMIT_NOFILE` | none |
//!
//! Why each differs, and what it costs, is in docs/DURABILITY.md ("Platforms"). Targets that
//! are neither Unix nor Windows do not compile (see the `compile_error!` below).

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

#[cfg(not(any(unix, windows)))]
compile_error!(
    "vellum-fs's real file system supports Unix (Linux, macOS) and Windows only: positioned \
     I/O, durable sync and file locks have no implementation for this target"
);

/// Reads exactly `buf.len()` bytes at `offset`; `UnexpectedEof` if the file ends first.
#[cfg(unix)]
pub(crate) fn read_exact_at(file: &fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Reads exactly `buf.len()` bytes at `offset`; `UnexpectedEof` if the file ends first.
#[cfg(windows)]
pub(crate) fn read_exact_at(
    file: &fs::File,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    // `seek_read` may return fewer bytes than asked (and moves the handle's cursor, which
    // nothing here uses); zero bytes means the end of the file.
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                let rest = buf;
                buf = &mut rest[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`.
#[cfg(unix)]
pub(crate) fn write_all_at(file: &fs::File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Writes all of `buf` at `offset`.
#[cfg(windows)]
pub(crate) fn write_all_at(file: &fs::File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    // `seek_write` may write fewer bytes than asked: go on from where it stopped.
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reserves `len` bytes from `offset` (the current end) without writing them, growing the
/// file to `offset + len`. `Ok(false)` when the file system or the platform cannot, and the
/// caller must write zeros instead; a full disk is an error (`StorageFull`).
#[cfg(unix)]
pub(crate) fn reserve(file: &fs::File, offset: u64, len: u64) -> io::Result<bool> {
    use rustix::io::Errno;
    // Linux: `fallocate`. macOS: rustix issues `F_PREALLOCATE` then `ftruncate` (fine here:
    // the file only grows). Other Unix: `posix_fallocate`.
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len) {
        Ok(()) => Ok(true),
        // The file system has no preallocation (EOPNOTSUPP; ENOTSUP is a different number
        // on macOS), or the kernel none (ENOSYS).
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOTSUP || e == Errno::NOSYS => Ok(false),
        // FreeBSD's `posix_fallocate` says EINVAL on ZFS. On Linux EINVAL means bad
        // arguments and is reported.
        Err(e) if cfg!(not(target_os = "linux")) && e == Errno::INVAL => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Windows has no preallocation that guarantees later writes their room without writing
/// the bytes (extending the end of file does not), so the caller writes zeros.
#[cfg(windows)]
pub(crate) fn reserve(_file: &fs::File, _offset: u64, _len: u64) -> io::Result<bool> {
    Ok(false)
}

/// Makes a file's data and length durable: the durability barrier of `File::sync_data`.
#[cfg(target_vendor = "apple")]
pub(crate) fn sync_file(file: &fs::File) -> io::Result<()> {
    full_fsync(file)
}

/// Makes a file's data and length durable: the durability barrier of `File::sync_data`.
/// `fdatasync` on Linux, `fsync` on other Unix, `FlushFileBuffers` on Windows.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn sync_file(file: &fs::File) -> io::Result<()> {
    file.sync_data()
}

/// `fcntl(F_FULLFSYNC)`: on macOS `fsync` hands the data to the drive but leaves it in the
/// drive's volatile cache; `F_FULLFSYNC` also asks the drive to write its cache to stable
/// storage, which is what a power loss needs. File systems that cannot pass the request on
/// (some network and FAT-family mounts) refuse it; there we fall back to `fsync`, the
/// strongest barrier they offer. Any other error is returned, never retried with `fsync`:
/// a failed sync may have lost the writes (see the contract in `fs.rs`).
#[cfg(target_vendor = "apple")]
fn full_fsync(file: &fs::File) -> io::Result<()> {
    use rustix::io::Errno;
    loop {
        match rustix::fs::fcntl_fullfsync(file) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) if e == Errno::NOTSUP || e == Errno::OPNOTSUPP || e == Errno::NOTTY => {
                return plain_fsync(file);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `fsync` itself (std's `sync_all` is `F_FULLFSYNC` on macOS, refused again where we
/// fall back).
#[cfg(target_vendor = "apple")]
fn plain_fsync(file: &fs::File) -> io::Result<()> {
    loop {
        match rustix::fs::fsync(file) {
            Err(rustix::io::Errno::INTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Makes the entries of the directory `path` durable (creates, renames and removes in it).
#[cfg(unix)]
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    // A directory opens read-only on Unix, and fsync works on its descriptor.
    let dir = fs::File::open(path)?;
    sync_dir_handle(&dir)
}

#[cfg(target_vendor = "apple")]
fn sync_dir_handle(dir: &fs::File) -> io::Result<()> {
    full_fsync(dir)
}

#[cfg(all(unix, not(target_vendor = "apple")))]
fn sync_dir_handle(dir: &fs::File) -> io::Result<()> {
    dir.sync_all()
}

/// Windows has no call that makes a directory's entries durable: `FlushFileBuffers` is
/// documented for files and volumes (flushing a volume needs administrator rights), and a
/// directory opens only with `FILE_FLAG_BACKUP_SEMANTICS`. NTFS journals creates, renames
/// and removes, so each is all or nothing after a crash, but when its journal record
/// reaches the disk is NTFS's choice: a name created or renamed just before a power loss
/// may be gone. This still fails, as on Unix, when `path` is not a directory.
#[cfg(windows)]
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    if fs::metadata(path)?.is_dir() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "sync_dir of something that is not a directory",
        ))
    }
}

/// Takes an exclusive advisory lock on the directory `path` itself. `Ok(None)` when another
/// holder has it; the returned value keeps the lock until dropped.
#[cfg(unix)]
pub(crate) fn lock_dir(path: &Path) -> io::Result<Option<Box<dyn fmt::Debug + Send + Sync>>> {
    // A directory opens read-only on Unix, and flock works on its descriptor (Linux and
    // macOS both).
    let dir = fs::File::open(path)?;
    match dir.try_lock() {
        Ok(()) => Ok(Some(Box::new(dir))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Windows has no lock on a directory like Unix's `flock`: `LockFileEx` locks byte ranges
/// of a file's data (Microsoft's FAT driver sample rejects it on anything else; NTFS was
/// not tried here), and opening the directory without sharing would also refuse the opens
/// that listing it makes. Rather than run without the lock (two writers of one database),
/// this refuses; a missing directory is still `NotFound`.
#[cfg(windows)]
pub(crate) fn lock_dir(path: &Path) -> io::Result<Option<Box<dyn fmt::Debug + Send + Sync>>> {
    fs::metadata(path)?;
    // The message is what a user of `Database::open` reads.
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "locking a directory is not supported on Windows, and a database is not opened for \
         writing without its directory lock (open it read-only instead)",
    ))
}

/// The process's soft limit on open file descriptors (`RLIMIT_NOFILE`), if it has one.
#[cfg(unix)]
pub(crate) fn open_files_soft_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Windows has no per-process soft limit on open handles of that kind (the C runtime's
/// descriptor table is not used here).
#[cfg(windows)]
pub(crate) fn open_files_soft_limit() -> Option<u64> {
    None
}

/// What a writable map of a real file needs, beyond `memmap2`'s flush, to make its stores
/// durable.
#[derive(Debug)]
pub(crate) struct MapDurability {
    /// macOS: `msync` writes the pages to the drive but not through its cache; a
    /// `F_FULLFSYNC` of the file, through this duplicate of its descriptor, does.
    #[cfg(target_vendor = "apple")]
    file: fs::File,
}

impl MapDurability {
    /// For a map of `file`. On macOS this duplicates the descriptor (so, while the map
    /// lives, the file's open description, and any `flock` on it, lives too).
    #[cfg(target_vendor = "apple")]
    pub(crate) fn new(file: &fs::File) -> io::Result<MapDurability> {
        Ok(MapDurability {
            file: file.try_clone()?,
        })
    }

    /// For a map of `file`: nothing to keep on this platform.
    #[cfg(not(target_vendor = "apple"))]
    pub(crate) fn new(_file: &fs::File) -> io::Result<MapDurability> {
        Ok(MapDurability {})
    }

    /// Called after a successful `msync` of a range of the map.
    #[cfg(target_vendor = "apple")]
    pub(crate) fn after_flush(&self) -> io::Result<()> {
        full_fsync(&self.file)
    }

    /// Called after a successful flush of a range of the map: Linux's `msync(MS_SYNC)` and
    /// Windows's `FlushViewOfFile` + `FlushFileBuffers` (both by `memmap2`) are enough.
    #[cfg(not(target_vendor = "apple"))]
    pub(crate) fn after_flush(&self) -> io::Result<()> {
        Ok(())
    }
}
