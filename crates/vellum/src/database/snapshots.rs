//! The database's snapshot operations: export (to a file or as chunks), a collection's
//! snapshot catalog (create, list, delete, retain, restore) and import as a new collection.

// The parent's imports and private helpers (`collection_inner`, `check_writable`, ...).
use super::*;
use vellum_snapshot_format::{ArchiveHeader, ByteSource, Footer, ParentState, RestoreReport};

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
        self.export_snapshot_chunks_from(name, None, chunk_bytes, emit)
    }

    /// [`export_snapshot_chunks`](Self::export_snapshot_chunks), incremental from `parent`
    /// when given: only the files whose content differs from the parent's state table are
    /// stored, and the archive names the parent (its LSN range starts at the parent's end).
    /// The parent may be held anywhere (an archive in object storage, say); a collection
    /// whose LSN is before the parent's end is refused (the parent is of something else).
    pub fn export_snapshot_chunks_from(
        &self,
        name: &str,
        parent: Option<ParentState>,
        chunk_bytes: usize,
        emit: &mut dyn FnMut(Chunk) -> Result<()>,
    ) -> Result<SnapshotSummary> {
        self.check_writable("exporting a snapshot")?;
        let coll = self.collection_inner(name)?;
        crate::snapshot::export_stream(
            &self.inner.root,
            &coll,
            self.id(),
            parent,
            chunk_bytes,
            emit,
        )
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
        let fs = self.inner.fs.clone();
        let limits = self.inner.options.import_limits;
        self.import_with(archives.len(), new_name, &mut |target| {
            vellum_snapshot_format::restore_chain_with(
                fs.as_ref(),
                archives,
                target,
                &limits,
                &crate::snapshot::is_collection_file,
            )
        })
    }

    /// Imports a chain of archives held anywhere (a full one, then its incrementals in
    /// order) as the new collection `new_name`: `summaries` are their headers and footers,
    /// read first (every name, limit and the chain are checked before a byte is written);
    /// `open(i)` streams archive `i` from its first byte. Each stream is decoded straight into
    /// the staged collection and verified completely (block CRCs, per-file and whole-archive
    /// BLAKE3) before the collection becomes visible; no copy of an archive is kept.
    ///
    /// No database-wide lock is held while the streams are read: other collections are
    /// created, dropped, exported and written meanwhile (a collection created under the same
    /// name meanwhile wins, and the import fails with nothing left behind).
    pub fn import_snapshot_streams<'a>(
        &self,
        summaries: &[(ArchiveHeader, Footer)],
        open: &mut dyn FnMut(usize) -> vellum_snapshot_format::Result<Box<dyn ByteSource + 'a>>,
        new_name: &str,
    ) -> Result<Collection> {
        let fs = self.inner.fs.clone();
        let limits = self.inner.options.import_limits;
        self.import_with(summaries.len(), new_name, &mut |target| {
            vellum_snapshot_format::restore_chain_from(
                fs.as_ref(),
                summaries,
                open,
                target,
                &limits,
                &crate::snapshot::is_collection_file,
            )
        })
    }

    fn import_with(
        &self,
        archives: usize,
        new_name: &str,
        fill: &mut dyn FnMut(&Path) -> vellum_snapshot_format::Result<RestoreReport>,
    ) -> Result<Collection> {
        self.check_writable("importing a snapshot")?;
        let started = std::time::Instant::now();
        let (inner, entry) = crate::snapshot::restore_as_new(
            &self.inner.fs,
            &self.inner.root,
            &self.inner.catalog,
            &self.inner.options,
            new_name,
            fill,
        )?;
        let dir = self
            .inner
            .root
            .join(COLLECTIONS_DIR)
            .join(collection_dir_name(entry.id));
        let slot = CollectionSlot::opened(inner.clone(), &entry, self.id(), dir);
        slot.touch(self.tick());
        self.inner
            .collections
            .write()
            .insert(new_name.to_owned(), Arc::new(slot));
        self.close_idle();
        tracing::info!(
            collection = new_name,
            archives,
            points = inner.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "snapshot imported (verified before it became visible)"
        );
        Ok(Collection::new(inner, Arc::clone(&self.inner.lock)))
    }
}
