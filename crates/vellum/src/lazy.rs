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

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use vellum_fs::DynFs;

use crate::catalog::Entry;
use crate::collection::CollectionInner;
use crate::error::{Error, Result};
use crate::options::{CollectionConfig, DatabaseOptions};

/// One collection the catalog names.
#[derive(Debug)]
pub(crate) struct CollectionSlot {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) config: CollectionConfig,
    /// The catalog entry, for the description written at first open.
    entry: Entry,
    database_id: u64,
    dir: PathBuf,
    /// The open collection. Held across this collection's open (so two first uses open it
    /// once); a leaf lock otherwise, never held while another lock is taken.
    opened: Mutex<Option<Arc<CollectionInner>>>,
}

impl CollectionSlot {
    /// A collection named by the catalog, not opened yet.
    pub(crate) fn closed(entry: &Entry, database_id: u64, dir: PathBuf) -> CollectionSlot {
        CollectionSlot {
            id: entry.id,
            name: entry.name.clone(),
            config: entry.config,
            entry: entry.clone(),
            database_id,
            dir,
            opened: Mutex::new(None),
        }
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
                &self.entry,
            )?;
        }
        let inner = Arc::new(CollectionInner::open(
            fs.clone(),
            &self.dir,
            self.id,
            &self.name,
            self.config,
            options,
        )?);
        started(&inner);
        *opened = Some(Arc::clone(&inner));
        Ok(inner)
    }
}
