//! A copy-on-write overlay: a file system that reads another and keeps every change in
//! memory, so code written to open, recover and write can run over files it must not change
//! (a database another process holds, a read-only mount, a backup).
//!
//! Reads go to the base until a file is changed; the first change copies that file into
//! memory and later reads and writes use the copy. Removals and renames are remembered, not
//! done. Syncs succeed and do nothing. Files are opened on the base read-only, writable maps
//! are private (copy-on-write), and no lock is taken on the base. Nothing ever reaches the
//! base file system.
//!
//! Memory: only files that are changed are copied (for a database: the log segment whose
//! torn tail is cut, and the pages of vector segments a log replay writes).
//!
//! Writable maps are private memory, but kept coherent with the file as a shared map is:
//! the overlay remembers every live writable map of a path, and before any operation on
//! that path reads or changes its bytes (a read, a write, a new length, another map), it
//! copies the maps' memory into the overlay's copy of the file, oldest map first; writes
//! through the file are written through to the live maps. So a vector store that writes
//! slots through one map, then grows the file and maps it again, finds its slots in the new
//! map (a replay over the overlay that grew a segment used to lose them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::error::{Error, OpKind, Result};
use crate::fs::{DirLock, DynFs, File, Fs, MapMut, ReadMap};

/// A file system over `base` that never changes `base` (module docs).
#[derive(Debug, Clone)]
pub struct OverlayFs {
    base: DynFs,
    state: Arc<Mutex<Layer>>,
}

/// What the overlay changed: file contents copied up or created, names removed, directories
/// created. Guarded by one mutex, held only for map and vector operations, never across a
/// call into the base. Lock order: a file's copy before the layer.
#[derive(Debug, Default)]
struct Layer {
    files: BTreeMap<PathBuf, Arc<Mutex<Vec<u8>>>>,
    /// Live writable maps of each path, oldest first (module docs).
    maps: BTreeMap<PathBuf, Vec<Weak<memmap2::MmapRaw>>>,
    removed: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

fn not_found(op: OpKind, path: &Path) -> Error {
    Error::io(op, path, std::io::Error::from(std::io::ErrorKind::NotFound))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OverlayFs {
    /// An overlay over `base`.
    pub fn new(base: DynFs) -> OverlayFs {
        OverlayFs {
            base,
            state: Arc::new(Mutex::new(Layer::default())),
        }
    }

    /// The overlay as a shared handle.
    pub fn shared(self) -> DynFs {
        Arc::new(self)
    }

    fn layer(&self) -> MutexGuard<'_, Layer> {
        lock(&self.state)
    }

    /// Whether `path` or a directory above it was removed in the overlay.
    fn hidden(&self, path: &Path) -> bool {
        let layer = self.layer();
        path.ancestors().any(|p| layer.removed.contains(p))
    }

    /// The in-memory copy of `path`, copying it up from the base first if needed.
    fn copy_up(&self, path: &Path) -> Result<Arc<Mutex<Vec<u8>>>> {
        if let Some(f) = self.layer().files.get(path) {
            return Ok(f.clone());
        }
        if self.hidden(path) {
            return Err(not_found(OpKind::Open, path));
        }
        let base = self.base.open_read(path)?;
        let mut bytes = vec![0; usize::try_from(base.len()?).unwrap_or(usize::MAX)];
        base.read_at(&mut bytes, 0)?;
        let mut layer = self.layer();
        // Another handle may have copied it meanwhile: keep the first copy.
        Ok(layer
            .files
            .entry(path.to_path_buf())
            .or_insert_with(|| Arc::new(Mutex::new(bytes)))
            .clone())
    }

    fn handle(&self, path: &Path, base: Option<Box<dyn File>>) -> Box<dyn File> {
        Box::new(OverlayFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            base,
        })
    }
}

