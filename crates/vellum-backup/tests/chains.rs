//! Incremental backups and streamed restores on the in-memory and local-file stores: a chain
//! of a full backup and incrementals restores to exactly the collection each backup was
//! taken of; an incremental holds only what changed; a streamed restore keeps no local copy
//! and resumes a broken read where it stopped, in the same call; a read that cannot be
//! resumed fails with nothing created; retention keeps the parents the kept backups need.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Flaky, Hooked, answers, fill, small_parts, upsert};
use futures_util::StreamExt as _;
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt as _, PutPayload};
use vellum::{Database, DatabaseOptions};
use vellum_backup::{
    BackupEntry, BackupOptions, BackupTarget, RestoreOptions, backup, delete, list, restore,
    restore_with_progress, retain,
};

fn incremental() -> BackupOptions {
    BackupOptions {
        incremental: true,
        ..small_parts()
    }
}

/// Files and directories under `dir` (recursively), for "nothing was left behind".
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path().display().to_string());
            out.extend(tree(&e.path()));
        }
    }
    out.sort();
    out
}

async fn chain_round_trip_on(target: BackupTarget) {
    let dir = tempfile::tempdir().unwrap();
    // Small vector segments: an incremental sends the segments that changed, not all ten.
    let small_segments = DatabaseOptions::default().with_slots_per_segment(2048);
    let db = Database::open(dir.path().join("db"), small_segments).unwrap();
    fill(&db, "docs", 20_000);
    // An incremental with no backup of this collection yet is a full one.
    let full = backup(&db, "docs", &target, &incremental()).await.unwrap();
    assert_eq!((full.kind.as_str(), &full.parent), ("full", &None));
    let at_full = answers(&db, "docs");

    // A few points changed and a few added: the incremental holds only what changed.
    upsert(&db, "docs", 19_900..20_100);
    let docs = db.collection("docs").unwrap();
    for id in [5, 6, 7] {
        docs.delete(id).unwrap();
    }
    let inc1 = backup(&db, "docs", &target, &incremental()).await.unwrap();
    assert_eq!(inc1.kind, "incremental");
    assert_eq!(inc1.parent.as_deref(), Some(full.id.as_str()));
    assert!(inc1.lsn > full.lsn, "{inc1:?} after {full:?}");
    let at_inc1 = answers(&db, "docs");

    upsert(&db, "docs", 20_100..20_300);
    let inc2 = backup(&db, "docs", &target, &incremental()).await.unwrap();
    assert_eq!(inc2.parent.as_deref(), Some(inc1.id.as_str()));
    let at_inc2 = answers(&db, "docs");
    println!(
        "archives: full {} bytes, incrementals {} and {} bytes",
        full.archive_bytes, inc1.archive_bytes, inc2.archive_bytes
    );
    assert!(
        inc1.archive_bytes < full.archive_bytes / 2 && inc2.archive_bytes < full.archive_bytes / 2,
        "an incremental holds only the files that changed"
    );

    // Each backup restores to exactly what it was taken of, in another database too.
    let other = Database::open(dir.path().join("other"), DatabaseOptions::default()).unwrap();
    for (entry, expected, archives) in [
        (&full, &at_full, 1),
        (&inc1, &at_inc1, 2),
        (&inc2, &at_inc2, 3),
    ] {
        let name = format!("at-{}", &entry.id[..8]);
        let r = restore(&other, &target, &entry.id, &name).await.unwrap();
        assert_eq!(r.archives, archives, "{r:?}");
        assert_eq!(&answers(&other, &name), expected, "backup {}", entry.id);
    }
    let newest = other.collection(&format!("at-{}", &inc2.id[..8])).unwrap();
    assert_eq!(newest.len(), 20_297);
    // Streamed: nothing was staged under the database.
    assert!(
        tree(&other.path().join(vellum_backup::RESTORE_DIR)).is_empty(),
        "{:?}",
        tree(other.path())
    );
    // The parent of a kept backup cannot be deleted.
    let err = delete(&target, &inc1.id).await.unwrap_err();
    assert!(err.to_string().contains("parent"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_incrementals_restores_each_backup_exactly_through_memory() {
    chain_round_trip_on(BackupTarget::new(Arc::new(InMemory::new()), "prod")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_incrementals_restores_each_backup_exactly_through_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("bucket").display());
    chain_round_trip_on(BackupTarget::from_url(&url).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_restore_of_a_chain_matches_the_streamed_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    let target = BackupTarget::new(Arc::new(InMemory::new()), "prod");
    fill(&db, "docs", 5_000);
    backup(&db, "docs", &target, &incremental()).await.unwrap();
    upsert(&db, "docs", 4_000..6_000);
    let inc = backup(&db, "docs", &target, &incremental()).await.unwrap();
    let staged = RestoreOptions {
        staged: true,
        ..RestoreOptions::default()
    };
    let r = restore_with_progress(&db, &target, &inc.id, "staged", &staged, &|_| {})
        .await
        .unwrap();
    assert_eq!(r.archives, 2);
    restore(&db, &target, &inc.id, "streamed").await.unwrap();
    assert_eq!(answers(&db, "docs"), answers(&db, "staged"));
    assert_eq!(answers(&db, "docs"), answers(&db, "streamed"));
    assert!(tree(&db.path().join(vellum_backup::RESTORE_DIR)).is_empty());
}

fn flaky_target() -> (Arc<Hooked<Flaky>>, BackupTarget) {
    let flaky = Arc::new(Hooked {
        inner: InMemory::new(),
        hook: Flaky {
            fail_after: Arc::new(AtomicU64::new(u64::MAX)),
        },
    });
    let target = BackupTarget::new(flaky.clone(), "b");
    (flaky, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_restore_resumes_a_broken_read_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 30_000);
    let (flaky, target) = flaky_target();
    let entry = backup(&db, "docs", &target, &BackupOptions::default())
        .await
        .unwrap();
    // The connection drops half-way through the archive.
    flaky
        .hook
        .fail_after
        .store(entry.archive_bytes / 2, Ordering::SeqCst);
    let seen = AtomicU64::new(0);
    let progress = |n: u64| {
        seen.fetch_max(n, Ordering::SeqCst);
    };
    let r = restore_with_progress(
        &db,
        &target,
        &entry.id,
        "copy",
        &RestoreOptions::default(),
        &progress,
    )
    .await
    .unwrap();
    println!("{r:?} of {} bytes", entry.archive_bytes);
    assert_eq!(r.reads_resumed, 1, "{r:?}");
    // Resumed at the first byte not received: nothing was read twice.
    assert_eq!(r.bytes_downloaded, entry.archive_bytes);
    assert_eq!(seen.load(Ordering::SeqCst), entry.archive_bytes);
    assert_eq!(answers(&db, "docs"), answers(&db, "copy"));
    assert!(tree(&db.path().join(vellum_backup::RESTORE_DIR)).is_empty());
}

/// A store whose long archive reads break after 1.5 MiB and cannot be resumed.
#[derive(Debug)]
struct Dead;

#[async_trait::async_trait]
impl common::GetHook for Dead {
    async fn after_get(
        &self,
        p: &object_store::path::Path,
        got: object_store::Result<object_store::GetResult>,
    ) -> object_store::Result<object_store::GetResult> {
        // A resumed read of the archive (not the small reads of its footer) is refused.
        let resumed = |g: &object_store::GetResult| {
            g.range.start > 1 << 20 && g.range.end - g.range.start > 64 << 10
        };
        if p.as_ref().ends_with(".vsnap") && got.as_ref().is_ok_and(resumed) {
            return Err(object_store::Error::Generic {
                store: "Dead",
                source: "connection refused (injected)".into(),
            });
        }
        let got = got?;
        if !p.as_ref().ends_with(".vsnap") || got.range.end - got.range.start < 4 << 20 {
            return Ok(got);
        }
        // The first 1 MiB and a half of a long read arrive, then the connection breaks.
        Ok(common::break_after(got, 3 << 19, "Dead"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_cannot_be_resumed_fails_the_restore_with_nothing_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 30_000);
    let store = Arc::new(Hooked {
        inner: InMemory::new(),
        hook: Dead,
    });
    let target = BackupTarget::new(store, "b");
    let entry = backup(&db, "docs", &target, &BackupOptions::default())
        .await
        .unwrap();
    assert!(entry.archive_bytes > 4 << 20, "{entry:?}");
    let collections_before = tree(&db.path().join("collections"));
    let opts = RestoreOptions {
        resume_window: Duration::from_millis(300),
        ..RestoreOptions::default()
    };
    let err = restore_with_progress(&db, &target, &entry.id, "copy", &opts, &|_| {})
        .await
        .unwrap_err();
    println!("gave up: {err}");
    assert!(err.to_string().contains("no byte received"), "{err}");
    assert!(matches!(
        db.collection("copy"),
        Err(vellum::Error::UnknownCollection { .. })
    ));
    assert_eq!(tree(&db.path().join("collections")), collections_before);
    assert!(tree(&db.path().join(vellum_backup::RESTORE_DIR)).is_empty());
    // The database takes the same name afterwards.
    fill(&db, "copy", 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_object_is_refused_before_anything_is_read_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 3_000);
    let target = BackupTarget::new(Arc::new(InMemory::new()), "b");
    let first = backup(&db, "docs", &target, &small_parts()).await.unwrap();
    upsert(&db, "docs", 0..10);
    let second = backup(&db, "docs", &target, &small_parts()).await.unwrap();
    // The second archive (a valid archive, of another snapshot) cut to the first's length
    // and put in its place: refused by its trailer, before a byte is decoded.
    let store = target.store();
    let bytes = store
        .get(&object_store::path::Path::from(format!(
            "b/{}",
            second.object
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let first_path = object_store::path::Path::from(format!("b/{}", first.object));
    let truncated = bytes.slice(..first.archive_bytes.min(bytes.len() as u64) as usize);
    store
        .put(&first_path, PutPayload::from(truncated))
        .await
        .unwrap();
    let err = restore(&db, &target, &first.id, "copy").await.unwrap_err();
    println!("refused: {err}");
    assert!(db.collection("copy").is_err());

    // A catalog naming another archive hash than the object's (the object was replaced by
    // one of the same length): refused by the trailer's BLAKE3, before the archive is read.
    let catalog_path = object_store::path::Path::from("b/catalog.json");
    let mut catalog: vellum_backup::Catalog = serde_json::from_slice(
        &store
            .get(&catalog_path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let entry = catalog
        .backups
        .iter_mut()
        .find(|b| b.id == second.id)
        .unwrap();
    entry.blake3 = "0".repeat(64);
    store
        .put(
            &catalog_path,
            PutPayload::from(serde_json::to_vec(&catalog).unwrap()),
        )
        .await
        .unwrap();
    let err = restore(&db, &target, &second.id, "copy").await.unwrap_err();
    println!("refused: {err}");
    assert!(err.to_string().contains("replaced object"), "{err}");
    assert!(db.collection("copy").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_backups_and_the_parents_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    let target = BackupTarget::new(Arc::new(InMemory::new()), "prod");
    fill(&db, "docs", 2_000);
    fill(&db, "other", 500);
    let other = backup(&db, "other", &target, &small_parts()).await.unwrap();
    let mut taken: Vec<BackupEntry> = Vec::new();
    // full, inc, inc, full, inc
    for (i, full) in [true, false, false, true, false].into_iter().enumerate() {
        upsert(&db, "docs", (i as u64 * 100)..(i as u64 * 100 + 50));
        let opts = BackupOptions {
            incremental: !full,
            ..small_parts()
        };
        taken.push(backup(&db, "docs", &target, &opts).await.unwrap());
    }
    let expected = answers(&db, "docs");
    // Keeping the newest one keeps its parent, the second full backup.
    let removed = retain(&target, "docs", 1).await.unwrap();
    let ids = |v: &[&BackupEntry]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(removed, ids(&[&taken[0], &taken[1], &taken[2]]));
    let left: Vec<String> = list(&target)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, ids(&[&other, &taken[3], &taken[4]]));
    // The objects went with them: the catalog, `other`'s and the two kept archives remain.
    let objects: Vec<_> = target.store().list(None).collect().await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    restore(&db, &target, &taken[4].id, "copy").await.unwrap();
    assert_eq!(answers(&db, "copy"), expected);
    // Keeping more than there are removes nothing.
    assert!(retain(&target, "docs", 10).await.unwrap().is_empty());
}

/// Breaks the first long archive read half-way and, at that moment, replaces the object
/// with other bytes of the same length (another writer, a lifecycle rule).
#[derive(Debug)]
struct ReplacedMidway {
    store: std::sync::OnceLock<Arc<InMemory>>,
    long_reads: AtomicU64,
}

#[async_trait::async_trait]
impl common::GetHook for ReplacedMidway {
    async fn after_get(
        &self,
        p: &object_store::path::Path,
        got: object_store::Result<object_store::GetResult>,
    ) -> object_store::Result<object_store::GetResult> {
        let got = got?;
        // The restore's long reads of the archive: its HEAD, then the stream.
        let long = got.range.end - got.range.start > 1 << 20;
        if !p.as_ref().ends_with(".vsnap")
            || !long
            || self.long_reads.fetch_add(1, Ordering::SeqCst) != 1
        {
            return Ok(got);
        }
        // The whole object, changed in its last byte, is put back before the break.
        let store = self.store.get().unwrap().clone();
        let mut bytes = store.get(p).await?.bytes().await?.to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        store.put(p, PutPayload::from(bytes)).await?;
        Ok(common::break_after(got, 1 << 20, "ReplacedMidway"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_while_a_read_is_resumed_fails_the_restore_instead_of_splicing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 30_000);
    let hooked = Arc::new(Hooked {
        inner: InMemory::new(),
        hook: ReplacedMidway {
            store: std::sync::OnceLock::new(),
            long_reads: AtomicU64::new(u64::MAX / 2), // disarmed during the backup
        },
    });
    // The hook writes through a second handle on the same memory store (a clone shares it).
    hooked
        .hook
        .store
        .set(Arc::new(hooked.inner.clone()))
        .unwrap();
    let target = BackupTarget::new(hooked.clone(), "b");
    let entry = backup(&db, "docs", &target, &BackupOptions::default())
        .await
        .unwrap();
    hooked.hook.long_reads.store(0, Ordering::SeqCst);
    let err = restore(&db, &target, &entry.id, "copy").await.unwrap_err();
    println!("refused: {err}");
    // Refused on resuming at 1 MiB, by the object's version.
    let err = err.to_string();
    assert!(
        err.contains("at offset 1048576") && err.contains("does not match"),
        "{err}"
    );
    assert!(db.collection("copy").is_err());
}
