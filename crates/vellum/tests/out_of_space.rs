//! A full disk (issue 14, item 5): the write that finds no room fails with an error saying
//! how much room it needed, nothing acknowledged is lost, and the database reopens, reads
//! and verifies with no more space than it had.

mod common;

use vellum::fs::{Fs, SimFs};
use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point};

const DIM: usize = 16;

fn options() -> DatabaseOptions {
    common::options(1 << 20, 1024)
}

/// Bytes all files hold now.
fn used_bytes(fs: &SimFs, dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for name in fs.list_dir(dir).unwrap() {
        let path = dir.join(&name);
        if fs.is_dir(&path).unwrap() {
            total += used_bytes(fs, &path);
        } else {
            total += fs.open(&path).unwrap().len().unwrap();
        }
    }
    total
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(" / ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[test]
fn a_full_disk_fails_the_write_naming_the_room_needed_and_the_database_reopens_in_the_space_it_has()
{
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    c.upsert_batch((0..50u64).map(|id| Point::new(id, common::vector(id, DIM))))
        .unwrap();
    c.checkpoint().unwrap();
    // A disk with 200 KiB free beyond what the database holds now.
    let limit = used_bytes(&fs, "/db".as_ref()) + (200 << 10);
    fs.limit_space(Some(limit));
    let mut acknowledged = 50u64;
    let error = loop {
        let batch =
            (acknowledged..acknowledged + 50).map(|id| Point::new(id, common::vector(id, DIM)));
        match c.upsert_batch(batch) {
            Ok(_) => acknowledged += 50,
            Err(e) => break e,
        }
        assert!(acknowledged < 100_000, "the limit never bit");
    };
    let text = chain(&error);
    assert!(text.contains("more bytes were needed"), "{text}");
    assert!(text.contains("/db/collections/"), "names the file: {text}");
    drop((c, db));
    // Nothing freed: the same limit.
    let db = Database::open_with_fs(fs.shared(), "/db", options()).expect("reopens in place");
    let c = db.collection("c").expect("the collection opens");
    let report = c.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    for id in 0..acknowledged {
        assert_eq!(
            c.get(id).unwrap().map(|p| p.vector),
            Some(common::vector(id, DIM)),
            "acknowledged id {id}"
        );
    }
    assert!(c.len() as u64 >= acknowledged);
    println!(
        "{acknowledged} points acknowledged before the disk was full; reopened and verified within {limit} bytes"
    );
}
