//! Where backups go: an object store and a prefix in it.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use crate::error::{Error, Result};

/// An object store and the prefix the backups live under (`<prefix>/catalog.json`,
/// `<prefix>/<collection>/<id>.vsnap`).
#[derive(Debug, Clone)]
pub struct BackupTarget {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: Path,
    pub(crate) display: String,
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl BackupTarget {
    /// Backups in `store` under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> BackupTarget {
        BackupTarget {
            display: format!("{store}/{prefix}"),
            store,
            prefix: Path::from(prefix),
        }
    }

    /// A target from a URL: `s3://bucket/prefix` (credentials, region and endpoint from the
    /// usual `AWS_*` environment variables; `AWS_ENDPOINT_URL` for an S3-compatible
    /// server, plain `http://` allowed), `file:///absolute/dir`, or `memory://` (for tests).
    pub fn from_url(url: &str) -> Result<BackupTarget> {
        BackupTarget::from_url_with_endpoint(url, None)
    }

    /// [`BackupTarget::from_url`], with an S3 endpoint given here instead of by
    /// `AWS_ENDPOINT_URL`.
    pub fn from_url_with_endpoint(url: &str, endpoint: Option<&str>) -> Result<BackupTarget> {
        let bad = |reason: &str| Error::BadTarget {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            let mut builder =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = endpoint
                .map(str::to_owned)
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            let s3 = builder
                // Conditional writes of the catalog (If-Match on its ETag).
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                .build()
                .map_err(|e| bad(&e.to_string()))?;
            let mut t = BackupTarget::new(Arc::new(s3), prefix.trim_matches('/'));
            t.display = url.to_owned();
            return Ok(t);
        }
        if let Some(dir) = url.strip_prefix("file://") {
            // The object store's own root (a stand-in for a bucket), not database files.
            std::fs::create_dir_all(dir).map_err(|e| bad(&e.to_string()))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| bad(&e.to_string()))?;
            let mut t = BackupTarget::new(Arc::new(local), "");
            t.display = url.to_owned();
            return Ok(t);
        }
        if url == "memory://" {
            return Ok(BackupTarget::new(
                Arc::new(object_store::memory::InMemory::new()),
                "",
            ));
        }
        Err(bad("expected s3://bucket/prefix, file:///dir or memory://"))
    }

    /// The object `name` under the prefix.
    pub(crate) fn path(&self, name: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in name.split('/') {
            p = p.join(part);
        }
        p
    }

    /// The store (tests flip bytes in objects through it).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}