impl Fs for OverlayFs {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        let mut layer = self.layer();
        layer.removed.remove(path);
        layer
            .files
            .insert(path.to_path_buf(), Arc::new(Mutex::new(Vec::new())));
        drop(layer);
        Ok(self.handle(path, None))
    }

    fn create_new(&self, path: &Path) -> Result<Box<dyn File>> {
        if self.exists(path)? {
            return Err(Error::io(
                OpKind::Create,
                path,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        self.create(path)
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        self.open_read(path)
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn File>> {
        if self.layer().files.contains_key(path) {
            return Ok(self.handle(path, None));
        }
        if self.hidden(path) {
            return Err(not_found(OpKind::Open, path));
        }
        let base = self.base.open_read(path)?;
        Ok(self.handle(path, Some(base)))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        if self.is_dir(from)? {
            return Err(Error::Contract {
                path: from.to_path_buf(),
                rule: "the overlay renames files only",
            });
        }
        let bytes = self.copy_up(from)?;
        let copy = {
            let mut copy = lock(&bytes);
            absorb_maps(&self.layer(), from, &mut copy, 0..usize::MAX);
            copy.clone()
        };
        let mut layer = self.layer();
        if let Some(maps) = layer.maps.remove(from) {
            layer.maps.insert(to.to_path_buf(), maps);
        }
        layer.files.remove(from);
        layer.removed.insert(from.to_path_buf());
        layer.removed.remove(to);
        layer
            .files
            .insert(to.to_path_buf(), Arc::new(Mutex::new(copy)));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        if !self.exists(path)? {
            return Err(not_found(OpKind::Remove, path));
        }
        let mut layer = self.layer();
        layer.files.remove(path);
        layer.maps.remove(path);
        layer.removed.insert(path.to_path_buf());
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        if !self.list_dir(path)?.is_empty() {
            return Err(Error::io(
                OpKind::Remove,
                path,
                std::io::Error::from(std::io::ErrorKind::DirectoryNotEmpty),
            ));
        }
        let mut layer = self.layer();
        layer.dirs.remove(path);
        layer.removed.insert(path.to_path_buf());
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut missing = Vec::new();
        for dir in path.ancestors() {
            if dir.as_os_str().is_empty() || self.is_dir(dir)? {
                break;
            }
            missing.push(dir.to_path_buf());
        }
        let mut layer = self.layer();
        for dir in missing {
            layer.removed.remove(&dir);
            layer.dirs.insert(dir);
        }
        Ok(())
    }

    fn sync_dir(&self, _path: &Path) -> Result<()> {
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        if self.hidden(path) {
            return Err(not_found(OpKind::List, path));
        }
        let mut names: BTreeSet<String> = if self.base.is_dir(path)? {
            self.base.list_dir(path)?.into_iter().collect()
        } else if self.layer().dirs.contains(path) {
            BTreeSet::new()
        } else {
            return Err(not_found(OpKind::List, path));
        };
        let layer = self.layer();
        names.retain(|n| !layer.removed.contains(&path.join(n)));
        let ours = layer.files.keys().chain(layer.dirs.iter());
        for p in ours {
            if p.parent() == Some(path)
                && let Some(name) = p.file_name()
            {
                names.insert(name.to_string_lossy().into_owned());
            }
        }
        Ok(names.into_iter().collect())
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        {
            let layer = self.layer();
            if layer.files.contains_key(path) || layer.dirs.contains(path) {
                return Ok(true);
            }
        }
        if self.hidden(path) {
            return Ok(false);
        }
        self.base.exists(path)
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        {
            let layer = self.layer();
            if layer.dirs.contains(path) {
                return Ok(true);
            }
            if layer.files.contains_key(path) {
                return Ok(false);
            }
        }
        if self.hidden(path) {
            return Ok(false);
        }
        self.base.is_dir(path)
    }

    fn try_lock_dir(&self, _path: &Path) -> Result<Option<DirLock>> {
        // Nothing is written through the overlay, so it excludes nobody and needs no lock:
        // it may read beside a writer in another process.
        Ok(Some(DirLock::new(Box::new("overlay"))))
    }

    fn fail_point(&self, name: &str) -> Result<()> {
        self.base.fail_point(name)
    }
}

/// A file of an [`OverlayFs`]: the base file until the overlay holds a copy of the path.
#[derive(Debug)]
struct OverlayFile {
    fs: OverlayFs,
    path: PathBuf,
    /// The base file, read-only (absent for a file created in the overlay).
    base: Option<Box<dyn File>>,
}

impl OverlayFile {
    /// The overlay's copy of this file, if it has one.
    fn copy(&self) -> Option<Arc<Mutex<Vec<u8>>>> {
        self.fs.layer().files.get(&self.path).cloned()
    }

    fn base(&self) -> Result<&dyn File> {
        self.base
            .as_deref()
            .ok_or_else(|| not_found(OpKind::Read, &self.path))
    }

    /// The overlay's copy of this file with the live maps' stores in it, if it has a copy
    /// (made now when a live map exists: the map may hold stores the base lacks).
    fn synced_copy(&self) -> Result<Option<Arc<Mutex<Vec<u8>>>>> {
        self.synced_copy_of(0..usize::MAX)
    }

    /// As [`OverlayFile::synced_copy`], with only the maps' bytes in `range` copied in
    /// (a read takes only what it reads, not the whole map each time).
    fn synced_copy_of(&self, range: std::ops::Range<usize>) -> Result<Option<Arc<Mutex<Vec<u8>>>>> {
        let mapped = self
            .fs
            .layer()
            .maps
            .get(&self.path)
            .is_some_and(|maps| maps.iter().any(|m| m.strong_count() > 0));
        let copy = if mapped {
            Some(self.fs.copy_up(&self.path)?)
        } else {
            self.copy()
        };
        if let Some(copy) = &copy {
            let mut bytes = lock(copy);
            absorb_maps(&self.fs.layer(), &self.path, &mut bytes, range);
        }
        Ok(copy)
    }

    /// Changes the copy (made first if needed, with the maps' stores in it), then writes
    /// `written` (a range changed by `f`, if any) through to the live maps.
    fn change<R>(
        &self,
        f: impl FnOnce(&mut Vec<u8>) -> (R, Option<std::ops::Range<usize>>),
    ) -> Result<R> {
        let copy = match self.synced_copy()? {
            Some(copy) => copy,
            None => self.fs.copy_up(&self.path)?,
        };
        let mut bytes = lock(&copy);
        let (out, written) = f(&mut bytes);
        if let Some(range) = written {
            write_through_maps(&self.fs.layer(), &self.path, &bytes, range);
        }
        Ok(out)
    }

    /// Remembers a writable map of this file (module docs).
    fn track(&self, map: MapMut) -> MapMut {
        let mut layer = self.fs.layer();
        let maps = layer.maps.entry(self.path.clone()).or_default();
        maps.retain(|m| m.strong_count() > 0);
        maps.push(Arc::downgrade(&map.raw));
        map
    }
}

/// Copies the stores of `path`'s live writable maps in `range` into `bytes` (its overlay
/// copy), oldest map first, so the newest map's bytes win.
#[allow(unsafe_code)]
fn absorb_maps(layer: &Layer, path: &Path, bytes: &mut [u8], range: std::ops::Range<usize>) {
    for raw in layer
        .maps
        .get(path)
        .into_iter()
        .flatten()
        .filter_map(Weak::upgrade)
    {
        let end = raw.len().min(bytes.len()).min(range.end);
        if range.start >= end {
            continue;
        }
        // SAFETY: the map is alive (an Arc is held) and `range.start..end` lies inside it
        // and inside `bytes`, the copy's own buffer, borrowed mutably. Stores racing this
        // copy from another thread give torn bytes, as a disk could see (the `MapMut`
        // contract); no reference to the map memory is made.
        unsafe {
            std::ptr::copy_nonoverlapping(
                raw.as_ptr().add(range.start),
                bytes.as_mut_ptr().add(range.start),
                end - range.start,
            )
        };
    }
}

/// Writes `bytes[range]` (just written to the copy) through to `path`'s live maps, as the
/// page cache keeps shared maps coherent with writes.
#[allow(unsafe_code)]
fn write_through_maps(layer: &Layer, path: &Path, bytes: &[u8], range: std::ops::Range<usize>) {
    let from = range.start;
    for raw in layer
        .maps
        .get(path)
        .into_iter()
        .flatten()
        .filter_map(Weak::upgrade)
    {
        let end = raw.len().min(range.end).min(bytes.len());
        if from < end {
            // SAFETY: `from..end` lies inside the live map (Arc held) and inside `bytes`;
            // the `MapMut` contract forbids live slices over a range written through the
            // file, so nothing aliases these bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(from),
                    raw.as_mut_ptr().add(from),
                    end - from,
                )
            };
        }
    }
}

impl File for OverlayFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(copy) = self.synced_copy_of(start..start.saturating_add(buf.len()))? else {
            return self.base()?.read_at(buf, offset);
        };
        let bytes = lock(&copy);
        let start = usize::try_from(offset).ok();
        match start.and_then(|s| bytes.get(s..s.checked_add(buf.len())?)) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(Error::ReadPastEnd {
                path: self.path.clone(),
                offset,
                len: buf.len() as u64,
                file_len: bytes.len() as u64,
            }),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let at = usize::try_from(offset).map_err(|_| Error::Contract {
            path: self.path.clone(),
            rule: "write offset beyond memory",
        })?;
        self.change(|bytes| {
            if bytes.len() < at + buf.len() {
                bytes.resize(at + buf.len(), 0);
            }
            bytes[at..at + buf.len()].copy_from_slice(buf);
            ((), Some(at..at + buf.len()))
        })
    }

    fn append(&self, buf: &[u8]) -> Result<u64> {
        self.change(|bytes| {
            let at = bytes.len();
            bytes.extend_from_slice(buf);
            (at as u64, Some(at..at + buf.len()))
        })
    }

    fn len(&self) -> Result<u64> {
        match self.copy() {
            Some(copy) => Ok(lock(&copy).len() as u64),
            None => self.base()?.len(),
        }
    }

    fn set_len(&self, len_bytes: u64) -> Result<()> {
        let len = usize::try_from(len_bytes).map_err(|_| Error::Contract {
            path: self.path.clone(),
            rule: "length beyond memory",
        })?;
        self.change(|bytes| {
            let old = bytes.len();
            bytes.resize(len, 0);
            // Growth brings zeros into a longer map's range; a cut leaves maps as they are.
            ((), (len > old).then_some(old..len))
        })
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        if self.len()? < len_bytes {
            self.set_len(len_bytes)?;
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        Ok(())
    }

    fn map_read(&self) -> Result<ReadMap> {
        match self.synced_copy()? {
            Some(copy) => Ok(ReadMap::owned(lock(&copy).clone())),
            None => self.base()?.map_read(),
        }
    }

    fn map_mut(&self, len_bytes: usize) -> Result<MapMut> {
        self.map_private(len_bytes)
    }

    fn map_private(&self, len_bytes: usize) -> Result<MapMut> {
        let map = match self.synced_copy()? {
            Some(copy) => {
                let bytes = lock(&copy);
                if len_bytes > bytes.len() {
                    return Err(Error::Contract {
                        path: self.path.clone(),
                        rule: "map longer than the file",
                    });
                }
                MapMut::private_copy(&self.path, &bytes[..len_bytes], len_bytes)?
            }
            None => self.base()?.map_private(len_bytes)?,
        };
        Ok(self.track(map))
    }

    fn try_lock_exclusive(&self) -> Result<bool> {
        Ok(true)
    }
}
