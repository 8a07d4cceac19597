//! Snapshots of a collection through `vellum-snapshot-format`: export to a file or a chunk
//! stream, a per-collection catalog of full and incremental snapshots with retention, and
//! import/restore into a new collection (staged, swapped in atomically, then published in the
//! database catalog).
//!
//! What a snapshot holds: the collection's current checkpoint generation (`checkpoints/`:
//! `CURRENT` and the generation's data files), its vector segment files (`vectors/`), and
//! `collection.meta` (the collection's catalog entry and the source database id). Export
//! checkpoints first, so a snapshot holds every write acknowledged before it started, then
//! holds the checkpointer lock while it reads: no checkpoint or retention can remove the
//! generation mid-export, and writers go on (they write fresh slots only; the slots the
//! generation references never change).
//!
//! Import accepts exactly those files ([`is_collection_file`]) within the database options'
//! `ImportLimits`; an archive naming anything else, or declaring more than the budget, is
//! refused from its footer before a byte is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vellum_checkpoint::CheckpointFileName;
use vellum_fs::Fs;
use vellum_mmap_vectors::is_segment_file_name;
use vellum_snapshot_format::{
    Catalog as SnapshotCatalog, Chunk, ExportOptions, ExportSummary, ParentState, RestoreReport,
    SnapshotId, SnapshotMeta, SourceFile, export_chunks, export_to_file,
};

use crate::catalog::{Catalog, Entry, validate_name};
use crate::collection::{
    CHECKPOINTS_DIR, CollectionInner, GRAPH_FILE, PAYLOADS_FILE, PENDING_FILE, QUANTIZER_FILE,
    VECTORS_DIR,
};
use crate::database::{COLLECTIONS_DIR, SNAPSHOTS_DIR, collection_dir_name, now_ms, remove_tree};
use crate::error::{Error, Result};

