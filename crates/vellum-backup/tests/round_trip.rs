//! Backups on the in-memory and local-file object stores: full round trips answer searches
//! exactly as the original; a damaged object is refused before anything is created; an
//! interrupted restore resumes with only the missing part; two concurrent backups to one
//! prefix both land in the catalog; deletes keep the catalog and objects in step.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures_util::StreamExt as _;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point, SearchParams};
use vellum_backup::{BackupOptions, BackupTarget, backup, delete, list, restore};

fn fill(db: &Database, name: &str, n: u64) {
    let c = db
        .create_collection(name, CollectionConfig::new(16, Metric::L2))
        .unwrap();
    let points: Vec<Point> = (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..16)
                .map(|j| ((i * 31 + j * 7) % 97) as f32 / 10.0)
                .collect();
            Point::new(i, v)
                .with_json(&serde_json::json!({"i": i}))
                .unwrap()
        })
        .collect();
    for batch in points.chunks(500) {
        c.upsert_batch(batch.to_vec()).unwrap();
    }
}

fn answers(db: &Database, name: &str) -> Vec<Vec<(u64, Option<Vec<u8>>)>> {
    let c = db.collection(name).unwrap();
    (0..20u64)
        .map(|q| {
            let v: Vec<f32> = (0..16)
                .map(|j| ((q * 13 + j * 3) % 50) as f32 / 7.0)
                .collect();
            c.search_with(
                &v,
                10,
                &SearchParams {
                    exact: true,
                    with_payload: true,
                    ..SearchParams::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| (h.id, h.payload))
            .collect()
        })
        .collect()
}

fn small_parts() -> BackupOptions {
    // Small chunks and parts: many parts even for a small archive.
    BackupOptions {
        chunk_bytes: 64 << 10,
        part_bytes: 128 << 10,
        parts_in_flight: 2,
    }
}

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

/// What a test store does with each read of its in-memory store.
#[async_trait]
trait GetHook: Send + Sync + std::fmt::Debug + 'static {
    async fn after_get(
        &self,
        p: &Path,
        got: object_store::Result<GetResult>,
    ) -> object_store::Result<GetResult>;
}

/// An in-memory store whose reads pass through a hook (fault injection, interleavings).
#[derive(Debug)]
struct Hooked<H> {
    inner: InMemory,
    hook: H,
}

impl<H> std::fmt::Display for Hooked<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooked")
    }
}

#[async_trait]
impl<H: GetHook> ObjectStore for Hooked<H> {
    async fn put_opts(
        &self,
        p: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(p, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(p, opts).await
    }
    async fn get_opts(&self, p: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let got = self.inner.get_opts(p, options).await;
        self.hook.after_get(p, got).await
    }
    fn delete_stream(
        &self,
        locations: futures_util::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Archive reads fail once `fail_after` bytes were read (across reads), once.
#[derive(Debug)]
struct Flaky {
    fail_after: Arc<AtomicU64>,
}

#[async_trait]
impl GetHook for Flaky {
    async fn after_get(
        &self,
        p: &Path,
        got: object_store::Result<GetResult>,
    ) -> object_store::Result<GetResult> {
        let mut got = got?;
        if p.as_ref().ends_with("catalog.json") {
            return Ok(got);
        }
        let GetResultPayload::Stream(inner) = got.payload else {
            unreachable!("memory streams")
        };
        let budget = Arc::clone(&self.fail_after);
        let stream = inner
            .flat_map(|piece| {
                futures_util::stream::iter(match piece {
                    Ok(b) => (0..b.len())
                        .step_by(1024)
                        .map(|i| Ok(b.slice(i..(i + 1024).min(b.len()))))
                        .collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                })
            })
            .map(move |piece| match piece {
                Ok(b) => {
                    let left = budget.load(Ordering::SeqCst);
                    if left == u64::MAX || left >= b.len() as u64 {
                        if left != u64::MAX {
                            budget.store(left - b.len() as u64, Ordering::SeqCst);
                        }
                        Ok(b)
                    } else {
                        budget.store(u64::MAX, Ordering::SeqCst); // once
                        Err(object_store::Error::Generic {
                            store: "Flaky",
                            source: "connection reset (injected)".into(),
                        })
                    }
                }
                Err(e) => Err(e),
            });
        got.payload = GetResultPayload::Stream(stream.boxed());
        Ok(got)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_resumes_with_only_what_it_lacks() {
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
    // The final chunk is fetched first, then chunk 0; the connection drops half-way
    // through chunk 1.
    flaky
        .hook
        .fail_after
        .store(final_len + chunk + chunk / 2, Ordering::SeqCst);
    let err = restore(&db, &target, &entry.id, "copy").await.unwrap_err();
    println!("interrupted: {err}");
    assert!(db.collection("copy").is_err());
    let report = restore(&db, &target, &entry.id, "copy").await.unwrap();
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
