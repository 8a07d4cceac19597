//! Restoring a backup as a new collection. The chain (the full backup, then each
//! incremental up to the one asked for) is checked against the catalog first: each object's
//! length, and the id, parent and whole-archive BLAKE3 its own header and trailer record,
//! read by ranges. Then, by default, each archive is streamed straight from the store into
//! the staged collection, decoded and verified completely as it arrives (block CRCs, every
//! file's and the archive's BLAKE3), with no copy of it on local disk; a broken read resumes
//! at the first byte not yet received, of the same object version. Nothing becomes visible
//! unless every archive passed. A staged restore ([`RestoreOptions::staged`]) keeps a
//! durable local copy instead, so that even a killed process resumes where it stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vellum::Database;
use vellum_snapshot_format::{ArchiveHeader, Footer};

use crate::catalog;
use crate::error::{Error, Result};
use crate::stream::{ObjectStream, Progress};
use crate::summary::{chain, open_archive};
use crate::target::BackupTarget;

/// How a restore reads.
#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    /// Fetch each archive into a durable local copy first (resumable across processes, at
    /// the cost of the chain's size on local disk) instead of streaming it.
    pub staged: bool,
    /// How long a streamed read may go without receiving a byte, retrying, before the
    /// restore fails (a server restarting, a network partition).
    pub resume_window: Duration,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            staged: false,
            resume_window: Duration::from_secs(60),
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The backup restored.
    pub id: String,
    /// The new collection.
    pub collection: String,
    /// Archives applied (the full backup and the incrementals after it).
    pub archives: usize,
    /// Bytes read from the store by this call.
    pub bytes_downloaded: u64,
    /// Staged: chunks an earlier, interrupted call had already received.
    pub chunks_resumed: u64,
    /// Streamed: reads resumed after a broken connection or a failed request.
    pub reads_resumed: u64,
}

/// Restores backup `id` from `target` into `db` as the new collection `new_name`,
/// streamed (see the module docs).
pub async fn restore(
    db: &Database,
    target: &BackupTarget,
    id: &str,
    new_name: &str,
) -> Result<RestoreReport> {
    restore_with_progress(
        db,
        target,
        id,
        new_name,
        &RestoreOptions::default(),
        &|_| {},
    )
    .await
}

/// [`restore`] with options, calling `progress` with the bytes read from the store so far
/// by this call (a progress bar) as they arrive.
pub async fn restore_with_progress(
    db: &Database,
    target: &BackupTarget,
    id: &str,
    new_name: &str,
    opts: &RestoreOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreReport> {
    vellum::validate_name(new_name)?;
    if db.collection(new_name).is_ok() {
        return Err(Error::Db(vellum::Error::CollectionExists {
            name: new_name.to_owned(),
        }));
    }
    let (catalog, _) = catalog::load(target).await?;
    let entries = chain(&catalog, id, target)?;
    let mut archives = Vec::with_capacity(entries.len());
    for entry in &entries {
        archives.push(open_archive(target, entry).await?);
    }
    let headers: Vec<ArchiveHeader> = archives.iter().map(|a| a.header).collect();
    vellum_snapshot_format::check_chain(&headers)?;
    let report = if opts.staged {
        crate::staged::restore_chain(db, target, &archives, new_name, progress).await?
    } else {
        let counters = Arc::new(Progress::default());
        let streams: Vec<ObjectStream> = archives
            .iter()
            .map(|a| ObjectStream {
                store: target.store.clone(),
                path: a.path.clone(),
                len: a.entry.archive_bytes,
                e_tag: a.e_tag.clone(),
                resume_window: opts.resume_window,
                progress: counters.clone(),
            })
            .collect();
        let summaries: Vec<(ArchiveHeader, Footer)> = archives
            .iter()
            .map(|a| (a.header, a.footer.clone()))
            .collect();
        let runtime = tokio::runtime::Handle::current();
        let (db2, name) = (db.clone(), new_name.to_owned());
        let mut import = tokio::task::spawn_blocking(move || {
            let mut streams: Vec<Option<ObjectStream>> = streams.into_iter().map(Some).collect();
            db2.import_snapshot_streams(
                &summaries,
                &mut |i| {
                    let stream = streams.get_mut(i).and_then(Option::take).ok_or_else(|| {
                        vellum_snapshot_format::Error::InvalidInput {
                            reason: format!("archive {i} of the chain asked for twice"),
                        }
                    })?;
                    Ok(Box::new(stream.start(&runtime)))
                },
                &name,
            )
            .map(|_| ())
        });
        let imported = loop {
            tokio::select! {
                done = &mut import => break done,
                () = counters.notify.notified() => {
                    progress(counters.downloaded.load(Ordering::Relaxed));
                }
            }
        };
        imported.map_err(|e| Error::Refused(format!("restore task failed: {e}")))??;
        progress(counters.downloaded.load(Ordering::Relaxed));
        RestoreReport {
            id: id.to_owned(),
            collection: new_name.to_owned(),
            archives: archives.len(),
            bytes_downloaded: counters.downloaded.load(Ordering::Relaxed),
            chunks_resumed: 0,
            reads_resumed: counters.resumed.load(Ordering::Relaxed),
        }
    };
    tracing::info!(
        id,
        collection = new_name,
        archives = report.archives,
        downloaded = report.bytes_downloaded,
        staged = opts.staged,
        "backup restored"
    );
    Ok(report)
}