/// Name of the collection description inside a snapshot.
pub const COLLECTION_META_FILE: &str = "collection.meta";

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotSummary {
    /// The snapshot's id (hex).
    pub id: String,
    /// The LSN it covers.
    pub lsn: u64,
    /// Files inside.
    pub files: usize,
    /// Archive length in bytes.
    pub archive_bytes: u64,
    /// BLAKE3 of the archive (hex).
    pub blake3: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SnapshotSummary {
    fn from_export(s: &ExportSummary, files: usize) -> Self {
        SnapshotSummary {
            id: s.header.id.to_hex(),
            lsn: s.header.lsn_end,
            files,
            archive_bytes: s.archive_bytes,
            blake3: hex(&s.archive_hash),
        }
    }
}

/// A fresh snapshot id (random from the clock, the process and a counter).
fn fresh_id() -> SnapshotId {
    SnapshotId::generate()
}

/// Where a collection's snapshot catalog lives.
pub(crate) fn catalog_dir(root: &Path, coll: &CollectionInner) -> PathBuf {
    root.join(SNAPSHOTS_DIR).join(collection_dir_name(coll.id))
}

/// The files of the pinned current generation, the vector segments, and the meta file
/// (written next to the catalog directory). Call with the checkpointer locked.
fn source_files(
    coll: &CollectionInner,
    cp: &vellum_checkpoint::Checkpointer,
    meta_path: &Path,
    database_id: u64,
) -> Result<(Vec<SourceFile>, u64)> {
    // Export checkpoints first, so a generation always exists here.
    let manifest = cp.current().ok_or_else(|| Error::Inconsistent {
        reason: format!(
            "collection {:?} has no checkpoint to snapshot right after checkpointing",
            coll.name
        ),
    })?;
    // Each lower crate names its own files: the checkpointer those of the pinned
    // generation, the store its segments (read under the state lock, which writers hold
    // while they add or remove one; the checkpointer lock is taken first, as everywhere).
    let in_dir = |dir: &str, names: Vec<String>| -> Vec<SourceFile> {
        names
            .into_iter()
            .map(|name| SourceFile {
                path: coll.dir.join(dir).join(&name),
                name: format!("{dir}/{name}"),
            })
            .collect()
    };
    let mut files = in_dir(CHECKPOINTS_DIR, cp.current_generation_files());
    let segments = coll.state.read().store.segment_files();
    files.extend(in_dir(VECTORS_DIR, segments));
    let meta = Catalog {
        database_id,
        next_collection_id: coll.id + 1,
        entries: vec![Entry {
            id: coll.id,
            name: coll.name.clone(),
            config: coll.current_config(),
            created_ms: now_ms(),
        }],
    };
    vellum_fs::atomic_replace(coll.fs.as_ref(), meta_path, &meta.encode())?;
    files.push(SourceFile {
        name: COLLECTION_META_FILE.into(),
        path: meta_path.to_path_buf(),
    });
    Ok((files, manifest.wal_lsn))
}

/// Checkpoints, pins the generation, and runs `export` over its files.
pub(crate) fn with_pinned_files<T>(
    root: &Path,
    coll: &CollectionInner,
    database_id: u64,
    export: impl FnOnce(&[SourceFile], u64) -> Result<T>,
) -> Result<T> {
    coll.checkpoint()?;
    let cp = coll.checkpointer.lock();
    let dir = catalog_dir(root, coll);
    vellum_fs::create_dir_all_durable(coll.fs.as_ref(), &dir)?;
    let meta_path = dir.join(COLLECTION_META_FILE);
    let (files, lsn) = source_files(coll, &cp, &meta_path, database_id)?;
    export(&files, lsn)
}

pub(crate) fn export_file(
    root: &Path,
    coll: &CollectionInner,
    database_id: u64,
    path: &Path,
    zstd: bool,
) -> Result<SnapshotSummary> {
    with_pinned_files(root, coll, database_id, |files, lsn| {
        let mut opts = ExportOptions::full(fresh_id(), lsn);
        if zstd {
            opts.compression = vellum_snapshot_format::Compression::Zstd;
        }
        let s = export_to_file(coll.fs.as_ref(), files, &opts, path)?;
        Ok(SnapshotSummary::from_export(&s, files.len()))
    })
}

pub(crate) fn export_stream(
    root: &Path,
    coll: &CollectionInner,
    database_id: u64,
    parent: Option<ParentState>,
    chunk_bytes: usize,
    emit: &mut dyn FnMut(Chunk) -> Result<()>,
) -> Result<SnapshotSummary> {
    with_pinned_files(root, coll, database_id, |files, lsn| {
        let opts = match parent {
            Some(p) if p.lsn_end > lsn => {
                return Err(Error::InvalidArgument(format!(
                    "collection {:?} is at LSN {lsn}, before the end of the parent snapshot {} \
                     (LSN {}): the parent was taken of another collection or an earlier \
                     incarnation of this one; take a full snapshot",
                    coll.name, p.id, p.lsn_end
                )));
            }
            Some(p) => ExportOptions::incremental(fresh_id(), lsn, p),
            None => ExportOptions::full(fresh_id(), lsn),
        };
        let mut failure = None;
        let s = export_chunks(coll.fs.as_ref(), files, &opts, chunk_bytes, &mut |chunk| {
            emit(chunk).map_err(|e| {
                let reason = e.to_string();
                failure = Some(e);
                vellum_snapshot_format::Error::InvalidInput { reason }
            })
        });
        match (s, failure) {
            (_, Some(e)) => Err(e),
            (s, None) => Ok(SnapshotSummary::from_export(&s?, files.len())),
        }
    })
}

pub(crate) fn open_catalog(root: &Path, coll: &CollectionInner) -> Result<SnapshotCatalog> {
    let dir = catalog_dir(root, coll);
    vellum_fs::create_dir_all_durable(coll.fs.as_ref(), &dir)?;
    Ok(SnapshotCatalog::open(
        coll.fs.clone(),
        &dir.join("archives"),
    )?)
}

/// Creates a snapshot in the collection's catalog: full, or incremental from the newest one.
pub(crate) fn create_in_catalog(
    root: &Path,
    coll: &CollectionInner,
    database_id: u64,
    incremental: bool,
) -> Result<SnapshotMeta> {
    let mut catalog = open_catalog(root, coll)?;
    let parent = if incremental {
        let newest = catalog.list().into_iter().next().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "collection {:?} has no snapshot to be incremental from",
                coll.name
            ))
        })?;
        Some(catalog.parent_state(newest.id)?)
    } else {
        None
    };
    with_pinned_files(root, coll, database_id, |files, lsn| {
        let opts = match parent {
            Some(p) => ExportOptions::incremental(fresh_id(), lsn, p),
            None => ExportOptions::full(fresh_id(), lsn),
        };
        Ok(catalog.create(files, &opts)?)
    })
}

