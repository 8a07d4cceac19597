//! What an operator can do to a database by accident, and what Vellum does about it: a lost
//! catalog, a named collection whose directory is gone, a directory nobody named. Each
//! scenario runs on the simulated and on the real file system; none may delete data.

mod common;

use common::tree;

use std::path::Path;

use vellum::{CollectionConfig, Database, DatabaseOptions, Error, Metric, Point};
use vellum_fs::{DynFs, RealFs, SimFs};

fn options() -> DatabaseOptions {
    common::options(1 << 20, 64)
}

fn fill(fs: &DynFs, root: &Path) {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(2, Metric::L2))
        .unwrap();
    for i in 0..20 {
        c.upsert(Point::new(i, vec![i as f32, 1.0])).unwrap();
    }
    c.checkpoint().unwrap();
    c.upsert(Point::new(100, vec![1.0, 2.0])).unwrap();
}

fn a_missing_catalog_is_refused_and_nothing_is_removed(fs: DynFs, root: &Path) {
    fill(&fs, root);
    let catalog = root.join("VELLUM");
    let saved = {
        let f = fs.open(&catalog).unwrap();
        let mut b = vec![0; f.len().unwrap() as usize];
        f.read_at(&mut b, 0).unwrap();
        b
    };
    fs.remove_file(&catalog).unwrap();
    let before = tree(fs.as_ref(), root);
    let e = Database::open_with_fs(fs.clone(), root, options()).unwrap_err();
    assert!(matches!(e, Error::CatalogMissing { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("VELLUM") && text.contains("collections/"),
        "{text}"
    );
    assert_eq!(
        tree(fs.as_ref(), root),
        before,
        "the refused open changed files"
    );
    assert!(!fs.exists(&catalog).unwrap(), "a catalog was written");
    // Put the catalog back: every point is still there.
    vellum_fs::atomic_replace(fs.as_ref(), &catalog, &saved).unwrap();
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 21);
}

#[test]
fn a_missing_catalog_is_refused_and_nothing_is_removed_sim() {
    let fs = SimFs::new();
    a_missing_catalog_is_refused_and_nothing_is_removed(fs.shared(), Path::new("/db"));
}

#[test]
fn a_missing_catalog_is_refused_and_nothing_is_removed_real() {
    let dir = tempfile::tempdir().unwrap();
    a_missing_catalog_is_refused_and_nothing_is_removed(RealFs::shared(), dir.path());
}

fn unnamed_directories_are_kept_and_abandoned_ones_removed(fs: DynFs, root: &Path) {
    fill(&fs, root);
    let colls = root.join("collections");
    // A collection directory copied in by hand (an id the catalog has handed out before),
    // and one a crash left behind while being created (an id not handed out yet).
    let copied = colls.join("c-0000000000000000");
    let unborn = colls.join("c-00000000000000ff");
    let stranger = colls.join("notes");
    for d in [&copied, &unborn, &stranger] {
        vellum_fs::create_dir_all_durable(fs.as_ref(), d).unwrap();
        vellum_fs::atomic_replace(fs.as_ref(), &d.join("data"), b"keep me").unwrap();
    }
    let named: Vec<String> = fs
        .list_dir(&colls)
        .unwrap()
        .into_iter()
        .filter(|n| {
            n.starts_with("c-")
                && !["c-0000000000000000", "c-00000000000000ff"].contains(&n.as_str())
        })
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 21);
    assert!(
        fs.exists(&copied.join("data")).unwrap(),
        "a directory nobody named was removed"
    );
    assert!(
        fs.exists(&stranger.join("data")).unwrap(),
        "a foreign directory was removed"
    );
    assert!(!fs.exists(&unborn).unwrap(), "an abandoned create was kept");
    // A dropped collection goes, and stays gone, even though unnamed directories remain.
    db.drop_collection("c").unwrap();
    drop(db);
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert!(db.list_collections().is_empty());
    assert_eq!(
        fs.list_dir(&colls).unwrap().len(),
        2,
        "{:?}",
        fs.list_dir(&colls)
    );
}

#[test]
fn unnamed_directories_are_kept_and_abandoned_ones_removed_sim() {
    let fs = SimFs::new();
    unnamed_directories_are_kept_and_abandoned_ones_removed(fs.shared(), Path::new("/db"));
}

#[test]
fn unnamed_directories_are_kept_and_abandoned_ones_removed_real() {
    let dir = tempfile::tempdir().unwrap();
    unnamed_directories_are_kept_and_abandoned_ones_removed(RealFs::shared(), dir.path());
}

fn a_named_collection_whose_directory_is_gone_is_reported(fs: DynFs, root: &Path) {
    fill(&fs, root);
    let colls = root.join("collections");
    let name = fs.list_dir(&colls).unwrap().pop().unwrap();
    let dir = colls.join(&name);
    let moved = root.join("moved-away");
    fs.rename(&dir, &moved).unwrap();
    let e = common::open_all(fs.clone(), root, options()).unwrap_err();
    assert!(
        matches!(&e, Error::BadDatabaseFile { path, .. } if *path == dir),
        "{e}"
    );
    assert!(
        !fs.exists(&dir).unwrap(),
        "an empty collection was created in its place"
    );
    fs.rename(&moved, &dir).unwrap();
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 21);
}

