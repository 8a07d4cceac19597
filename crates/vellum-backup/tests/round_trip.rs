//! Backups on the in-memory and local-file object stores: full round trips answer searches
//! exactly as the original; a damaged object is refused before anything is created; an
//! interrupted restore resumes with only the missing part; two concurrent backups to one
//! prefix both land in the catalog; deletes keep the catalog and objects in step.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use common::{Flaky, GetHook, Hooked, answers, fill, small_parts};
use futures_util::StreamExt as _;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetResult, ObjectStoreExt as _, PutPayload};
use vellum::{Database, DatabaseOptions};
use vellum_backup::{BackupOptions, BackupTarget, RestoreOptions, backup, delete, list, restore};

async fn round_trip_on(target: BackupTarget) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 6000);
    let entry = backup(&db, "docs", &target, &small_parts()).await.unwrap();
    assert!(entry.archive_bytes > 256 << 10, "{entry:?}");
    assert_eq!(list(&target).await.unwrap(), vec![entry.clone()]);
    let report = restore(&db, &target, &entry.id, "copy").await.unwrap();
    assert_eq!(report.bytes_downloaded, entry.archive_bytes);
    assert_eq!(answers(&db, "docs"), answers(&db, "copy"));
    assert_eq!(db.collection("copy").unwrap().len(), 6000);
    // Restored into another database too.
    let other = Database::open(dir.path().join("other"), DatabaseOptions::default()).unwrap();
    restore(&other, &target, &entry.id, "docs").await.unwrap();
    assert_eq!(answers(&db, "docs"), answers(&other, "docs"));
    delete(&target, &entry.id).await.unwrap();
    assert!(list(&target).await.unwrap().is_empty());
    let objects: Vec<_> = target.store().list(None).collect().await;
    assert_eq!(objects.len(), 1, "only the catalog is left: {objects:?}");
    assert!(delete(&target, &entry.id).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_round_trips_through_memory_with_the_same_search_answers() {
    round_trip_on(BackupTarget::new(Arc::new(InMemory::new()), "backups/prod")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_round_trips_through_local_files_with_the_same_search_answers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("bucket").display());
    round_trip_on(BackupTarget::from_url(&url).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_is_refused_before_any_collection_appears() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 3000);
    let target = BackupTarget::new(Arc::new(InMemory::new()), "b");
    let entry = backup(&db, "docs", &target, &small_parts()).await.unwrap();
    // One byte flipped in the middle of the archive, through the store's API.
    let path = Path::from(format!("b/{}", entry.object));
    let mut bytes = target
        .store()
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    target
        .store()
        .put(&path, PutPayload::from(bytes))
        .await
        .unwrap();
    let err = restore(&db, &target, &entry.id, "copy").await.unwrap_err();
    println!("refused: {err}");
    assert!(matches!(
        db.collection("copy"),
        Err(vellum::Error::UnknownCollection { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_staged_restore_resumes_with_only_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 60_000);
    let flaky = Arc::new(Hooked {
        inner: InMemory::new(),
        hook: Flaky {
            fail_after: Arc::new(AtomicU64::new(u64::MAX)),
        },
    });
    let target = BackupTarget::new(flaky.clone(), "b");
    let entry = backup(&db, "docs", &target, &BackupOptions::default())
        .await
        .unwrap();
    let chunk = vellum_backup::RESTORE_CHUNK_BYTES;
    assert!(entry.archive_bytes > 3 * chunk, "{entry:?}");
    let chunks = entry.archive_bytes.div_ceil(chunk);
    let final_len = entry.archive_bytes - (chunks - 1) * chunk;
    // The archive's header, trailer and footer are read first (a few kilobytes), then the
    // final chunk, then chunk 0; the connection drops half-way through chunk 1.
    flaky
        .hook
        .fail_after
        .store(final_len + chunk + chunk / 2, Ordering::SeqCst);
    let staged = RestoreOptions {
        staged: true,
        ..RestoreOptions::default()
    };
    let restore = |name| {
        vellum_backup::restore_with_progress(&db, &target, &entry.id, name, &staged, &|_| {})
    };
    let err = restore("copy").await.unwrap_err();
    println!("interrupted: {err}");
    assert!(db.collection("copy").is_err());
    let report = restore("copy").await.unwrap();
    println!("resumed: {report:?} of {} bytes", entry.archive_bytes);
    assert_eq!(report.chunks_resumed, 2);
    assert_eq!(
        report.bytes_downloaded,
        entry.archive_bytes - chunk - final_len
    );
    assert_eq!(answers(&db, "docs"), answers(&db, "copy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_backups_to_one_prefix_both_land_in_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "a", 2000);
    fill(&db, "b", 2000);
    let target = BackupTarget::new(Arc::new(InMemory::new()), "shared");
    let opts = small_parts();
    for _ in 0..3 {
        let (x, y) = tokio::join!(
            backup(&db, "a", &target, &opts),
            backup(&db, "b", &target, &opts)
        );
        x.unwrap();
        y.unwrap();
    }
    let all = list(&target).await.unwrap();
    assert_eq!(all.len(), 6, "{all:#?}");
    assert_eq!(all.iter().filter(|e| e.collection == "a").count(), 3);
}

/// Holds the first two catalog reads, once read, until both are: the two writers have then
/// read the same catalog version and race to write it.
#[derive(Debug)]
struct Racy {
    arrivals: AtomicU64,
    gate: tokio::sync::Barrier,
}

#[async_trait]
impl GetHook for Racy {
    async fn after_get(
        &self,
        p: &Path,
        got: object_store::Result<GetResult>,
    ) -> object_store::Result<GetResult> {
        if p.as_ref().ends_with("catalog.json") && self.arrivals.fetch_add(1, Ordering::SeqCst) < 2
        {
            self.gate.wait().await;
        }
        got
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_reading_the_same_catalog_version_both_keep_their_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "a", 500);
    fill(&db, "b", 500);
    let racy = Arc::new(Hooked {
        inner: InMemory::new(),
        hook: Racy {
            arrivals: AtomicU64::new(u64::MAX / 2), // disarmed
            gate: tokio::sync::Barrier::new(2),
        },
    });
    let target = BackupTarget::new(racy.clone(), "shared");
    let opts = small_parts();
    // A catalog exists already: the race is between two conditional updates of it.
    let first = backup(&db, "a", &target, &opts).await.unwrap();
    racy.hook.arrivals.store(0, Ordering::SeqCst);
    let (x, y) = tokio::join!(
        backup(&db, "a", &target, &opts),
        backup(&db, "b", &target, &opts)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let ids: Vec<String> = list(&target)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    println!(
        "first {} x {} y {} in the catalog: {ids:?}",
        first.id, x.id, y.id
    );
    assert!(
        ids.contains(&first.id) && ids.contains(&x.id) && ids.contains(&y.id),
        "{ids:?}"
    );
}
