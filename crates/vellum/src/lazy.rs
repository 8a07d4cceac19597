//! The collections of an open database, each opened on first use.
//!
//! `Database::open` reads the catalog and nothing of the collections: a database of
//! thousands of collections opens in the time it takes to read its catalog, holds no file of
//! a collection nobody uses, and one damaged collection no longer keeps the others from
//! opening (its error comes at its first use, every time until it opens).
//!
//! What opens a collection: `Database::collection`, and the calls that need every
//! collection's state (`stats`, `verify`, `checkpoint_all`). What does not: `sync` and the
//! background checkpointer (an unopened collection has nothing unsynced and nothing new to
//! checkpoint), `list_collections`.
//!
//! # A bounded pool
//!
//! At most `DatabaseOptions::max_open_collections` stay open: past it, opening one closes the
//! least recently used idle ones (`try_close`: nothing outside the database holds it, no
//! indexer runs; its log is synced first). Closing drops the collection's files and maps; it
//! opens again, recovering as at any open, at its next use.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use vellum_fs::DynFs;

use crate::Database;
use crate::catalog::Entry;
use crate::collection::CollectionInner;
use crate::error::{Error, Result};
use crate::options::{CollectionConfig, DatabaseOptions};

/// One collection the catalog names.
#[derive(Debug)]
pub(crate) struct CollectionSlot {
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The catalog entry, for the description written at first open (its quantization
    /// changes with `Database::set_quantization`; a leaf lock).
    entry: Mutex<Entry>,
    database_id: u64,
    dir: PathBuf,
    /// The open collection. Held across this collection's open (so two first uses open it
    /// once) and its close; a leaf lock otherwise, never held while another lock is taken.
    opened: Mutex<Option<Arc<CollectionInner>>>,
    /// When it was last handed out (a database-wide counter), for closing the least
    /// recently used first.
    last_used: AtomicU64,
}

impl CollectionSlot {
    /// A collection named by the catalog, not opened yet.
    pub(crate) fn closed(entry: &Entry, database_id: u64, dir: PathBuf) -> CollectionSlot {
        CollectionSlot {
            id: entry.id,
            name: entry.name.clone(),
            entry: Mutex::new(entry.clone()),
            database_id,
            dir,
            opened: Mutex::new(None),
            last_used: AtomicU64::new(0),
        }
    }

    /// Records a use at `tick`.
    pub(crate) fn touch(&self, tick: u64) {
        self.last_used.store(tick, Ordering::Relaxed);
    }

    /// When it was last used (0: never since the database opened).
    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Whether it is open now.
    pub(crate) fn is_open(&self) -> bool {
        self.opened.lock().is_some()
    }

    /// Closes the collection if it is open and idle: nothing but this slot holds it (no
    /// `Collection` handle, no checkpoint or indexer working on it); its log is synced
    /// first. Returns whether it closed.
    pub(crate) fn try_close(&self) -> Result<bool> {
        let mut opened = self.opened.lock();
        let Some(inner) = &*opened else {
            return Ok(false);
        };
        // Every other holder got its reference through this lock, which is held, except a
        // running indexer (it upgrades a weak one): it is excluded by `indexer_running`.
        if Arc::strong_count(inner) > 1 || inner.pending.lock().indexer_running {
            return Ok(false);
        }
        inner.sync()?;
        *opened = None;
        Ok(true)
    }

    /// A collection just created or restored, open already.
    pub(crate) fn opened(
        inner: Arc<CollectionInner>,
        entry: &Entry,
        database_id: u64,
        dir: PathBuf,
    ) -> CollectionSlot {
        let slot = CollectionSlot::closed(entry, database_id, dir);
        *slot.opened.lock() = Some(inner);
        slot
    }

    /// The collection's configuration as the catalog names it now.
    pub(crate) fn config(&self) -> CollectionConfig {
        self.entry.lock().config
    }

    /// Records a new quantization setting (the catalog already names it).
    pub(crate) fn set_entry(&self, entry: Entry) {
        *self.entry.lock() = entry;
    }

    /// The collection if it is open.
    pub(crate) fn get(&self) -> Option<Arc<CollectionInner>> {
        self.opened.lock().clone()
    }

