//! Taking a backup: the collection's archive streamed from the export straight into a
//! multipart upload, never staged on local disk; the catalog entry written last.
//!
//! Memory is bounded: the export hands chunks through a channel of [`CHANNEL_CHUNKS`]; the
//! upload buffers one part and keeps at most `parts_in_flight` parts uploading.

use object_store::{ObjectStoreExt as _, WriteMultipart};
use vellum::Database;

use crate::catalog::{self, BackupEntry};
use crate::error::{Error, Result, store};
use crate::summary::open_archive;
use crate::target::BackupTarget;

/// Chunks waiting between the export thread and the upload.
pub const CHANNEL_CHUNKS: usize = 4;

/// How a backup is sent.
#[derive(Debug, Clone, Copy)]
pub struct BackupOptions {
    /// Bytes per archive chunk from the export.
    pub chunk_bytes: usize,
    /// Bytes per uploaded part (S3 wants at least 5 MiB but the last).
    pub part_bytes: usize,
    /// Parts uploading at once.
    pub parts_in_flight: usize,
    /// Incremental from the newest backup of the same collection in the target (only the
    /// files that changed since it are sent); a full backup when there is none.
    pub incremental: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            chunk_bytes: 4 << 20,
            part_bytes: 8 << 20,
            parts_in_flight: 2,
            incremental: false,
        }
    }
}

