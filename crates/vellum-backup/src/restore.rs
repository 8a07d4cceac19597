//! Restoring a backup: the archive object streamed back through a `ChunkReceiver` (each
//! chunk placed by offset and logged durably, so an interrupted restore resumes with ranged
//! reads of what is missing), verified whole against the catalog's length and BLAKE3, then
//! imported as a new collection. Nothing is swapped in before the verification.

use std::path::PathBuf;

use bytes::BytesMut;
use futures_util::StreamExt as _;
use object_store::{GetOptions, GetRange};
use vellum::Database;
use vellum_snapshot_format::{Chunk, ChunkReceiver, FinalTotals, ImportOptions, SnapshotId};

use crate::catalog::{self, BackupEntry};
use crate::error::{Error, Result, store};
use crate::target::BackupTarget;

/// Bytes per chunk a restore places.
pub const RESTORE_CHUNK_BYTES: u64 = 4 << 20;
/// Where restores stage under the database directory (one subdirectory per backup id).
pub const RESTORE_DIR: &str = "backup-restores";

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The backup restored.
    pub id: String,
    /// The new collection.
    pub collection: String,
    /// Bytes read from the store by this call.
    pub bytes_downloaded: u64,
    /// Chunks an earlier, interrupted call had already received.
    pub chunks_resumed: u64,
}

fn parse_hash(entry: &BackupEntry) -> Result<[u8; 32]> {
    let bad = || Error::Catalog {
        object: entry.object.clone(),
        reason: format!("blake3 {:?} is not 64 hex digits", entry.blake3),
    };
    if entry.blake3.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&entry.blake3[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Hands `chunk` to the receiver on the blocking pool (it writes and syncs).
async fn receive(rx: ChunkReceiver, chunk: Chunk) -> Result<ChunkReceiver> {
    tokio::task::spawn_blocking(move || {
        let mut rx = rx;
        rx.receive(&chunk)?;
        Ok(rx)
    })
    .await
    .map_err(|e| Error::Refused(format!("restore task failed: {e}")))?
}

/// Makes the chunks received so far durable, so a later restore does not fetch them again.
async fn keep(rx: ChunkReceiver) {
    let synced = tokio::task::spawn_blocking(move || {
        let mut rx = rx;
        rx.sync()
    })
    .await;
    if let Ok(Err(e)) = synced {
        tracing::warn!(error = %e, "the chunks received before the interruption were not kept");
    }
}

/// One archive being fetched into a receiver.
struct Run<'a> {
    target: &'a BackupTarget,
    path: &'a object_store::path::Path,
    snapshot: SnapshotId,
    totals: FinalTotals,
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

impl Run<'_> {
    fn chunk_at(&self, seq: u64, payload: &[u8]) -> Chunk {
        Chunk {
            snapshot: self.snapshot,
            seq,
            offset: seq * RESTORE_CHUNK_BYTES,
            final_totals: (seq + 1 == self.totals.total_chunks).then_some(self.totals),
            payload: payload.to_vec(),
        }
    }

    /// Reads chunks `first..=last` with one ranged read, handing each to the receiver as it
    /// completes. On a failed read the chunks received so far are kept (synced).
    async fn fetch(
        &self,
        mut rx: ChunkReceiver,
        first: u64,
        last: u64,
        downloaded: &mut u64,
    ) -> Result<ChunkReceiver> {
        let total = self.totals.total_bytes;
        let path = self.path;
        let start = first * RESTORE_CHUNK_BYTES;
        let end = ((last + 1) * RESTORE_CHUNK_BYTES).min(total);
        let got = self
            .target
            .store
            .get_opts(
                path,
                GetOptions {
                    range: (end > start).then_some(GetRange::Bounded(start..end)),
                    ..GetOptions::default()
                },
            )
            .await
            .map_err(store(format!("reading {path}")))?;
        let mut stream = got.into_stream();
        let mut buf = BytesMut::new();
        let mut seq = first;
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) => {
                    // What arrived so far is kept for the next attempt.
                    keep(rx).await;
                    return Err(store(format!("reading {path}"))(e));
                }
            };
            *downloaded += piece.len() as u64;
            (self.progress)(*downloaded);
            buf.extend_from_slice(&piece);
            while buf.len() as u64 >= RESTORE_CHUNK_BYTES && seq <= last {
                let payload = buf.split_to(RESTORE_CHUNK_BYTES as usize);
                rx = receive(rx, self.chunk_at(seq, &payload)).await?;
                seq += 1;
            }
        }
        if seq <= last {
            let expected = (end - start) - (seq - first) * RESTORE_CHUNK_BYTES;
            if buf.len() as u64 != expected || seq != last || buf.is_empty() && total > 0 {
                keep(rx).await;
                return Err(Error::Refused(format!(
                    "{path}: the store returned {} bytes for {start}..{end}; the catalog says the \
                     archive has {total} (a damaged or replaced object)",
                    (seq - first) * RESTORE_CHUNK_BYTES + buf.len() as u64,
                )));
            }
            rx = receive(rx, self.chunk_at(seq, &buf)).await?;
        }
        Ok(rx)
    }
}

