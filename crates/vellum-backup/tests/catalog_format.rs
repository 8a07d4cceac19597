//! The catalog's format (docs/format/backup-catalog.md): the golden fixture is read as
//! documented, a catalog that does not parse is refused naming the object, and an entry
//! whose hash is not 64 hex digits is refused on restore before anything is read.

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use vellum_backup::{BackupTarget, Catalog, list, restore};

const GOLDEN: &str = include_str!("fixtures/catalog-v1.json");

#[tokio::test]
async fn the_golden_catalog_is_read_as_documented() {
    let catalog: Catalog = serde_json::from_str(GOLDEN).unwrap();
    assert_eq!(catalog.version, 1);
    let e = &catalog.backups[0];
    assert_eq!(
        (e.collection.as_str(), e.lsn, e.archive_bytes),
        ("docs", 3000, 787_548)
    );
    assert_eq!(e.object, "docs/c61b3005939e81af4ac4f59e098656fa.vsnap");
    let target = BackupTarget::new(Arc::new(InMemory::new()), "p");
    target
        .store()
        .put(
            &Path::from("p/catalog.json"),
            PutPayload::from(GOLDEN.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(list(&target).await.unwrap(), catalog.backups);
}

#[tokio::test]
async fn a_damaged_catalog_or_entry_is_refused_naming_the_object() {
    let target = BackupTarget::new(Arc::new(InMemory::new()), "p");
    let path = Path::from("p/catalog.json");
    target
        .store()
        .put(
            &path,
            PutPayload::from(GOLDEN.as_bytes()[..GOLDEN.len() / 2].to_vec()),
        )
        .await
        .unwrap();
    let err = list(&target).await.unwrap_err().to_string();
    assert!(
        err.contains("p/catalog.json") && err.contains("does not parse"),
        "{err}"
    );
    let bad_hash = GOLDEN.replace("5d0c6a3c", "zz");
    target
        .store()
        .put(&path, PutPayload::from(bad_hash.into_bytes()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = vellum::Database::open(dir.path(), vellum::DatabaseOptions::default()).unwrap();
    let err = restore(&db, &target, "c61b3005939e81af4ac4f59e098656fa", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("blake3"), "{err}");
}
