//! What the backup tests share: a collection to back up, its search answers, and an
//! in-memory store whose reads pass through a hook (fault injection, interleavings).
#![allow(dead_code)] // each test file uses its own part

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures_util::StreamExt as _;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use vellum::{CollectionConfig, Database, Metric, Point, SearchParams};
use vellum_backup::BackupOptions;

/// The vector of point `i`.
pub fn vector(i: u64) -> Vec<f32> {
    (0..16)
        .map(|j| ((i * 31 + j * 7) % 97) as f32 / 10.0)
        .collect()
}

/// Upserts points `ids` (vector and payload from the id) into `name`.
pub fn upsert(db: &Database, name: &str, ids: std::ops::Range<u64>) {
    let c = db.collection(name).unwrap();
    let points: Vec<Point> = ids
        .map(|i| {
            Point::new(i, vector(i))
                .with_json(&serde_json::json!({"i": i}))
                .unwrap()
        })
        .collect();
    for batch in points.chunks(500) {
        c.upsert_batch(batch.to_vec()).unwrap();
    }
}

/// Creates collection `name` with points `0..n`.
pub fn fill(db: &Database, name: &str, n: u64) {
    db.create_collection(name, CollectionConfig::new(16, Metric::L2))
        .unwrap();
    upsert(db, name, 0..n);
}

/// Exact answers with payloads to 20 queries.
pub fn answers(db: &Database, name: &str) -> Vec<Vec<(u64, Option<Vec<u8>>)>> {
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

/// Small chunks and parts: many parts even for a small archive.
pub fn small_parts() -> BackupOptions {
    BackupOptions {
        chunk_bytes: 64 << 10,
        part_bytes: 128 << 10,
        parts_in_flight: 2,
        incremental: false,
    }
}

/// `stream` in pieces of at most 1 KiB (the in-memory store returns an object as one).
pub fn in_slices(
    stream: futures_util::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = object_store::Result<bytes::Bytes>> {
    stream.flat_map(|piece| {
        futures_util::stream::iter(match piece {
            Ok(b) => (0..b.len())
                .step_by(1024)
                .map(|i| Ok(b.slice(i..(i + 1024).min(b.len()))))
                .collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    })
}

/// `got` whose stream (in 1 KiB pieces) breaks with an injected connection reset once more
/// than `budget` bytes would have passed.
pub fn break_after(mut got: GetResult, budget: u64, store: &'static str) -> GetResult {
    let GetResultPayload::Stream(inner) = got.payload else {
        unreachable!("memory streams")
    };
    let mut left = budget;
    let stream = in_slices(inner).map(move |piece| {
        let b = piece?;
        if left < b.len() as u64 {
            return Err(object_store::Error::Generic {
                store,
                source: "connection reset (injected)".into(),
            });
        }
        left -= b.len() as u64;
        Ok(b)
    });
    got.payload = GetResultPayload::Stream(stream.boxed());
    got
}

/// What a test store does with each read of its in-memory store.
#[async_trait]
pub trait GetHook: Send + Sync + std::fmt::Debug + 'static {
    async fn after_get(
        &self,
        p: &Path,
        got: object_store::Result<GetResult>,
    ) -> object_store::Result<GetResult>;
}

/// An in-memory store whose reads pass through a hook (fault injection, interleavings).
#[derive(Debug)]
pub struct Hooked<H> {
    pub inner: InMemory,
    pub hook: H,
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
pub struct Flaky {
    pub fail_after: Arc<AtomicU64>,
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
        let stream = in_slices(inner).map(move |piece| match piece {
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