#[test]
fn a_named_collection_whose_directory_is_gone_is_reported_sim() {
    let fs = SimFs::new();
    a_named_collection_whose_directory_is_gone_is_reported(fs.shared(), Path::new("/db"));
}

#[test]
fn a_named_collection_whose_directory_is_gone_is_reported_real() {
    let dir = tempfile::tempdir().unwrap();
    a_named_collection_whose_directory_is_gone_is_reported(RealFs::shared(), dir.path());
}

fn a_removed_or_replaced_lock_file_still_excludes_a_second_open(fs: DynFs, root: &Path) {
    fill(&fs, root);
    let first = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let lock = root.join("LOCK");
    assert!(fs.exists(&lock).unwrap(), "the lock file to remove exists");
    fs.remove_file(&lock).unwrap();
    let e = Database::open_with_fs(fs.clone(), root, options()).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    vellum_fs::atomic_replace(fs.as_ref(), &lock, b"").unwrap();
    let e = Database::open_with_fs(fs.clone(), root, options()).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    drop(first);
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 21);
}

#[test]
fn a_removed_or_replaced_lock_file_still_excludes_a_second_open_sim() {
    let fs = SimFs::new();
    a_removed_or_replaced_lock_file_still_excludes_a_second_open(fs.shared(), Path::new("/db"));
}

#[test]
fn a_removed_or_replaced_lock_file_still_excludes_a_second_open_real() {
    let dir = tempfile::tempdir().unwrap();
    a_removed_or_replaced_lock_file_still_excludes_a_second_open(RealFs::shared(), dir.path());
}

fn a_lost_catalog_is_rebuilt_from_the_collections_descriptions(fs: DynFs, root: &Path) {
    fill(&fs, root);
    {
        // A second collection, and a third imported from a snapshot of the first (its
        // description came from the archive and names the source).
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        let d = db
            .create_collection("d", CollectionConfig::new(3, Metric::Cosine).flat())
            .unwrap();
        d.upsert(Point::new(7, vec![1.0, 2.0, 3.0])).unwrap();
        let archive = root.join("c.vsnap");
        db.export_snapshot("c", &archive, vellum::Compression::Zstd)
            .unwrap();
        db.import_snapshot(std::slice::from_ref(&archive), "copy")
            .unwrap();
        fs.remove_file(&archive).unwrap();
        db.drop_collection("d").unwrap();
        db.create_collection("d", CollectionConfig::new(3, Metric::Cosine).flat())
            .unwrap()
            .upsert(Point::new(8, vec![1.0, 2.0, 3.0]))
            .unwrap();
    }
    let before: Vec<(String, CollectionConfig, usize)> = {
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        db.list_collections()
            .into_iter()
            .map(|(n, cfg)| {
                let len = db.collection(&n).unwrap().len();
                (n, cfg, len)
            })
            .collect()
    };
    assert_eq!(before.len(), 3);
    fs.remove_file(&root.join("VELLUM")).unwrap();
    assert!(matches!(
        Database::open_with_fs(fs.clone(), root, options()).unwrap_err(),
        Error::CatalogMissing { .. }
    ));
    // A directory from before descriptions existed is left out and left alone.
    let old = root.join("collections").join("c-0000000000000000");
    vellum_fs::create_dir_all_durable(fs.as_ref(), &old).unwrap();
    let report = Database::repair_catalog_with_fs(fs.clone(), root).unwrap();
    let mut names: Vec<&str> = report.recovered.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["c", "copy", "d"], "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(fs.exists(&old).unwrap());
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let after: Vec<(String, CollectionConfig, usize)> = db
        .list_collections()
        .into_iter()
        .map(|(n, cfg)| {
            let len = db.collection(&n).unwrap().len();
            (n, cfg, len)
        })
        .collect();
    assert_eq!(after, before);
    assert_eq!(
        db.collection("d").unwrap().get(8).unwrap().unwrap().vector,
        vec![1.0, 2.0, 3.0]
    );
    // New collections get fresh ids; the repaired catalog is refused a second repair.
    db.create_collection("e", CollectionConfig::new(2, Metric::L2))
        .unwrap();
    drop(db);
    assert!(Database::repair_catalog_with_fs(fs.clone(), root).is_err());
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert_eq!(db.list_collections().len(), 4);
}

#[test]
fn a_lost_catalog_is_rebuilt_from_the_collections_descriptions_sim() {
    let fs = SimFs::new();
    a_lost_catalog_is_rebuilt_from_the_collections_descriptions(fs.shared(), Path::new("/db"));
}

#[test]
fn a_lost_catalog_is_rebuilt_from_the_collections_descriptions_real() {
    let dir = tempfile::tempdir().unwrap();
    a_lost_catalog_is_rebuilt_from_the_collections_descriptions(RealFs::shared(), dir.path());
}
