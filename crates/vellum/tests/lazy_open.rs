//! Collections open on first use: `Database::open` reads the catalog and no file of any
//! collection, a damaged collection fails at its own first use (every time) while the
//! others work, and the calls that need every collection open them.

mod common;

use vellum::fs::{Fault, FaultRule, Fs, SimFs};
use vellum::{CollectionConfig, Database, DatabaseOptions, Error, Metric, Point};

fn options() -> DatabaseOptions {
    common::options(1 << 16, 64)
}

const NAMES: [&str; 3] = ["a", "b", "c"];

/// Three collections of 20 points each, the first checkpointed, the rest in the log only.
fn fill(fs: &SimFs) {
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    for (n, name) in NAMES.iter().enumerate() {
        let c = db
            .create_collection(name, CollectionConfig::new(4, Metric::L2))
            .unwrap();
        c.upsert_batch((0..20u64).map(|id| Point::new(id, common::vector(id + n as u64, 4))))
            .unwrap();
        if n == 0 {
            c.checkpoint().unwrap();
        }
    }
}

/// Fails every operation on a file or directory of any collection.
fn collections_unreadable(fs: &SimFs) {
    fs.inject(
        FaultRule::nth_op(1, Fault::Eio)
            .on_path("/collections/c-")
            .sticky(),
    );
}

#[test]
fn a_database_opens_without_touching_a_file_of_its_collections() {
    let fs = SimFs::new();
    fill(&fs);
    collections_unreadable(&fs);
    let db = Database::open_with_fs(fs.shared(), "/db", options())
        .expect("opening reads the catalog only");
    let names: Vec<String> = db.list_collections().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, NAMES);
    db.sync().expect("nothing opened, nothing to sync");
    // The first use opens the collection, and with its files unreadable it fails (and
    // fails again: nothing half-open is kept).
    for _ in 0..2 {
        let e = db.collection("b").unwrap_err();
        assert!(e.to_string().contains("/collections/c-"), "{e}");
    }
    assert!(db.stats().is_err(), "stats opens every collection");
    fs.clear_faults();
    let b = db
        .collection("b")
        .expect("opens once its files can be read");
    assert_eq!(b.len(), 20);
    assert_eq!(db.stats().unwrap().len(), 3);
}

#[test]
fn a_damaged_collection_fails_at_its_first_use_and_the_others_work() {
    let fs = SimFs::new();
    fill(&fs);
    // Damage b's log in the middle of its records.
    let wal_dir = fs
        .list_dir("/db/collections".as_ref())
        .unwrap()
        .into_iter()
        .map(|d| format!("/db/collections/{d}/wal"))
        .nth(1)
        .unwrap();
    let seg = fs.list_dir(wal_dir.as_ref()).unwrap().pop().unwrap();
    fs.tamper(format!("{wal_dir}/{seg}").as_ref(), |bytes| {
        bytes[300] ^= 0xFF
    })
    .unwrap();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    for name in ["a", "c"] {
        let c = db.collection(name).unwrap();
        assert_eq!(c.len(), 20, "{name}");
        c.upsert(Point::new(99, common::vector(99, 4))).unwrap();
    }
    for _ in 0..2 {
        let e = db.collection("b").unwrap_err();
        assert!(matches!(e, Error::Wal(_)), "{e}");
    }
    assert!(db.verify().is_err(), "verify needs every collection");
    assert_eq!(
        db.checkpoint_all().unwrap_err().to_string(),
        db.collection("b").unwrap_err().to_string()
    );
}
