//! Each collection's own description (`collection.meta` in its directory), and rebuilding a
//! lost catalog from them.
//!
//! The catalog (`VELLUM`) is the commit point of create, drop and import, and the only list
//! of collections. So that losing it loses no data, every collection directory also holds a
//! one-entry catalog describing it, written durably before the catalog names the
//! collection. [`repair_catalog`] rebuilds the catalog from these descriptions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vellum_fs::{DynFs, Fs, atomic_replace};

use crate::catalog::{CATALOG_FILE, Catalog, Entry};
use crate::database::{COLLECTIONS_DIR, DROPPED_MARKER, parse_collection_dir_name};
use crate::error::{Error, Result};
use crate::snapshot::COLLECTION_META_FILE;

/// Writes (durably, replacing any older one) the description of collection `entry` into
/// its directory `dir`.
pub(crate) fn write_description(
    fs: &dyn Fs,
    dir: &Path,
    database_id: u64,
    entry: &Entry,
) -> Result<()> {
    let description = Catalog {
        database_id,
        next_collection_id: entry.id + 1,
        entries: vec![entry.clone()],
    };
    atomic_replace(fs, &dir.join(COLLECTION_META_FILE), &description.encode())?;
    Ok(())
}

/// What [`crate::Database::repair_catalog`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatalogRepair {
    /// The catalog written.
    pub catalog: PathBuf,
    /// The collections it names, as (name, directory).
    pub recovered: Vec<(String, PathBuf)>,
    /// Directories left out, and why (they stay on disk, untouched).
    pub skipped: Vec<(PathBuf, String)>,
}

/// Rebuilds `<root>/VELLUM` from the descriptions in the collection directories (see the
/// module docs). Refused when the catalog exists. A directory without a readable
/// description (made by a version before descriptions, or damaged), or one marked dropped,
/// is left out and listed; it stays on disk. Two directories describing the same name are
/// refused: the operator must move one away.
pub(crate) fn repair_catalog(fs: &DynFs, root: &Path) -> Result<CatalogRepair> {
    let catalog_path = root.join(CATALOG_FILE);
    if fs.exists(&catalog_path)? {
        return Err(Error::InvalidArgument(format!(
            "{} exists: there is no catalog to repair",
            catalog_path.display()
        )));
    }
    let coll_root = root.join(COLLECTIONS_DIR);
    let mut entries: Vec<Entry> = Vec::new();
    let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut database_ids: BTreeMap<u64, usize> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut highest_id = 0;
    let names = if fs.is_dir(&coll_root)? {
        fs.list_dir(&coll_root)?
    } else {
        Vec::new()
    };
    for name in names {
        let dir = coll_root.join(&name);
        let Some(id) = parse_collection_dir_name(&name) else {
            skipped.push((dir, "not a collection directory name".to_owned()));
            continue;
        };
        highest_id = highest_id.max(id);
        if fs.exists(&dir.join(DROPPED_MARKER))? {
            skipped.push((dir, "the collection was being dropped".to_owned()));
            continue;
        }
        let meta = dir.join(COLLECTION_META_FILE);
        let description = match read_description(fs.as_ref(), &meta) {
            Ok(d) => d,
            Err(e) => {
                skipped.push((dir, format!("no usable description: {e}")));
                continue;
            }
        };
        let [entry] =
            <[Entry; 1]>::try_from(description.entries).map_err(|_| Error::BadDatabaseFile {
                path: meta.clone(),
                reason: "a collection description names one collection".into(),
            })?;
        if let Some(other) = dirs.get(&entry.name) {
            return Err(Error::InvalidArgument(format!(
                "{} and {} both describe a collection named {:?}: move one of them out of {} \
                 and repair again",
                other.display(),
                dir.display(),
                entry.name,
                coll_root.display()
            )));
        }
        *database_ids.entry(description.database_id).or_default() += 1;
        dirs.insert(entry.name.clone(), dir);
        // The directory's name is the id this database knows it by (a restored
        // collection's description may still carry its source's id).
        entries.push(Entry { id, ..entry });
    }
    // The id most descriptions carry is this database's (a restored collection's carries
    // the one it was exported from); with none, a new one.
    let database_id = database_ids
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or_else(crate::database::fresh_database_id, |(id, _)| *id);
    entries.sort_by_key(|e| e.id);
    let catalog = Catalog {
        database_id,
        next_collection_id: highest_id + 1,
        entries,
    };
    atomic_replace(fs.as_ref(), &catalog_path, &catalog.encode())?;
    Ok(CatalogRepair {
        catalog: catalog_path,
        recovered: catalog
            .entries
            .iter()
            .map(|e| (e.name.clone(), dirs[&e.name].clone()))
            .collect(),
        skipped,
    })
}

fn read_description(fs: &dyn Fs, path: &Path) -> Result<Catalog> {
    let file = fs.open(path)?;
    let mut bytes = vec![0; usize::try_from(file.len()?).unwrap_or(usize::MAX)];
    file.read_at(&mut bytes, 0)?;
    Catalog::decode(&bytes, path)
}
