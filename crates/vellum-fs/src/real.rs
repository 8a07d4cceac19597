//! The real file system: `std::fs` plus `memmap2`, with what differs per operating system
//! in `platform.rs`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, OpKind, Result};
use crate::fs::{DirLock, File, Fs, MapBackend, MapMut, ReadMap, ReadMapInner};
use crate::platform;

/// The operating system's file system. Paths are used as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl RealFs {
    /// A handle to the real file system.
    pub fn new() -> Self {
        RealFs
    }

    /// The real file system as a shared handle.
    pub fn shared() -> crate::DynFs {
        Arc::new(RealFs)
    }
}

fn open_with(path: &Path, op: OpKind, opts: &fs::OpenOptions) -> Result<Box<dyn File>> {
    let file = opts.open(path).map_err(|e| Error::io(op, path, e))?;
    Ok(Box::new(RealFile {
        path: path.to_path_buf(),
        file,
        append_lock: Mutex::new(()),
        locked: Mutex::new(false),
    }))
}

impl Fs for RealFs {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        open_with(
            path,
            OpKind::Create,
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )
    }

    fn create_new(&self, path: &Path) -> Result<Box<dyn File>> {
        open_with(
            path,
            OpKind::Create,
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true),
        )
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        open_with(
            path,
            OpKind::Open,
            fs::OpenOptions::new().read(true).write(true),
        )
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn File>> {
        open_with(path, OpKind::Open, fs::OpenOptions::new().read(true))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| {
            Error::io(
                OpKind::Rename,
                format!("{} -> {}", from.display(), to.display()),
                e,
            )
        })
    }

    fn try_lock_dir(&self, path: &Path) -> Result<Option<DirLock>> {
        Ok(platform::lock_dir(path)
            .map_err(|e| Error::io(OpKind::Lock, path, e))?
            .map(DirLock::new))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io(OpKind::Remove, path, e))
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        fs::remove_dir(path).map_err(|e| Error::io(OpKind::Remove, path, e))
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path).map_err(|e| Error::io(OpKind::CreateDir, path, e))
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        platform::sync_dir(path).map_err(|e| Error::io(OpKind::SyncDir, path, e))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| Error::io(OpKind::List, path, e))? {
            let entry = entry.map_err(|e| Error::io(OpKind::List, path, e))?;
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(raw) => {
                    return Err(Error::io(
                        OpKind::List,
                        path.join(raw),
                        io::Error::new(io::ErrorKind::InvalidData, "file name is not UTF-8"),
                    ));
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        path.try_exists()
            .map_err(|e| Error::io(OpKind::List, path, e))
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        match fs::metadata(path) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(OpKind::List, path, e)),
        }
    }

    fn fail_point(&self, _name: &str) -> Result<()> {
        Ok(())
    }
}

/// A file of the real file system.
#[derive(Debug)]
struct RealFile {
    path: PathBuf,
    file: fs::File,
    /// Serialises `append` so that "read the length, write there" is not raced by another
    /// append through this handle.
    append_lock: Mutex<()>,
    /// Whether this handle holds its file's lock: asking again answers yes without asking
    /// the OS (Windows' `LockFileEx` would refuse a second lock by the same handle).
    locked: Mutex<bool>,
}

impl RealFile {
    fn err(&self, op: OpKind, e: io::Error) -> Error {
        Error::io(op, &self.path, e)
    }
}

/// Zeros written per call by [`File::allocate`].
const ZERO_CHUNK_BYTES: usize = 1 << 20;