/// How a snapshot archive's sections are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// As they are.
    #[default]
    None,
    /// zstd.
    Zstd,
}

/// What a snapshot added to a collection's catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotKind {
    /// Every file of the collection.
    #[default]
    Full,
    /// Only the files that changed since the newest snapshot in the catalog.
    Incremental,
}

/// The files of a checkpoint generation a collection writes (see `CollectionInner`'s
/// checkpoint and `VectorStore::prepare_checkpoint`).
const GENERATION_FILES: [&str; 8] = [
    vellum_mmap_vectors::META_FILE,
    vellum_mmap_vectors::IDMAP_FILE,
    vellum_mmap_vectors::IDMAP_DELTA_FILE,
    PAYLOADS_FILE,
    crate::payloads::LOCATIONS_FILE,
    GRAPH_FILE,
    PENDING_FILE,
    QUANTIZER_FILE,
];

/// Whether `name` is one of the files a collection snapshot (snapshot format version 1)
/// consists of: what export writes and nothing else. Import refuses any other name before
/// writing a byte.
pub(crate) fn is_collection_file(name: &str) -> bool {
    if name == COLLECTION_META_FILE {
        return true;
    }
    if let Some(file) = name
        .strip_prefix(VECTORS_DIR)
        .and_then(|n| n.strip_prefix('/'))
    {
        return is_segment_file_name(file);
    }
    let Some(file) = name
        .strip_prefix(CHECKPOINTS_DIR)
        .and_then(|n| n.strip_prefix('/'))
    else {
        return false;
    };
    match CheckpointFileName::parse(file) {
        Some(CheckpointFileName::Current | CheckpointFileName::Manifest { .. }) => true,
        Some(CheckpointFileName::Data { name, .. }) => {
            GENERATION_FILES.contains(&name)
                || crate::payloads::run_seq_of(name).is_some()
                || crate::payloads::index_no_of(name).is_some()
        }
        _ => false,
    }
}

/// Reads the collection description of a restored directory.
fn read_meta(fs: &dyn Fs, dir: &Path) -> Result<(u64, Entry)> {
    let path = dir.join(COLLECTION_META_FILE);
    if !fs.exists(&path)? {
        return Err(Error::SnapshotMismatch {
            snapshot: path.display().to_string(),
            reason: "the archive holds no collection.meta: it is not a Vellum collection snapshot"
                .into(),
        });
    }
    let file = fs.open(&path)?;
    let mut bytes = vec![0; file.len()? as usize];
    file.read_at(&mut bytes, 0)?;
    let cat = Catalog::decode(&bytes, &path)?;
    match <[Entry; 1]>::try_from(cat.entries) {
        Ok([entry]) => Ok((cat.database_id, entry)),
        Err(_) => Err(Error::BadDatabaseFile {
            path,
            reason: "collection.meta must describe one collection".into(),
        }),
    }
}

