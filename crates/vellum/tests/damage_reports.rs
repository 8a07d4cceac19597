//! Damage that opening or `verify` used to pass over in silence: a damaged last log record,
//! a torn tail that was cut, an older checkpoint generation that cannot be read, a missing
//! log segment a retained generation needs. Each runs on the simulated and the real file
//! system.

mod common;

use common::{read_file, write_file};

use std::path::{Path, PathBuf};

use vellum::{CollectionConfig, Database, DatabaseOptions, Error, Metric, Point, RecoveryMode};
use vellum_fs::{DynFs, Fs, RealFs, SimFs};

fn options() -> DatabaseOptions {
    common::options(4096, 64).with_retained_checkpoints(2)
}

/// The one collection's directory.
fn collection_dir(fs: &dyn Fs, root: &Path) -> PathBuf {
    let colls = root.join("collections");
    colls.join(fs.list_dir(&colls).unwrap().pop().unwrap())
}

fn files_in(fs: &dyn Fs, dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs
        .list_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
        .map(|n| dir.join(n))
        .collect();
    v.sort();
    v
}

fn upsert_range(db: &Database, ids: std::ops::Range<u64>) {
    let c = db.collection("c").unwrap();
    for i in ids {
        c.upsert(Point::new(i, vec![i as f32, 0.5]).with_payload("xy"))
            .unwrap();
    }
}

fn setup(fs: &DynFs, root: &Path) -> Database {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    db.create_collection("c", CollectionConfig::new(2, Metric::L2))
        .unwrap();
    db
}

/// The last frame of the log: (segment, offset of the frame, its length with padding).
fn last_frame(fs: &dyn Fs, wal_dir: &Path) -> (PathBuf, usize, usize) {
    let seg = files_in(fs, wal_dir, "wal-").pop().unwrap();
    let bytes = read_file(fs, &seg);
    // Frames: 32-byte header with the payload length at offset 8; the first after the
    // 32-byte segment header. Walk them to the last one.
    let (mut pos, mut last) = (32, None);
    while pos + 32 <= bytes.len() && bytes[pos + 4] != 0 {
        let len = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let whole = (32 + len + 1).div_ceil(8) * 8;
        last = Some((pos, whole));
        pos += whole;
    }
    let (at, whole) = last.expect("the log holds a frame");
    (seg, at, whole)
}

fn a_damaged_last_record_is_refused_and_a_torn_one_is_reported(fs: DynFs, root: &Path) {
    let db = setup(&fs, root);
    upsert_range(&db, 0..10);
    drop(db);
    let wal_dir = collection_dir(fs.as_ref(), root).join("wal");
    let (seg, at, whole) = last_frame(fs.as_ref(), &wal_dir);
    let orig = read_file(fs.as_ref(), &seg);

    // One flipped byte inside the acknowledged last record: refused, named, nothing cut.
    let mut damaged = orig.clone();
    damaged[at + 40] ^= 0x21;
    write_file(fs.as_ref(), &seg, &damaged);
    let e = common::open_all(fs.clone(), root, options()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Wal(_)), "{e}");
    assert!(
        text.contains(&seg.display().to_string()) && text.contains("LSN 10"),
        "{text}"
    );
    assert_eq!(
        read_file(fs.as_ref(), &seg),
        damaged,
        "the refused open cut the log"
    );
    // Salvage mode opens it read-only: everything before the damage, nothing changed.
    {
        let db = Database::open_with_fs(
            fs.clone(),
            root,
            options().with_recovery_mode(RecoveryMode::Salvage),
        )
        .unwrap();
        let c = db.collection("c").unwrap();
        assert_eq!(c.len(), 9);
        assert!(c.upsert(Point::new(50, vec![1.0, 1.0])).is_err());
    }
    assert_eq!(
        read_file(fs.as_ref(), &seg),
        damaged,
        "salvage changed the log"
    );

    // The same record torn as a crash tears it (its end never arrived): cut, and said so.
    let mut torn = orig.clone();
    torn[at + 40..at + whole].fill(0);
    write_file(fs.as_ref(), &seg, &torn);
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), 9);
    let cut = c.stats().tail_cut_at_open.expect("the cut is reported");
    assert_eq!(
        (cut.lsn, cut.offset, cut.segment.clone()),
        (10, at as u64, seg.clone())
    );
    assert!(cut.bytes > 0 && cut.bytes <= whole as u64, "{cut:?}");
    let report = c.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.tail_cut_at_open, Some(cut));
    drop((c, db));
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert!(
        db.collection("c")
            .unwrap()
            .stats()
            .tail_cut_at_open
            .is_none()
    );
}

