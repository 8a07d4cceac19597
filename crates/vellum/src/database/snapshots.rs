//! The database's snapshot operations: export (to a file or as chunks), a collection's
//! snapshot catalog (create, list, delete, retain, restore) and import as a new collection.

// The parent's imports and private helpers (`collection_inner`, `check_writable`, ...).
use super::*;

impl Database {
    /// Writes a full snapshot of collection `name` to the file `path` (atomically: the file
    /// appears whole or not at all). Checkpoints first, so it holds every write acknowledged
    /// before the call; writers are not blocked while it is written.
    pub fn export_snapshot(
        &self,
        name: &str,
        path: impl AsRef<Path>,
        compression: Compression,
    ) -> Result<SnapshotSummary> {
        self.check_writable("exporting a snapshot")?;
        let coll = self.collection_inner(name)?;
        let zstd = compression == Compression::Zstd;
        let started = std::time::Instant::now();
        let s =
            crate::snapshot::export_file(&self.inner.root, &coll, self.id(), path.as_ref(), zstd)?;
        tracing::info!(
            collection = name,
            path = %path.as_ref().display(),
            lsn = s.lsn,
            files = s.files,
            archive_bytes = s.archive_bytes,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "snapshot exported"
        );
        Ok(s)
    }

    /// Streams a full snapshot of collection `name` as numbered chunks of at most
    /// `chunk_bytes` (each carrying its offset; the last is final and carries the totals and
    /// the archive hash), for a receiver that may get them in any order.
    pub fn export_snapshot_chunks(
        &self,
        name: &str,
        chunk_bytes: usize,
        emit: &mut dyn FnMut(Chunk) -> Result<()>,
    ) -> Result<SnapshotSummary> {
        self.check_writable("exporting a snapshot")?;
        let coll = self.collection_inner(name)?;
        crate::snapshot::export_stream(&self.inner.root, &coll, self.id(), chunk_bytes, emit)
    }

    /// Adds a snapshot of collection `name` to its catalog: full, or incremental from the
    /// newest snapshot there (only files that changed since it are stored).
    pub fn create_snapshot(&self, name: &str, kind: SnapshotKind) -> Result<SnapshotMeta> {
        let incremental = kind == SnapshotKind::Incremental;
        self.check_writable("creating a snapshot")?;
        let coll = self.collection_inner(name)?;
        let started = std::time::Instant::now();
        let m =
            crate::snapshot::create_in_catalog(&self.inner.root, &coll, self.id(), incremental)?;
        tracing::info!(
            collection = name,
            id = %m.id,
            incremental,
            lsn = m.lsn_end,
            archive_bytes = m.archive_bytes,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "snapshot created"
        );
        Ok(m)
    }

    /// The snapshots in collection `name`'s catalog, newest first.
    pub fn list_snapshots(&self, name: &str) -> Result<Vec<SnapshotMeta>> {
        let coll = self.collection_inner(name)?;
        Ok(crate::snapshot::open_catalog(&self.inner.root, &coll)?.list())
    }

    /// The archive files of snapshot `id` of collection `name` with its parents, oldest
    /// (the full one) first: what a copy must hold to restore it elsewhere.
    pub fn snapshot_chain_paths(&self, name: &str, id: &str) -> Result<Vec<PathBuf>> {
        let coll = self.collection_inner(name)?;
        let id = parse_snapshot_id(id)?;
        let catalog = crate::snapshot::open_catalog(&self.inner.root, &coll)?;
        Ok(catalog
            .chain(id)?
            .iter()
            .map(|m| catalog.archive_path(m.id))
            .collect())
    }

    /// Deletes a snapshot (refused while an incremental snapshot still names it as parent).
    pub fn delete_snapshot(&self, name: &str, id: &str) -> Result<()> {
        self.check_writable("deleting a snapshot")?;
        let coll = self.collection_inner(name)?;
        let id = parse_snapshot_id(id)?;
        Ok(crate::snapshot::open_catalog(&self.inner.root, &coll)?.delete(id)?)
    }

    /// Keeps the newest `keep` snapshots of collection `name` (and every parent they need);
    /// returns the ids removed.
    pub fn retain_snapshots(&self, name: &str, keep: usize) -> Result<Vec<String>> {
        self.check_writable("removing snapshots")?;
        let coll = self.collection_inner(name)?;
        let removed = crate::snapshot::open_catalog(&self.inner.root, &coll)?.retain(keep)?;
        Ok(removed.iter().map(|id| id.to_hex()).collect())
    }

    /// Restores snapshot `id` of collection `source` (with its parent chain) as the new
    /// collection `new_name`. Everything is verified and staged before the new collection
    /// becomes visible; after a crash it is wholly there or not at all.
    pub fn restore_snapshot(&self, source: &str, id: &str, new_name: &str) -> Result<Collection> {
        self.check_writable("restoring a snapshot")?;
        let chain = self.snapshot_chain_paths(source, id)?;
        self.import_snapshot(&chain, new_name)
    }

    /// Imports snapshot archive files (a full one, then its incrementals in order) as the
    /// new collection `new_name`, from this or any other database.
    pub fn import_snapshot(&self, archives: &[PathBuf], new_name: &str) -> Result<Collection> {
        self.check_writable("importing a snapshot")?;
        let started = std::time::Instant::now();
        let mut catalog = self.inner.catalog.lock();
        let inner = crate::snapshot::restore_as_new(
            &self.inner.fs,
            &self.inner.root,
            &mut catalog,
            &self.inner.options,
            archives,
            new_name,
        )?;
        let entry = catalog
            .entries
            .iter()
            .find(|e| e.name == new_name)
            .ok_or_else(|| Error::Inconsistent {
                reason: format!("restored collection {new_name:?} is missing from the catalog"),
            })?;
        let dir = self
            .inner
            .root
            .join(COLLECTIONS_DIR)
            .join(collection_dir_name(entry.id));
        let slot = CollectionSlot::opened(inner.clone(), entry, catalog.database_id, dir);
        slot.touch(self.tick());
        self.inner
            .collections
            .write()
            .insert(new_name.to_owned(), Arc::new(slot));
        drop(catalog);
        self.close_idle();
        tracing::info!(
            collection = new_name,
            archives = archives.len(),
            points = inner.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "snapshot imported (verified before it became visible)"
        );
        Ok(Collection::new(inner, Arc::clone(&self.inner.lock)))
    }
}