impl BackupOptions {
    /// The most archive bytes held in memory at once.
    pub fn memory_bound_bytes(&self) -> usize {
        (CHANNEL_CHUNKS + 1) * self.chunk_bytes + (self.parts_in_flight + 1) * self.part_bytes
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Backs up `collection` of `db` to `target`, full or incremental (`opts.incremental`):
/// every write acknowledged before the call is in it (the export checkpoints first).
/// Returns its catalog entry.
pub async fn backup(
    db: &Database,
    collection: &str,
    target: &BackupTarget,
    opts: &BackupOptions,
) -> Result<BackupEntry> {
    backup_with_progress(db, collection, target, opts, &|_| {}).await
}

/// [`backup`], calling `progress` with the archive bytes handed to the upload so far (a
/// progress bar) after each chunk.
pub async fn backup_with_progress(
    db: &Database,
    collection: &str,
    target: &BackupTarget,
    opts: &BackupOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<BackupEntry> {
    // The parent: the newest backup of this collection, its state table read from its
    // archive's footer (by ranges: the archive itself is not read).
    let parent = if opts.incremental {
        let (catalog, _) = catalog::load(target).await?;
        match catalog
            .backups
            .iter()
            .rev()
            .find(|b| b.collection == collection)
        {
            Some(newest) => Some(open_archive(target, newest).await?),
            None => None,
        }
    } else {
        None
    };
    let parent_id = parent.as_ref().map(|p| p.entry.id.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<vellum::Chunk>(CHANNEL_CHUNKS);
    let export = {
        let (db, name, chunk_bytes) = (db.clone(), collection.to_owned(), opts.chunk_bytes);
        let parent = parent.map(|p| p.as_parent());
        tokio::task::spawn_blocking(move || {
            db.export_snapshot_chunks_from(&name, parent, chunk_bytes, &mut |chunk| {
                tx.blocking_send(chunk).map_err(|_| {
                    vellum::Error::InvalidArgument("the backup's upload stopped".into())
                })
            })
        })
    };
    let mut upload: Option<(String, WriteMultipart)> = None;
    let mut sent = 0u64;
    let mut failure: Option<Error> = None;
    while let Some(chunk) = rx.recv().await {
        if upload.is_none() {
            let object = format!("{collection}/{}.vsnap", chunk.snapshot.to_hex());
            let path = target.path(&object);
            match target.store.put_multipart(&path).await {
                Ok(u) => {
                    upload = Some((
                        object,
                        WriteMultipart::new_with_chunk_size(u, opts.part_bytes),
                    ))
                }
                Err(e) => {
                    failure = Some(store(format!("starting the upload of {path}"))(e));
                    break;
                }
            }
        }
        let (object, writer) = upload.as_mut().expect("started above");
        if let Err(e) = writer.wait_for_capacity(opts.parts_in_flight).await {
            failure = Some(store(format!("uploading {object}"))(e));
            break;
        }
        writer.write(&chunk.payload);
        sent += chunk.payload.len() as u64;
        progress(sent);
    }
    drop(rx); // an export still running sees the channel closed and stops
    let exported = export
        .await
        .map_err(|e| Error::Refused(format!("the export task failed: {e}")))?;
    let failure = failure.or_else(|| {
        exported
            .as_ref()
            .err()
            .map(|e| Error::Refused(e.to_string()))
    });
    let Some((object, writer)) = upload else {
        return Err(failure.unwrap_or_else(|| Error::Refused("the export sent nothing".into())));
    };
    if let Some(e) = failure {
        let _ = writer.abort().await;
        return Err(e);
    }
    let summary = exported?;
    if sent != summary.archive_bytes {
        let _ = writer.abort().await;
        return Err(Error::Refused(format!(
            "{object}: {sent} bytes uploaded, the archive has {}",
            summary.archive_bytes
        )));
    }
    writer
        .finish()
        .await
        .map_err(store(format!("completing the upload of {object}")))?;
    let entry = BackupEntry {
        id: summary.id.clone(),
        collection: collection.to_owned(),
        kind: if parent_id.is_some() {
            "incremental"
        } else {
            "full"
        }
        .into(),
        parent: parent_id,
        lsn: summary.lsn,
        archive_bytes: summary.archive_bytes,
        blake3: summary.blake3.clone(),
        object,
        created_unix_ms: now_ms(),
    };
    let added = entry.clone();
    let listed = catalog::update(target, move |c| {
        if let Some(parent) = &added.parent
            && !c.backups.iter().any(|b| &b.id == parent)
        {
            return Err(Error::Refused(format!(
                "backup {}: its parent {parent} was deleted while it was taken; take it again",
                added.id
            )));
        }
        c.backups.retain(|b| b.id != added.id);
        c.backups.push(added.clone());
        Ok(())
    })
    .await;
    if let Err(e) = listed {
        // Never listed: the archive object goes (a failure here leaves an unlisted object).
        let _ = target.store.delete(&target.path(&entry.object)).await;
        return Err(e);
    }
    tracing::info!(
        collection,
        id = %entry.id,
        kind = %entry.kind,
        bytes = entry.archive_bytes,
        target = %target,
        "backup taken"
    );
    Ok(entry)
}

/// The backups in `target`, oldest first.
pub async fn list(target: &BackupTarget) -> Result<Vec<BackupEntry>> {
    Ok(catalog::load(target).await?.0.backups)
}

/// Deletes backup `id`: refused while another backup names it as parent. The catalog
/// forgets it first, then the archive object goes (an interrupted delete leaves an
/// unlisted object, never a listed backup without its archive).
pub async fn delete(target: &BackupTarget, id: &str) -> Result<()> {
    let mut object = None;
    let target_name = target.to_string();
    catalog::update(target, |c| {
        let Some(i) = c.backups.iter().position(|b| b.id == id) else {
            return Err(Error::NotFound {
                id: id.to_owned(),
                target: target_name.clone(),
            });
        };
        if let Some(child) = c.backups.iter().find(|b| b.parent.as_deref() == Some(id)) {
            return Err(Error::Refused(format!(
                "backup {id} is the parent of {}: delete that first",
                child.id
            )));
        }
        object = Some(c.backups.remove(i).object);
        Ok(())
    })
    .await?;
    if let Some(object) = object {
        let path = target.path(&object);
        target
            .store
            .delete(&path)
            .await
            .map_err(store(format!("deleting {path}")))?;
    }
    Ok(())
}

/// Keeps the newest `keep` backups of `collection` in `target` and every parent they need;
/// deletes the others (the catalog forgets them in one conditional update, then their
/// objects go). Returns the ids deleted, oldest first. Backups of other collections are
/// untouched.
pub async fn retain(target: &BackupTarget, collection: &str, keep: usize) -> Result<Vec<String>> {
    let mut removed: Vec<BackupEntry> = Vec::new();
    catalog::update(target, |c| {
        removed.clear();
        let mine: Vec<&BackupEntry> = c
            .backups
            .iter()
            .filter(|b| b.collection == collection)
            .collect();
        let mut needed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for newest in mine.iter().rev().take(keep) {
            let mut next = Some(newest.id.clone());
            while let Some(id) = next {
                if !needed.insert(id.clone()) {
                    break;
                }
                next = c
                    .backups
                    .iter()
                    .find(|b| b.id == id)
                    .and_then(|b| b.parent.clone());
            }
        }
        // A backup of another collection naming one of these as parent keeps it too.
        for b in c.backups.iter().filter(|b| b.collection != collection) {
            if let Some(p) = &b.parent {
                needed.insert(p.clone());
            }
        }
        let (kept, gone): (Vec<BackupEntry>, Vec<BackupEntry>) = c
            .backups
            .drain(..)
            .partition(|b| b.collection != collection || needed.contains(&b.id));
        c.backups = kept;
        removed = gone;
        Ok(())
    })
    .await?;
    for entry in &removed {
        let path = target.path(&entry.object);
        target
            .store
            .delete(&path)
            .await
            .map_err(store(format!("deleting {path}")))?;
    }
    Ok(removed.into_iter().map(|b| b.id).collect())
}
