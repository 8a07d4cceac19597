//! A staged restore: each archive of the chain fetched through a `ChunkReceiver` into
//! `<db>/backup-restores/<id>/` (each chunk placed by offset and logged durably, so a
//! restore interrupted at any moment — the process killed included — resumes with ranged
//! reads of what is missing), verified whole against the catalog's length and BLAKE3, then
//! the chain imported as a new collection. It costs one copy of the chain on local disk; the
//! default, streamed restore (`streamed.rs`) keeps none.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use futures_util::StreamExt as _;
use object_store::{GetOptions, GetRange};
use vellum::Database;
use vellum_fs::DynFs;
use vellum_snapshot_format::{Chunk, ChunkReceiver, FinalTotals, ImportOptions};

use crate::error::{Error, Result, store};
use crate::restore::RestoreReport;
use crate::summary::{ArchiveObject, catalog_hash};
use crate::target::BackupTarget;

/// Bytes per chunk a restore places.
pub const RESTORE_CHUNK_BYTES: u64 = 4 << 20;
/// Where restores stage under the database directory (one subdirectory per backup id).
pub const RESTORE_DIR: &str = "backup-restores";

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
    archive: &'a ArchiveObject,
    totals: FinalTotals,
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

impl Run<'_> {
    fn chunk_at(&self, seq: u64, payload: &[u8]) -> Chunk {
        Chunk {
            snapshot: self.archive.header.id,
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
        let path = &self.archive.path;
        let start = first * RESTORE_CHUNK_BYTES;
        let end = ((last + 1) * RESTORE_CHUNK_BYTES).min(total);
        let got = self
            .target
            .store
            .get_opts(
                path,
                GetOptions {
                    range: (end > start).then_some(GetRange::Bounded(start..end)),
                    if_match: self.archive.e_tag.clone(),
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Refused(format!("restore task failed: {e}")))?
}

/// Fetches one archive into `<staging>/<id>.vsnap` (resuming what an earlier call left in
/// `<staging>/rx`); an archive file already there from an earlier call is kept if its
/// trailer records the catalog's BLAKE3 (the import verifies every byte of it again).
async fn fetch_archive(
    fs: &DynFs,
    staging: &Path,
    target: &BackupTarget,
    archive: &ArchiveObject,
    progress: &(dyn Fn(u64) + Send + Sync),
    downloaded: &mut u64,
) -> Result<(PathBuf, u64)> {
    let entry = &archive.entry;
    let dest = staging.join(format!("{}.vsnap", entry.id));
    let hash = catalog_hash(entry)?;
    let kept = {
        let (fs, dest) = (fs.clone(), dest.clone());
        blocking(move || {
            if !fs.exists(&dest)? {
                return Ok(false);
            }
            let file = fs.open(&dest)?;
            Ok(vellum_snapshot_format::read_summary(file.as_ref())
                .is_ok_and(|(_, trailer, _)| trailer.hash == hash))
        })
        .await?
    };
    if kept {
        return Ok((dest, 0));
    }
    vellum_fs::create_dir_all_durable(fs.as_ref(), staging)?;
    let mut rx = {
        let (fs, dir) = (fs.clone(), staging.join("rx"));
        blocking(move || Ok(ChunkReceiver::open(fs, &dir, ImportOptions::default())?)).await?
    };
    let chunks_resumed = rx.received_chunks() as u64;
    let totals = FinalTotals {
        total_bytes: entry.archive_bytes,
        total_chunks: entry.archive_bytes.div_ceil(RESTORE_CHUNK_BYTES).max(1),
        archive_hash: hash,
    };
    let run = Run {
        target,
        archive,
        totals,
        progress,
    };
    // The final chunk first (it tells the receiver the totals, which an earlier attempt may
    // have left unknown), then whatever is still missing, in contiguous ranged reads.
    let last_seq = totals.total_chunks - 1;
    if rx.final_totals().is_none() {
        rx = run.fetch(rx, last_seq, last_seq, downloaded).await?;
    }
    let missing = rx.missing_seqs(usize::MAX);
    let mut i = 0;
    while i < missing.len() {
        let mut j = i;
        while j + 1 < missing.len() && missing[j + 1] == missing[j] + 1 {
            j += 1;
        }
        rx = run.fetch(rx, missing[i], missing[j], downloaded).await?;
        i = j + 1;
    }
    // Verified whole (length, every byte against the BLAKE3 the catalog holds) before the
    // archive is published under its name.
    {
        let dest = dest.clone();
        blocking(move || Ok(rx.finish(&dest).map(|_| ())?)).await?;
    }
    Ok((dest, chunks_resumed))
}

/// Restores the chain `archives` (full first) as `new_name` through local staging copies.
pub(crate) async fn restore_chain(
    db: &Database,
    target: &BackupTarget,
    archives: &[ArchiveObject],
    new_name: &str,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreReport> {
    let fs = vellum_fs::RealFs::shared();
    let mut downloaded = 0u64;
    let mut chunks_resumed = 0u64;
    let mut paths = Vec::with_capacity(archives.len());
    for archive in archives {
        let staging = db.path().join(RESTORE_DIR).join(&archive.entry.id);
        let (path, resumed) =
            fetch_archive(&fs, &staging, target, archive, progress, &mut downloaded).await?;
        chunks_resumed += resumed;
        paths.push(path);
    }
    {
        let (db, paths, name) = (db.clone(), paths.clone(), new_name.to_owned());
        blocking(move || Ok(db.import_snapshot(&paths, &name).map(|_| ())?)).await?;
    }
    // The staging directories are under the database: removed through vellum_fs like the
    // rest of the database's files.
    for archive in archives {
        let staging = db.path().join(RESTORE_DIR).join(&archive.entry.id);
        if let Err(e) = vellum_snapshot_format::remove_tree(fs.as_ref(), &staging) {
            tracing::warn!(dir = %staging.display(), error = %e, "restore staging not removed");
        }
    }
    let last = archives.last().expect("a chain has a backup");
    Ok(RestoreReport {
        id: last.entry.id.clone(),
        collection: new_name.to_owned(),
        archives: archives.len(),
        bytes_downloaded: downloaded,
        chunks_resumed,
        reads_resumed: 0,
    })
}