/// Restores backup `id` from `target` into `db` as the new collection `new_name`.
pub async fn restore(
    db: &Database,
    target: &BackupTarget,
    id: &str,
    new_name: &str,
) -> Result<RestoreReport> {
    restore_with_progress(db, target, id, new_name, &|_| {}).await
}

/// [`restore`], calling `progress` with the bytes read so far by this call (a progress
/// bar) after each piece the store returns.
pub async fn restore_with_progress(
    db: &Database,
    target: &BackupTarget,
    id: &str,
    new_name: &str,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreReport> {
    vellum::validate_name(new_name)?;
    let (catalog, _) = catalog::load(target).await?;
    let entry = catalog
        .backups
        .iter()
        .find(|b| b.id == id)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            id: id.to_owned(),
            target: target.to_string(),
        })?;
    if entry.parent.is_some() {
        return Err(Error::Refused(format!(
            "backup {id} is incremental: restoring a chain is not supported yet"
        )));
    }
    let snapshot = SnapshotId::from_hex(&entry.id).ok_or_else(|| Error::Catalog {
        object: entry.object.clone(),
        reason: format!("id {:?} is not a snapshot id", entry.id),
    })?;
    let totals = FinalTotals {
        total_bytes: entry.archive_bytes,
        total_chunks: entry.archive_bytes.div_ceil(RESTORE_CHUNK_BYTES).max(1),
        archive_hash: parse_hash(&entry)?,
    };
    let staging: PathBuf = db.path().join(RESTORE_DIR).join(&entry.id);
    let fs = vellum_fs::RealFs::shared();
    vellum_fs::create_dir_all_durable(fs.as_ref(), &staging)?;
    let mut rx = {
        let (fs, dir) = (fs.clone(), staging.join("rx"));
        tokio::task::spawn_blocking(move || ChunkReceiver::open(fs, &dir, ImportOptions::default()))
            .await
            .map_err(|e| Error::Refused(format!("restore task failed: {e}")))??
    };
    let chunks_resumed = rx.received_chunks() as u64;
    let path = target.path(&entry.object);
    let mut downloaded = 0u64;
    let run = Run {
        target,
        path: &path,
        snapshot,
        totals,
        progress,
    };
    // The final chunk first (it tells the receiver the totals, which an earlier attempt may
    // have left unknown), then whatever is still missing, in contiguous ranged reads.
    let last_seq = totals.total_chunks - 1;
    if rx.final_totals().is_none() {
        rx = run.fetch(rx, last_seq, last_seq, &mut downloaded).await?;
    }
    let missing = rx.missing_seqs(usize::MAX);
    let mut i = 0;
    while i < missing.len() {
        let mut j = i;
        while j + 1 < missing.len() && missing[j + 1] == missing[j] + 1 {
            j += 1;
        }
        rx = run
            .fetch(rx, missing[i], missing[j], &mut downloaded)
            .await?;
        i = j + 1;
    }
    // Verified whole (length, every byte against the BLAKE3 the catalog holds) before the
    // collection is created.
    let archive = staging.join(format!("{}.vsnap", entry.id));
    {
        let archive = archive.clone();
        tokio::task::spawn_blocking(move || rx.finish(&archive))
            .await
            .map_err(|e| Error::Refused(format!("restore task failed: {e}")))??;
    }
    {
        let (db, archive, name) = (db.clone(), archive.clone(), new_name.to_owned());
        tokio::task::spawn_blocking(move || {
            db.import_snapshot(std::slice::from_ref(&archive), &name)
        })
        .await
        .map_err(|e| Error::Refused(format!("restore task failed: {e}")))??;
    }
    // The staging directory is under the database: removed through vellum_fs like the
    // rest of the database's files.
    if let Err(e) = vellum_snapshot_format::remove_tree(fs.as_ref(), &staging) {
        tracing::warn!(dir = %staging.display(), error = %e, "restore staging not removed");
    }
    tracing::info!(
        id,
        collection = new_name,
        downloaded,
        chunks_resumed,
        "backup restored"
    );
    Ok(RestoreReport {
        id: entry.id,
        collection: new_name.to_owned(),
        bytes_downloaded: downloaded,
        chunks_resumed,
    })
}
