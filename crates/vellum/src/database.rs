//! The database: a directory of named collections under one catalog (the background
//! checkpointer is in background.rs).

mod snapshots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use vellum_fs::{DynFs, Fs, RealFs, atomic_replace, create_dir_all_durable, parent_dir};

use crate::background::{Background, start_background};
use crate::catalog::{CATALOG_FILE, Catalog, Entry, validate_name};
use crate::collection::{
    CheckpointInfo, Collection, CollectionInner, CollectionStats, Indexers, VerifyReport,
};
use crate::error::{Error, Result};
use crate::lazy::CollectionSlot;
use crate::options::{CollectionConfig, DatabaseOptions, Quantization};
use crate::repair::CatalogRepair;
use crate::snapshot::SnapshotSummary;
use crate::snapshot::{Compression, SnapshotKind};
use vellum_snapshot_format::{Chunk, SnapshotId, SnapshotMeta};

fn parse_snapshot_id(text: &str) -> Result<SnapshotId> {
    SnapshotId::from_hex(text).ok_or_else(|| {
        Error::InvalidArgument(format!("{text:?} is not a snapshot id (32 hex digits)"))
    })
}

/// Directory holding the collections, by id.
pub(crate) const COLLECTIONS_DIR: &str = "collections";
/// Directory holding the snapshot catalog and archives.
pub(crate) const SNAPSHOTS_DIR: &str = "snapshots";

/// The directory of collection `id`.
pub(crate) fn collection_dir_name(id: u64) -> String {
    format!("c-{id:016x}")
}

/// An open database. Cheap to clone; every clone shares the same collections. Dropping the
/// last handle stops the background checkpointer (it does not sync: under
/// `SyncPolicy::Always` every acknowledged write is already durable; call
/// [`Database::sync`] first under the other policies).
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) inner: Arc<DbInner>,
}

/// The file name of a database's directory lock.
pub const LOCK_FILE: &str = "LOCK";

/// The advisory locks on the database directory and on `<root>/LOCK`, held while any handle to the database (or one of its
/// collections) lives: a second open of the directory, from this process or another, fails
/// with [`Error::Locked`] instead of writing beside the first.
#[derive(Debug)]
pub(crate) struct DbLock {
    /// The collections' indexer threads, joined before the locks below are released.
    pub(crate) indexers: Arc<Indexers>,
    _file: Box<dyn vellum_fs::File>,
    _dir: vellum_fs::DirLock,
}

impl Drop for DbLock {
    fn drop(&mut self) {
        // The last handle is gone: no indexer may still run over these files when the next
        // open takes the directory.
        self.indexers.shutdown();
    }
}

#[derive(Debug)]
pub(crate) struct DbInner {
    pub(crate) fs: DynFs,
    pub(crate) root: PathBuf,
    pub(crate) options: DatabaseOptions,
    pub(crate) catalog: Mutex<Catalog>,
    /// Every collection the catalog names, opened on first use (`lazy.rs`). Lock order:
    /// `catalog` → `collections` → a slot's own lock.
    pub(crate) collections: RwLock<BTreeMap<String, Arc<CollectionSlot>>>,
    /// Most collections kept open (`DatabaseOptions::with_max_open_collections`).
    pub(crate) max_open: usize,
    /// Counts uses of collections, for closing the least recently used first.
    pub(crate) use_tick: std::sync::atomic::AtomicU64,
    /// The number of open collections as last counted plus those opened since (a dropped
    /// one may still count; an open racing with a recount may be missed, so the pool can
    /// pass `max_open` by the opens that race it until the next recount). While it is
    /// within `max_open`, opening one more needs no look at the others (`lazy.rs`).
    pub(crate) open_at_least: std::sync::atomic::AtomicUsize,
    pub(crate) background: Mutex<Option<Background>>,
    /// Declared last: released only after everything above is dropped.
    pub(crate) lock: Arc<DbLock>,
}