    /// The collection, opened now (recovery: its checkpoint, its vectors, its graph, its log
    /// tail) unless it is open already. `started` runs once on a fresh open (the indexer).
    pub(crate) fn open(
        &self,
        fs: &DynFs,
        options: &DatabaseOptions,
        started: impl FnOnce(&Arc<CollectionInner>),
    ) -> Result<Arc<CollectionInner>> {
        let mut opened = self.opened.lock();
        if let Some(inner) = &*opened {
            return Ok(Arc::clone(inner));
        }
        // Created durably before the catalog named it, removed only after the catalog
        // stopped naming it: a named directory that is missing is damage, and opening it
        // as a new empty collection would hide the loss.
        if !fs.exists(&self.dir)? {
            return Err(Error::BadDatabaseFile {
                path: self.dir.clone(),
                reason: format!(
                    "the catalog names collection {:?} but its directory is missing",
                    self.name
                ),
            });
        }
        // A collection made before descriptions existed gets one now, so a lost catalog can
        // be rebuilt whatever version made the database.
        if !options.read_only
            && !fs.exists(&self.dir.join(crate::snapshot::COLLECTION_META_FILE))?
        {
            crate::repair::write_description(
                fs.as_ref(),
                &self.dir,
                self.database_id,
                &self.entry.lock(),
            )?;
        }
        let inner = Arc::new(CollectionInner::open(
            fs.clone(),
            &self.dir,
            self.id,
            &self.name,
            self.config(),
            options,
        )?);
        started(&inner);
        *opened = Some(Arc::clone(&inner));
        Ok(inner)
    }
}

impl Database {
    /// The collections opened so far.
    pub(crate) fn open_collections(&self) -> Vec<Arc<CollectionInner>> {
        let slots: Vec<_> = self.inner.collections.read().values().cloned().collect();
        slots.iter().filter_map(|s| s.get()).collect()
    }

    /// Runs `f` on every collection in name order, opening each where needed and letting
    /// it go before the next, so the pool of open collections stays bounded (holding them
    /// all, opening the 10,000th looked at every other one: 7.5 s for 10,000). The first
    /// error stops this.
    pub(crate) fn each_collection<T>(
        &self,
        mut f: impl FnMut(&CollectionInner) -> Result<T>,
    ) -> Result<Vec<T>> {
        let names: Vec<String> = self.inner.collections.read().keys().cloned().collect();
        names
            .iter()
            .map(|n| f(&*self.collection_inner(n)?))
            .collect()
    }

    pub(crate) fn collection_inner(&self, name: &str) -> Result<Arc<CollectionInner>> {
        let slot = self
            .inner
            .collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownCollection {
                name: name.to_owned(),
            })?;
        let indexers = &self.inner.lock.indexers;
        slot.touch(self.tick());
        let was_open = slot.is_open();
        // A pending tail found at open is indexed in the background from now on.
        let inner = slot.open(&self.inner.fs, &self.inner.options, |c| {
            c.kick_indexer(indexers)
        })?;
        if !was_open {
            let open = self.inner.open_at_least.fetch_add(1, Ordering::Relaxed) + 1;
            if open > self.inner.max_open {
                self.close_idle();
            }
        }
        Ok(inner)
    }

    pub(crate) fn tick(&self) -> u64 {
        self.inner.use_tick.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Closes the least recently used idle collections while more than `max_open` are
    /// open (`lazy.rs`). One that cannot be closed now (in use, or its log failing to sync)
    /// stays open. Looks at every collection, so it runs only once the count of open ones
    /// passes `max_open` (opening all of 10,000 called it at each open, 8 s in all), and
    /// sets that count to what it found.
    pub(crate) fn close_idle(&self) {
        let slots: Vec<Arc<CollectionSlot>> =
            self.inner.collections.read().values().cloned().collect();
        let mut open: Vec<&Arc<CollectionSlot>> = slots.iter().filter(|s| s.is_open()).collect();
        let mut still_open = open.len();
        // Past the bound, close down to seven eighths of it, so the next look at every
        // collection comes an eighth of the bound of opens later, not at the next open.
        let target = self.inner.max_open - self.inner.max_open / 8;
        if let Some(mut excess) = open
            .len()
            .checked_sub(self.inner.max_open)
            .map(|_| open.len() - target)
        {
            open.sort_by_key(|s| s.last_used());
            for slot in open {
                if excess == 0 {
                    break;
                }
                if matches!(slot.try_close(), Ok(true)) {
                    excess -= 1;
                    still_open -= 1;
                }
            }
        }
        // Opens racing with this scan may be undercounted by the store below; the next
        // open past the bound recounts.
        self.inner
            .open_at_least
            .store(still_open, Ordering::Relaxed);
    }
}