impl File for RealFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match platform::read_exact_at(&self.file, buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::ReadPastEnd {
                path: self.path.clone(),
                offset,
                len: buf.len() as u64,
                file_len: self.len()?,
            }),
            Err(e) => Err(self.err(OpKind::Read, e)),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        platform::write_all_at(&self.file, buf, offset).map_err(|e| self.err(OpKind::Write, e))
    }

    fn append(&self, buf: &[u8]) -> Result<u64> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let offset = self.len()?;
        self.write_at(buf, offset)?;
        Ok(offset)
    }

    fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| self.err(OpKind::Len, e))?
            .len())
    }

    fn set_len(&self, len_bytes: u64) -> Result<()> {
        self.file
            .set_len(len_bytes)
            .map_err(|e| self.err(OpKind::SetLen, e))
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        let current = self.len()?;
        if current >= len_bytes {
            return Ok(());
        }
        let needed = len_bytes - current;
        // Reserve the blocks without writing them where the file system can (`fallocate`
        // on ext4, xfs, btrfs, tmpfs; `F_PREALLOCATE` on macOS): they read as zeros, and a
        // later write into them, or into a map of them, cannot run out of space. Elsewhere
        // (and always on Windows), write zeros.
        match platform::reserve(&self.file, current, needed) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(self.err(OpKind::SetLen, e).with_needed_bytes(needed)),
        }
        let mut offset = current;
        let zeros = vec![0u8; ZERO_CHUNK_BYTES];
        while offset < len_bytes {
            let n = (len_bytes - offset).min(ZERO_CHUNK_BYTES as u64) as usize;
            platform::write_all_at(&self.file, &zeros[..n], offset)
                .map_err(|e| self.err(OpKind::SetLen, e).with_needed_bytes(needed))?;
            offset += n as u64;
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        platform::sync_file(&self.file).map_err(|e| self.err(OpKind::SyncData, e))
    }

    fn map_read(&self) -> Result<ReadMap> {
        if self.len()? == 0 {
            return Ok(ReadMap {
                inner: ReadMapInner::Empty,
            });
        }
        // SAFETY: mapping is unsafe because the file could change underneath the map. Vellum
        // maps read-only only files it never writes while mapped (the contract of
        // `File::map_read`, checked by SimFs in tests), and documents at `ReadMap` that other
        // processes must not modify them.
        let map =
            unsafe { memmap2::Mmap::map(&self.file) }.map_err(|e| self.err(OpKind::Map, e))?;
        Ok(ReadMap {
            inner: ReadMapInner::Real(map),
        })
    }

    fn try_lock_exclusive(&self) -> Result<bool> {
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        if *locked {
            return Ok(true);
        }
        match self.file.try_lock() {
            Ok(()) => {
                *locked = true;
                Ok(true)
            }
            Err(fs::TryLockError::WouldBlock) => Ok(false),
            Err(fs::TryLockError::Error(e)) => Err(self.err(OpKind::Lock, e)),
        }
    }

    fn map_private(&self, len_bytes: usize) -> Result<MapMut> {
        let file_len = self.len()?;
        if (len_bytes as u64) > file_len {
            return Err(Error::Contract {
                path: self.path.clone(),
                rule: "map_private longer than the file",
            });
        }
        if len_bytes == 0 {
            return MapMut::private_copy(&self.path, &[], 0);
        }
        // SAFETY: a private (copy-on-write) map: stores go to this process's copies of the
        // pages and never to the file. Another process changing the file may still show
        // through pages not yet copied (documented at `MapMut` and on `map_private`'s
        // callers: a read-only open sees the files as they are while it reads them).
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(len_bytes)
                .map_copy(&self.file)
        }
        .map_err(|e| self.err(OpKind::Map, e))?;
        Ok(MapMut {
            raw: Arc::new(memmap2::MmapRaw::from(map)),
            len: len_bytes,
            path: self.path.clone(),
            backend: MapBackend::Private,
        })
    }

    fn map_mut(&self, len_bytes: usize) -> Result<MapMut> {
        let file_len = self.len()?;
        if (len_bytes as u64) > file_len {
            return Err(Error::Contract {
                path: self.path.clone(),
                rule: "map_mut longer than the file",
            });
        }
        let raw = memmap2::MmapOptions::new()
            .len(len_bytes)
            .map_raw(&self.file)
            .map_err(|e| self.err(OpKind::Map, e))?;
        let durability =
            platform::MapDurability::new(&self.file).map_err(|e| self.err(OpKind::Map, e))?;
        Ok(MapMut {
            raw: Arc::new(raw),
            len: len_bytes,
            path: self.path.clone(),
            backend: MapBackend::Real(durability),
        })
    }
}

/// The process's soft limit on open file descriptors (`RLIMIT_NOFILE`), if it has one.
/// Always `None` on Windows, which has no such limit.
pub fn open_files_soft_limit() -> Option<u64> {
    platform::open_files_soft_limit()
}
