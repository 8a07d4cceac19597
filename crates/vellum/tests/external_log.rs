//! Collections without a write-ahead log of their own (`DatabaseOptions::with_external_log`,
//! used by vellum-raft, whose Raft log holds every write): nothing is written to the log, a
//! crash brings a collection back to exactly its last checkpoint, LSNs go on after it, and a
//! collection whose own log still holds records past its checkpoint is refused.

use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point};
use vellum_fs::{CrashModel, Fs, SimFs};

fn options() -> DatabaseOptions {
    DatabaseOptions::default()
        .with_external_log(true)
        .with_background_checkpoints(false)
}

fn point(id: u64) -> Point {
    Point::new(id, vec![id as f32, 1.0, 2.0, 3.0])
}

/// Every file under `dir` whose name says it is a log segment.
fn segments(fs: &SimFs, dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for name in fs.list_dir(dir).unwrap_or_default() {
        let path = dir.join(&name);
        if name.starts_with("wal-") {
            let len = fs.open(&path).map(|f| f.len().unwrap()).unwrap_or(0);
            out.push(format!("{name} ({len} bytes)"));
        } else if fs.list_dir(&path).is_ok() {
            out.extend(segments(fs, &path));
        }
    }
    out
}

#[test]
fn a_crash_brings_a_collection_without_its_own_log_back_to_its_last_checkpoint() {
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(4, Metric::L2))
        .unwrap();
    c.upsert_batch((0..100).map(point)).unwrap();
    let covered = c.checkpoint().unwrap().lsn;
    let last = c.upsert_batch((100..150).map(point)).unwrap();
    assert!(last > covered, "LSNs are handed out as usual");
    assert_eq!(c.len(), 150);
    assert!(
        segments(&fs, std::path::Path::new("/db")).is_empty(),
        "no log segment was written: {:?}",
        segments(&fs, std::path::Path::new("/db"))
    );
    let mut images = 0;
    for image in fs.crash_images(&CrashModel::torn_512(), 20, 7) {
        let db = Database::open_with_fs(image.shared(), "/db", options()).unwrap();
        let c = db.collection("c").unwrap();
        assert_eq!(c.len(), 100, "exactly the checkpointed points");
        assert!(c.get(99).unwrap().is_some() && c.get(100).unwrap().is_none());
        // The caller applies its log again: LSNs continue after the checkpoint.
        let lsn = c.upsert_batch((100..150).map(point)).unwrap();
        assert_eq!(lsn, covered + 50);
        images += 1;
    }
    println!("external log: {images} crash images opened at their checkpoint");
    assert!(images > 0);
}

#[test]
fn a_collection_whose_own_log_holds_records_past_its_checkpoint_is_refused() {
    let fs = SimFs::new();
    {
        let db = Database::open_with_fs(
            fs.shared(),
            "/db",
            DatabaseOptions::default().with_background_checkpoints(false),
        )
        .unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new(4, Metric::L2))
            .unwrap();
        c.upsert_batch((0..10).map(point)).unwrap();
    }
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let err = db.collection("c").unwrap_err().to_string();
    assert!(err.contains("holds log records"), "{err}");
}