#[test]
fn a_damaged_last_record_is_refused_and_a_torn_one_is_reported_sim() {
    let fs = SimFs::new();
    a_damaged_last_record_is_refused_and_a_torn_one_is_reported(fs.shared(), Path::new("/db"));
}

#[test]
fn a_damaged_last_record_is_refused_and_a_torn_one_is_reported_real() {
    let dir = tempfile::tempdir().unwrap();
    a_damaged_last_record_is_refused_and_a_torn_one_is_reported(RealFs::shared(), dir.path());
}

/// Three checkpoints under a retention of two: the current one, and one kept for fallback.
fn three_generations(fs: &DynFs, root: &Path) {
    let db = setup(fs, root);
    for round in 0..3 {
        upsert_range(&db, round * 150..(round + 1) * 150);
        db.collection("c").unwrap().checkpoint().unwrap();
    }
    upsert_range(&db, 1000..1010);
}

fn problems(fs: &DynFs, root: &Path) -> Vec<String> {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let report = db.collection("c").unwrap().verify().unwrap();
    report.problems
}

fn every_damaged_older_generation_is_reported(fs: DynFs, root: &Path) {
    three_generations(&fs, root);
    let cp_dir = collection_dir(fs.as_ref(), root).join("checkpoints");
    let manifests = files_in(fs.as_ref(), &cp_dir, "manifest-");
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let older = manifests[0].clone();
    let orig = read_file(fs.as_ref(), &older);
    assert!(problems(&fs, root).is_empty());
    let mut cases = 0;
    let mut damage: Vec<Vec<u8>> = (0..orig.len())
        .step_by(7)
        .map(|at| {
            let mut b = orig.clone();
            b[at] ^= 0x10;
            b
        })
        .collect();
    damage.extend((0..orig.len()).step_by(11).map(|n| orig[..n].to_vec()));
    for bad in damage {
        write_file(fs.as_ref(), &older, &bad);
        let found = problems(&fs, root);
        assert!(
            found
                .iter()
                .any(|p| p.contains("generation 2") && p.contains("cannot be read")),
            "case {cases}: {found:?}"
        );
        cases += 1;
    }
    fs.remove_file(&older).unwrap();
    let found = problems(&fs, root);
    assert!(
        found.iter().any(|p| p.contains("generation 2")),
        "removed: {found:?}"
    );
    println!("damaged older manifests reported: {cases} cases");
}

#[test]
fn every_damaged_older_generation_is_reported_sim() {
    let fs = SimFs::new();
    every_damaged_older_generation_is_reported(fs.shared(), Path::new("/db"));
}

#[test]
fn every_damaged_older_generation_is_reported_real() {
    let dir = tempfile::tempdir().unwrap();
    every_damaged_older_generation_is_reported(RealFs::shared(), dir.path());
}

fn a_missing_log_segment_a_retained_generation_needs_is_reported(fs: DynFs, root: &Path) {
    three_generations(&fs, root);
    let wal_dir = collection_dir(fs.as_ref(), root).join("wal");
    let segs = files_in(fs.as_ref(), &wal_dir, "wal-");
    assert!(segs.len() >= 3, "{segs:?}");
    assert!(problems(&fs, root).is_empty());
    fs.remove_file(&segs[0]).unwrap();
    let found = problems(&fs, root);
    assert!(
        found
            .iter()
            .any(|p| p.contains("segments before it are missing") && p.contains("generation 2")),
        "{found:?}"
    );
}

#[test]
fn a_missing_log_segment_a_retained_generation_needs_is_reported_sim() {
    let fs = SimFs::new();
    a_missing_log_segment_a_retained_generation_needs_is_reported(fs.shared(), Path::new("/db"));
}

#[test]
fn a_missing_log_segment_a_retained_generation_needs_is_reported_real() {
    let dir = tempfile::tempdir().unwrap();
    a_missing_log_segment_a_retained_generation_needs_is_reported(RealFs::shared(), dir.path());
}
