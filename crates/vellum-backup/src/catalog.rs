//! The catalog object (`<prefix>/catalog.json`): every backup in the target with its
//! archive object, size, hash and parent. Written last, after the archive is complete, with
//! a conditional put (If-Match on the version read, or create-if-absent): two writers
//! cannot lose each other's entries; a writer that lost the race reads again and retries.
//! A store without conditional updates (the local file system backend) is written
//! unconditionally (documented: one writer at a time there).

use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, store};
use crate::target::BackupTarget;

/// The catalog object's name under the prefix.
pub const CATALOG_OBJECT: &str = "catalog.json";
/// Attempts at a conditional catalog update before giving up.
const CATALOG_ATTEMPTS: usize = 32;

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEntry {
    /// The archive's snapshot id (hex).
    pub id: String,
    /// The collection it was taken of.
    pub collection: String,
    /// `full` (incremental backups name a parent).
    pub kind: String,
    /// The parent backup's id (incremental only).
    pub parent: Option<String>,
    /// The last LSN it holds: every write acknowledged before the backup began.
    pub lsn: u64,
    /// The archive's length.
    pub archive_bytes: u64,
    /// The archive's BLAKE3 (hex), checked on restore.
    pub blake3: String,
    /// The archive object, relative to the prefix.
    pub object: String,
    /// When it was taken (ms since the epoch).
    pub created_unix_ms: u64,
}

/// The catalog's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Its format version (1).
    pub version: u32,
    /// The backups, oldest first.
    pub backups: Vec<BackupEntry>,
}

/// Decodes the catalog object `object`'s bytes: JSON in the documented shape, version 1.
pub(crate) fn parse(bytes: &[u8], object: &str) -> Result<Catalog> {
    let bad = |reason: String| Error::Catalog {
        object: object.to_owned(),
        reason,
    };
    let catalog: Catalog =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("does not parse: {e}")))?;
    if catalog.version != 1 {
        return Err(bad(format!(
            "format version {} (this build reads version 1)",
            catalog.version
        )));
    }
    Ok(catalog)
}

/// The catalog as read, with the version to update it against (`None`: absent).
pub(crate) async fn load(target: &BackupTarget) -> Result<(Catalog, Option<UpdateVersion>)> {
    let path = target.path(CATALOG_OBJECT);
    match target.store.get(&path).await {
        Ok(got) => {
            let version = UpdateVersion {
                e_tag: got.meta.e_tag.clone(),
                version: got.meta.version.clone(),
            };
            let bytes = got
                .bytes()
                .await
                .map_err(store(format!("reading {path}")))?;
            let catalog = parse(&bytes, path.as_ref())?;
            Ok((catalog, Some(version)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok((
            Catalog {
                version: 1,
                backups: Vec::new(),
            },
            None,
        )),
        Err(e) => Err(store(format!("reading {path}"))(e)),
    }
}

/// Reads the catalog, applies `change`, and writes it back conditionally, again from a
/// fresh read when another writer got in first.
pub(crate) async fn update(
    target: &BackupTarget,
    mut change: impl FnMut(&mut Catalog) -> Result<()>,
) -> Result<Catalog> {
    let path = target.path(CATALOG_OBJECT);
    for _ in 0..CATALOG_ATTEMPTS {
        let (mut catalog, version) = load(target).await?;
        change(&mut catalog)?;
        let bytes = serde_json::to_vec_pretty(&catalog).map_err(|e| Error::Catalog {
            object: path.to_string(),
            reason: e.to_string(),
        })?;
        let mode = match version {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let put = |mode| {
            target.store.put_opts(
                &path,
                PutPayload::from(bytes.clone()),
                PutOptions {
                    mode,
                    ..PutOptions::default()
                },
            )
        };
        match put(mode).await {
            Ok(_) => return Ok(catalog),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => {
                tracing::debug!(catalog = %path, "catalog changed under us: reading it again");
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                // No conditional writes in this store: one writer at a time.
                put(PutMode::Overwrite)
                    .await
                    .map_err(store(format!("writing {path}")))?;
                return Ok(catalog);
            }
            Err(e) => return Err(store(format!("writing {path}"))(e)),
        }
    }
    Err(Error::Catalog {
        object: path.to_string(),
        reason: format!("{CATALOG_ATTEMPTS} conditional updates lost to other writers"),
    })
}