/// Restores an archive chain as the new collection `name` of the database at `root`:
/// `fill(target)` restores the chain into the collection's directory (the callers pass
/// [`is_collection_file`] and the options' import limits, both checked against the archives'
/// footers before anything is written). The catalog entry is the commit point: a crash
/// before it leaves an orphan directory that the next open removes.
///
/// Lock: `catalog` is taken twice, briefly — to reserve the collection's id (the name is
/// checked, the id counter advanced in memory) and to commit the entry (the name checked
/// again: a collection created meanwhile under the same name wins, and the restored
/// directory is removed). The chain is decoded and the collection opened without it, so a
/// long restore (a stream from object storage) does not hold up creating, dropping or
/// exporting other collections.
pub(crate) fn restore_as_new(
    fs: &vellum_fs::DynFs,
    root: &Path,
    catalog: &parking_lot::Mutex<Catalog>,
    options: &crate::options::DatabaseOptions,
    name: &str,
    fill: &mut dyn FnMut(&Path) -> vellum_snapshot_format::Result<RestoreReport>,
) -> Result<(Arc<CollectionInner>, Entry)> {
    validate_name(name)?;
    let exists = |catalog: &Catalog| {
        if catalog.entries.iter().any(|e| e.name == name) {
            return Err(Error::CollectionExists {
                name: name.to_owned(),
            });
        }
        Ok(())
    };
    let id = {
        let mut catalog = catalog.lock();
        catalog.check_room()?;
        exists(&catalog)?;
        let id = catalog.next_collection_id;
        // Reserved: the next entry written (by anyone) persists the advanced counter; an
        // import that fails leaves a gap, never a reused id.
        catalog.next_collection_id += 1;
        id
    };
    let target = root.join(COLLECTIONS_DIR).join(collection_dir_name(id));
    let cleanup = |e: Error| -> Error {
        match remove_tree(fs.as_ref(), &target) {
            Ok(()) => e,
            Err(cleanup) => {
                tracing::warn!(dir = %target.display(), error = %cleanup, "a failed import left its directory");
                e
            }
        }
    };
    if fs.exists(&target)? {
        remove_tree(fs.as_ref(), &target)?;
    }
    fill(&target)?;
    let (_source_db, entry) = read_meta(fs.as_ref(), &target).map_err(cleanup)?;
    // An archive may come from anywhere: besides what every open checks, the order of the
    // payload files (which an ordinary open leaves to their checksums) is checked before the
    // collection is published.
    let opened = CollectionInner::open(fs.clone(), &target, id, name, entry.config, options)
        .and_then(|c| {
            let checked = c.state.read().payloads.check_files();
            checked.map(|()| c)
        });
    let inner = Arc::new(opened.map_err(cleanup)?);
    let entry = Entry {
        id,
        name: name.to_owned(),
        config: entry.config,
        created_ms: now_ms(),
    };
    let mut catalog = catalog.lock();
    exists(&catalog).map_err(cleanup)?;
    // The archive's description names the source; this database's replaces it before the
    // catalog names the collection (a lost catalog is rebuilt from these).
    crate::repair::write_description(fs.as_ref(), &target, catalog.database_id, &entry)
        .map_err(cleanup)?;
    let mut next = catalog.clone();
    next.next_collection_id = next.next_collection_id.max(id + 1);
    next.entries.push(entry.clone());
    vellum_fs::atomic_replace(
        fs.as_ref(),
        &root.join(crate::catalog::CATALOG_FILE),
        &next.encode(),
    )?;
    *catalog = next;
    Ok((inner, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_export_writes_are_collection_files() {
        for good in [
            "collection.meta",
            "checkpoints/CURRENT",
            "checkpoints/manifest-00000000000000a1",
            "checkpoints/data-00000000000000a1-vectors.meta",
            "checkpoints/data-0000000000000001-vectors.idmap",
            "checkpoints/data-0000000000000001-payloads",
            "checkpoints/data-0000000000000001-payload-locations",
            "checkpoints/data-0000000000000002-payload-run-00000000000000a1",
            "checkpoints/data-0000000000000002-payload-index-000000a1",
            "checkpoints/data-0000000000000002-payload-index-000000a1.delta",
            "checkpoints/data-ffffffffffffffff-graph",
            "vectors/segment-00000000.vec",
            "vectors/segment-12345678.vec",
        ] {
            assert!(is_collection_file(good), "{good}");
        }
        for bad in [
            "bomb",
            "collection.meta/x",
            "CURRENT",
            "checkpoints/CURRENT.tmp",
            "checkpoints/manifest-00000000000000A1",
            "checkpoints/manifest-1",
            "checkpoints/manifest-+000000000000001",
            "checkpoints/data-0000000000000001-notes",
            "checkpoints/data-0000000000000001-payload-run-A1",
            "checkpoints/data-0000000000000001-payload-run-00000000000000A1",
            "checkpoints/data-0000000000000001-",
            "checkpoints/data-0000000000000001",
            "checkpoints/data-+000000000000001-graph",
            "checkpoints/sub/CURRENT",
            "vectors/segment-0000000.vec",
            "vectors/segment-00000000.vec\n",
            "vectors/x/segment-00000000.vec",
            "wal/wal-00000000000000000001.seg",
            "junk/0000",
        ] {
            assert!(!is_collection_file(bad), "{bad:?}");
        }
    }
}