impl Drop for DbInner {
    fn drop(&mut self) {
        if let Some(bg) = self.background.get_mut().take() {
            bg.stop();
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn fresh_database_id() -> u64 {
    vellum_fs::rng::random_u64()
}

/// Removes a directory tree through the file system seam (files, then directories).
pub(crate) fn remove_tree(fs: &dyn Fs, dir: &Path) -> Result<()> {
    if !fs.exists(dir)? {
        return Ok(());
    }
    for name in fs.list_dir(dir)? {
        let p = dir.join(&name);
        if fs.is_dir(&p)? {
            remove_tree(fs, &p)?;
        } else {
            fs.remove_file(&p)?;
        }
    }
    fs.remove_dir(dir)?;
    Ok(())
}

/// Refuses a directory with no catalog that is not empty enough to become a new database:
/// one holding foreign files (`NotADatabase`), or a database that lost its catalog
/// (`CatalogMissing`). Checked before anything, even the lock file, is made: such a
/// directory is left exactly as it was.
fn refuse_without_catalog(fs: &dyn Fs, root: &Path) -> Result<()> {
    let foreign: Vec<String> = fs
        .list_dir(root)?
        .into_iter()
        .filter(|n| {
            n != COLLECTIONS_DIR
                && n != SNAPSHOTS_DIR
                && n != LOCK_FILE
                && !n.ends_with(vellum_fs::TMP_SUFFIX)
        })
        .collect();
    if !foreign.is_empty() {
        return Err(Error::NotADatabase {
            path: root.to_path_buf(),
            reason: format!("it has no {CATALOG_FILE} file but holds {foreign:?}"),
        });
    }
    // A database whose catalog was lost: its collections (or snapshots) are still there.
    // Creating a fresh catalog would orphan them all; refuse instead.
    let mut found = Vec::new();
    for dir in [COLLECTIONS_DIR, SNAPSHOTS_DIR] {
        let path = root.join(dir);
        if fs.exists(&path)? && fs.is_dir(&path)? {
            let names = fs.list_dir(&path)?;
            if !names.is_empty() {
                found.push(format!("{dir}/ with {} entries: {names:?}", names.len()));
            }
        }
    }
    if !found.is_empty() {
        return Err(Error::CatalogMissing {
            path: root.to_path_buf(),
            catalog: root.join(CATALOG_FILE),
            found: found.join("; "),
        });
    }
    Ok(())
}

/// The marker `drop_collection` leaves (durably) in a collection's directory before the
/// catalog stops naming it: the directory may then be removed at any later open.
pub(crate) const DROPPED_MARKER: &str = "DROPPED";

/// Removes the collection directories a crash left behind, and nothing else.
///
/// A directory the catalog does not name is removed only when it is provably abandoned:
/// its id is at or beyond the catalog's next collection id (a create or an import that a
/// crash stopped before its catalog commit), or it holds the [`DROPPED_MARKER`] (a drop that
/// a crash interrupted after its catalog commit). Anything else (a directory copied in by
/// hand, one a catalog restored from an older backup does not name) is left as it is: data
/// is never deleted on a guess.
fn remove_abandoned_collections(fs: &dyn Fs, coll_root: &Path, catalog: &Catalog) -> Result<()> {
    // A set, not a scan of the catalog per directory: 10,000 collections took 11 s to open.
    let named: std::collections::HashSet<String> = catalog
        .entries
        .iter()
        .map(|e| collection_dir_name(e.id))
        .collect();
    for name in fs.list_dir(coll_root)? {
        if named.contains(&name) {
            continue;
        }
        let path = coll_root.join(&name);
        let unborn =
            parse_collection_dir_name(&name).is_some_and(|id| id >= catalog.next_collection_id);
        let dropped = fs.is_dir(&path)? && fs.exists(&path.join(DROPPED_MARKER))?;
        if unborn || dropped {
            remove_tree(fs, &path)?;
        }
    }
    Ok(())
}

/// The collection id in a directory name made by [`collection_dir_name`].
pub(crate) fn parse_collection_dir_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("c-")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

impl Database {
    /// Opens (creating if needed) the database in directory `path` on the real file system.
    pub fn open(path: impl AsRef<Path>, options: DatabaseOptions) -> Result<Database> {
        Database::open_with_fs(RealFs::shared(), path, options)
    }

    /// Opens the database in `path` on the given file system (the crash simulator in tests).
    ///
    /// Reads the catalog only: each collection recovers at its first use
    /// ([`Database::collection`]): it loads its newest checkpoint, maps its vectors, opens
    /// its saved graph, and replays its log tail. A damaged collection fails there, and the
    /// others still open.
    pub fn open_with_fs(
        fs: DynFs,
        path: impl AsRef<Path>,
        options: DatabaseOptions,
    ) -> Result<Database> {
        options.validate()?;
        let root = path.as_ref().to_path_buf();
        create_dir_all_durable(fs.as_ref(), &root)?;
        Database::open_checked(fs, root, options)
    }

    /// Opens the database in `path` on the real file system without changing a byte of it:
    /// for inspecting a database another process holds, or one on a read-only mount or in
    /// a backup. See [`Database::open_read_only_with_fs`].
    pub fn open_read_only(path: impl AsRef<Path>, options: DatabaseOptions) -> Result<Database> {
        Database::open_read_only_with_fs(RealFs::shared(), path, options)
    }

    /// Opens the database in `path` read-only on the given file system.
    ///
    /// Recovery runs as in [`Database::open_with_fs`], over a copy-on-write overlay
    /// ([`vellum_fs::OverlayFs`]) that keeps every change in memory: a torn log tail is read
    /// up to and reported (`CollectionStats::tail_cut_at_open`) but not cut, the log tail is
    /// replayed into private copies of the mapped pages, nothing is removed, no lock is
    /// taken and no file is created. Searches, reads, `stats` and `verify` work; every
    /// change fails with [`Error::ReadOnly`]. No background checkpoints run.
    ///
    /// It may run beside a writer in another process: it sees the files as they are while
    /// it opens them. A checkpoint the writer finishes meanwhile can remove files the
    /// read-only handle still names (an error then; open again), and later reads of slots
    /// the writer reuses fail their checksums rather than return wrong vectors.
    pub fn open_read_only_with_fs(
        fs: DynFs,
        path: impl AsRef<Path>,
        mut options: DatabaseOptions,
    ) -> Result<Database> {
        options.validate()?;
        options.read_only = true;
        options.background_checkpoints = false;
        let root = path.as_ref().to_path_buf();
        if !fs.is_dir(&root)? {
            return Err(Error::NotADatabase {
                path: root,
                reason: "there is no such directory".into(),
            });
        }
        if !fs.exists(&root.join(CATALOG_FILE))? {
            refuse_without_catalog(fs.as_ref(), &root)?;
            return Err(Error::NotADatabase {
                path: root,
                reason: format!("it has no {CATALOG_FILE} file (a read-only open creates none)"),
            });
        }
        Database::open_checked(vellum_fs::OverlayFs::new(fs).shared(), root, options)
    }

    /// Rebuilds a lost catalog (`VELLUM`) of the database in `path` on the real file system
    /// from the description each collection directory holds. See
    /// [`Database::repair_catalog_with_fs`].
    pub fn repair_catalog(path: impl AsRef<Path>) -> Result<CatalogRepair> {
        Database::repair_catalog_with_fs(RealFs::shared(), path)
    }

    /// Rebuilds a lost catalog from the collections' descriptions (`collection.meta` in each
    /// collection directory, written when it was created or imported), under the
    /// database's directory lock. Refused when the catalog exists. Directories without a
    /// usable description (made by a version before descriptions, damaged, or being
    /// dropped) are left out, listed in the report, and stay on disk untouched.
    pub fn repair_catalog_with_fs(fs: DynFs, path: impl AsRef<Path>) -> Result<CatalogRepair> {
        let root = path.as_ref().to_path_buf();
        if !fs.is_dir(&root)? {
            return Err(Error::NotADatabase {
                path: root,
                reason: "there is no such directory".into(),
            });
        }
        let Some(_lock) = fs.try_lock_dir(&root)? else {
            return Err(Error::Locked { path: root });
        };
        crate::repair::repair_catalog(&fs, &root)
    }

    /// Whether this handle was opened with [`Database::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.options.read_only
    }

    /// Refuses `operation` on a database opened read-only.
    fn check_writable(&self, operation: &'static str) -> Result<()> {
        if self.inner.options.read_only {
            return Err(Error::ReadOnly {
                operation,
                path: self.inner.root.clone(),
            });
        }
        Ok(())
    }

    /// The shared part of both opens, once the directory exists.
    fn open_checked(fs: DynFs, root: PathBuf, options: DatabaseOptions) -> Result<Database> {
        let catalog_path = root.join(CATALOG_FILE);
        if !fs.exists(&catalog_path)? {
            refuse_without_catalog(fs.as_ref(), &root)?;
        }
        // The directory itself is locked: a lock on a file inside it would be lost to
        // anyone who removes or replaces that file, and two processes would then write one
        // database. The `LOCK` file is locked as well, for older versions that lock only it.
        let Some(dir_lock) = fs.try_lock_dir(&root)? else {
            return Err(Error::Locked { path: root });
        };
        // The lock file's contents and durability do not matter: only the lock does.
        let lock_path = root.join(LOCK_FILE);
        let lock_file = match fs.open(&lock_path) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => fs.create(&lock_path)?,
            Err(e) => return Err(e.into()),
        };
        if !lock_file.try_lock_exclusive()? {
            return Err(Error::Locked { path: lock_path });
        }
        let lock = Arc::new(DbLock {
            indexers: Arc::new(Indexers::default()),
            _file: lock_file,
            _dir: dir_lock,
        });
        let catalog = if fs.exists(&catalog_path)? {
            let file = fs.open(&catalog_path)?;
            let mut bytes = vec![0; file.len()? as usize];
            file.read_at(&mut bytes, 0)?;
            Catalog::decode(&bytes, &catalog_path)?
        } else {
            let catalog = Catalog::new(fresh_database_id());
            atomic_replace(fs.as_ref(), &catalog_path, &catalog.encode())?;
            catalog
        };
        let coll_root = root.join(COLLECTIONS_DIR);
        create_dir_all_durable(fs.as_ref(), &coll_root)?;
        remove_abandoned_collections(fs.as_ref(), &coll_root, &catalog)?;
        // Nothing of a collection is read here: each opens on first use (`lazy.rs`).
        let collections: BTreeMap<String, Arc<CollectionSlot>> = catalog
            .entries
            .iter()
            .map(|e| {
                let dir = coll_root.join(collection_dir_name(e.id));
                let slot = CollectionSlot::closed(e, catalog.database_id, dir);
                (e.name.clone(), Arc::new(slot))
            })
            .collect();
        let max_open = options.max_open_collections.unwrap_or_else(|| {
            let limit = vellum_fs::open_files_soft_limit().unwrap_or(1024);
            usize::try_from(limit / 8).unwrap_or(usize::MAX).max(16)
        });
        let inner = Arc::new(DbInner {
            fs,
            root,
            options,
            catalog: Mutex::new(catalog),
            collections: RwLock::new(collections),
            max_open,
            use_tick: std::sync::atomic::AtomicU64::new(0),
            open_at_least: std::sync::atomic::AtomicUsize::new(0),
            background: Mutex::new(None),
            lock,
        });
        if inner.options.background_checkpoints {
            start_background(&inner);
        }
        tracing::info!(
            path = %inner.root.display(),
            collections = inner.collections.read().len(),
            read_only = inner.options.read_only,
            "database opened (collections open on first use)"
        );
        Ok(Database { inner })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// The database's random id (snapshots record it).
    pub fn id(&self) -> u64 {
        self.inner.catalog.lock().database_id
    }

    /// The collection `name`, created with `config` if there is none. An existing one
    /// whose configuration differs is an error (`Error::InvalidArgument`, naming both):
    /// it is never silently used with other settings.
    pub fn collection_or_create(&self, name: &str, config: CollectionConfig) -> Result<Collection> {
        match self.collection(name) {
            Ok(c) if c.config() == config => Ok(c),
            Ok(c) => Err(Error::InvalidArgument(format!(
                "collection {name:?} exists with {:?}, not the {config:?} asked for",
                c.config()
            ))),
            Err(Error::UnknownCollection { .. }) => self.create_collection(name, config),
            Err(e) => Err(e),
        }
    }

    /// Creates a collection. Durable when this returns.
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Collection> {
        self.check_writable("creating a collection")?;
        validate_name(name)?;
        config.validate()?;
        let mut catalog = self.inner.catalog.lock();
        catalog.check_room()?;
        if catalog.entries.iter().any(|e| e.name == name) {
            return Err(Error::CollectionExists {
                name: name.to_owned(),
            });
        }
        let id = catalog.next_collection_id;
        let dir = self
            .inner
            .root
            .join(COLLECTIONS_DIR)
            .join(collection_dir_name(id));
        let inner = Arc::new(CollectionInner::open(
            self.inner.fs.clone(),
            &dir,
            id,
            name,
            config,
            &self.inner.options,
        )?);
        let entry = Entry {
            id,
            name: name.to_owned(),
            config,
            created_ms: now_ms(),
        };
        // The collection's own description, durable before the catalog names it: a lost
        // catalog can be rebuilt from these (`Database::repair_catalog`).
        crate::repair::write_description(
            self.inner.fs.as_ref(),
            &dir,
            catalog.database_id,
            &entry,
        )?;
        let mut next = catalog.clone();
        next.next_collection_id += 1;
        next.entries.push(entry);
        // The catalog is the commit point: a crash before this leaves an orphan directory
        // that the next open removes.
        atomic_replace(
            self.inner.fs.as_ref(),
            &self.inner.root.join(CATALOG_FILE),
            &next.encode(),
        )?;
        let slot = CollectionSlot::opened(
            inner.clone(),
            next.entries.last().expect("just pushed"),
            next.database_id,
            dir,
        );
        slot.touch(self.tick());
        *catalog = next;
        self.inner
            .collections
            .write()
            .insert(name.to_owned(), Arc::new(slot));
        drop(catalog);
        self.close_idle();
        Ok(Collection::new(inner, Arc::clone(&self.inner.lock)))
    }

    /// A handle to an existing collection, opened now if this is its first use since the
    /// database opened (recovery happens then: its checkpoint, vectors, graph and log tail;
    /// a damaged collection fails here, every time, and the others are not affected).
    pub fn collection(&self, name: &str) -> Result<Collection> {
        let inner = self.collection_inner(name)?;
        Ok(Collection::new(inner, Arc::clone(&self.inner.lock)))
    }

    /// Names and configurations of every collection, by name (none is opened).
    pub fn list_collections(&self) -> Vec<(String, CollectionConfig)> {
        self.inner
            .collections
            .read()
            .values()
            .map(|c| (c.name.clone(), c.config()))
            .collect()
    }

    /// Changes a collection's quantization (see [`crate::Quantization`]): `None` drops the
    /// quantized copy (searches read the originals); another kind trains a quantizer from a
    /// sample and encodes every vector before this returns, a few thousand at a time with
    /// the collection's lock released in between, so searches (on the old codes) and
    /// writes (coded both ways) go on meanwhile; new settings of the same kind (rescoring,
    /// oversampling) apply at once. Checkpoints wait for the conversion. The catalog names
    /// the new setting first: a crash after that trains at the next open.
    pub fn set_quantization(&self, name: &str, quantization: Option<Quantization>) -> Result<()> {
        self.check_writable("changing a collection's quantization")?;
        let inner = self.collection_inner(name)?;
        {
            let mut catalog = self.inner.catalog.lock();
            let Some(pos) = catalog.entries.iter().position(|e| e.name == name) else {
                return Err(Error::UnknownCollection {
                    name: name.to_owned(),
                });
            };
            let mut next = catalog.clone();
            next.entries[pos].config.quantization = quantization;
            next.entries[pos].config.validate()?;
            let entry = next.entries[pos].clone();
            crate::repair::write_description(
                self.inner.fs.as_ref(),
                &inner.dir,
                next.database_id,
                &entry,
            )?;
            atomic_replace(
                self.inner.fs.as_ref(),
                &self.inner.root.join(CATALOG_FILE),
                &next.encode(),
            )?;
            *catalog = next;
            if let Some(slot) = self.inner.collections.read().get(name) {
                slot.set_entry(entry);
            }
        }
        inner.set_quantization(quantization)
    }

    /// Drops a collection and deletes its files. Durable when this returns; handles to it
    /// fail from now on with [`Error::UnknownCollection`].
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.check_writable("dropping a collection")?;
        let mut catalog = self.inner.catalog.lock();
        let Some(pos) = catalog.entries.iter().position(|e| e.name == name) else {
            return Err(Error::UnknownCollection {
                name: name.to_owned(),
            });
        };
        let mut next = catalog.clone();
        let entry = next.entries.remove(pos);
        let dir = self
            .inner
            .root
            .join(COLLECTIONS_DIR)
            .join(collection_dir_name(entry.id));
        // Marked before the catalog forgets it, so an open after a crash between the two
        // knows the directory is abandoned rather than unknown (and removes it).
        atomic_replace(self.inner.fs.as_ref(), &dir.join(DROPPED_MARKER), b"")?;
        atomic_replace(
            self.inner.fs.as_ref(),
            &self.inner.root.join(CATALOG_FILE),
            &next.encode(),
        )?;
        *catalog = next;
        let removed = self
            .inner
            .collections
            .write()
            .remove(name)
            .and_then(|slot| slot.get());
        // Wait for a checkpoint in flight (the background thread's, say) to finish writing
        // into the directory, and keep new ones out: they check `dropped` under this lock.
        let _checkpoints = removed.as_ref().map(|inner| {
            inner.dropped.store(true, Ordering::Release);
            inner.checkpointer.lock()
        });
        // If a crash interrupts this, the next open removes the rest (no catalog entry).
        remove_tree(self.inner.fs.as_ref(), &dir)?;
        self.inner.fs.sync_dir(parent_dir(&dir))?;
        Ok(())
    }

    /// Makes every write so far durable in every open collection (one not opened since the
    /// database opened has nothing to sync).
    pub fn sync(&self) -> Result<()> {
        for c in self.open_collections() {
            c.sync()?;
        }
        Ok(())
    }

    /// Checkpoints every collection now (opening those not open yet).
    pub fn checkpoint_all(&self) -> Result<Vec<(String, CheckpointInfo)>> {
        self.each_collection(|c| Ok((c.name.clone(), c.checkpoint()?)))
    }

    /// Counters of every collection (opening those not open yet).
    pub fn stats(&self) -> Result<Vec<CollectionStats>> {
        self.each_collection(|c| Ok(c.stats()))
    }

    /// Re-reads every checksum of every collection (vectors, checkpoints, log) and reports
    /// what is damaged.
    pub fn verify(&self) -> Result<Vec<VerifyReport>> {
        self.each_collection(|c| c.verify())
    }
}
