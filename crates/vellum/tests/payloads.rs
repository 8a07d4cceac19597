//! The payload store (docs/format/payloads.md): a checkpoint writes the payloads that
//! changed and carries the rest; overwritten payloads are reclaimed; the run count stays
//! bounded; damage is reported by file and offset, never read as data; the same on the real
//! file system.

mod common;

use std::path::{Path, PathBuf};

use vellum::fs::{DynFs, Fs, RealFs, SimFs};
use vellum::{CollectionConfig, Database, Metric, Point, SearchFilter, SearchParams};

const DIM: usize = 4;

fn payload(id: u64, version: u64) -> Vec<u8> {
    // About 1 KiB, different per id and version.
    let mut p = format!("{{\"id\":{id},\"v\":{version},\"text\":\"").into_bytes();
    p.extend((0..1000).map(|i| b'a' + ((id + version + i) % 26) as u8));
    p.extend_from_slice(b"\"}");
    p
}

fn open(fs: DynFs, root: &Path) -> Database {
    Database::open_with_fs(
        fs,
        root,
        common::options(1 << 20, 256).with_max_payload_runs(8),
    )
    .unwrap()
}

fn upsert_range(c: &vellum::Collection, ids: impl Iterator<Item = u64>, version: u64) {
    let points: Vec<Point> = ids
        .map(|id| Point::new(id, common::vector(id, DIM)).with_payload(payload(id, version)))
        .collect();
    for chunk in points.chunks(200) {
        c.upsert_batch(chunk.iter().cloned()).unwrap();
    }
}

/// The payload run files on disk, with their lengths.
fn run_files(fs: &dyn Fs, root: &Path) -> Vec<(PathBuf, u64)> {
    common::tree(fs, root)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("payload-run-"))
        .map(|(p, b)| (p, b.len() as u64))
        .collect()
}

fn check_payloads(
    c: &vellum::Collection,
    ids: impl Iterator<Item = u64>,
    version: impl Fn(u64) -> u64,
) {
    for id in ids {
        let got = c.get(id).unwrap().unwrap().payload;
        assert_eq!(
            got.as_deref(),
            Some(&payload(id, version(id))[..]),
            "id {id}"
        );
    }
}

/// A checkpoint after changing ten of a thousand ~1 KiB payloads writes a run of about ten
/// KiB and carries the first run; reopening reads every payload from the mapped runs.
fn a_small_change_writes_a_small_run(fs: DynFs, root: &Path) {
    {
        let db = open(fs.clone(), root);
        let c = db
            .create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat())
            .unwrap();
        upsert_range(&c, 0..1000, 1);
        c.checkpoint().unwrap();
        let first = run_files(fs.as_ref(), root);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].1 > 1000 * 1000, "{first:?}");
        upsert_range(&c, 0..10, 2);
        let stats = c.stats();
        assert_eq!(stats.payloads, 1000);
        assert!(stats.payload_unsaved_bytes >= 10 * 1000);
        c.checkpoint().unwrap();
        let runs = run_files(fs.as_ref(), root);
        assert_eq!(runs.len(), 2, "{runs:?}");
        let newest = runs.iter().find(|r| !first.contains(r)).unwrap();
        assert!(
            newest.1 < 12 * 1100,
            "the new run holds only the change: {newest:?}"
        );
        let stats = c.stats();
        assert_eq!((stats.payload_runs, stats.payload_unsaved_bytes), (2, 0));
        check_payloads(&c, 0..1000, |id| if id < 10 { 2 } else { 1 });
    }
    let db = open(fs, root);
    let c = db.collection("c").unwrap();
    check_payloads(&c, 0..1000, |id| if id < 10 { 2 } else { 1 });
    let report = c.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.payload_records_checked, 1010);
}

#[test]
fn a_checkpoint_writes_the_changed_payloads_and_carries_the_rest() {
    let fs = SimFs::new();
    a_small_change_writes_a_small_run(fs.shared(), Path::new("/db"));
}

#[test]
fn a_checkpoint_writes_the_changed_payloads_and_carries_the_rest_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    a_small_change_writes_a_small_run(RealFs::shared(), &dir.path().join("db"));
}

/// Rewriting every payload again and again, a slice per checkpoint: the runs' bytes stay
/// within a small multiple of the live bytes and the run count within its bound.
fn overwrites_are_reclaimed(fs: DynFs, root: &Path) {
    let db = open(fs.clone(), root);
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat())
        .unwrap();
    upsert_range(&c, 0..400, 0);
    c.checkpoint().unwrap();
    let mut version = vec![0u64; 400];
    let mut most_runs = 0;
    for round in 1..=40u64 {
        let start = (round * 37) % 400;
        let ids: Vec<u64> = (start..start + 50).map(|i| i % 400).collect();
        upsert_range(&c, ids.iter().copied(), round);
        for &id in &ids {
            version[id as usize] = round;
        }
        if round % 7 == 0 {
            c.delete(start).unwrap();
            c.upsert(
                Point::new(start, common::vector(start, DIM)).with_payload(payload(start, round)),
            )
            .unwrap();
        }
        c.checkpoint().unwrap();
        let stats = c.stats();
        most_runs = most_runs.max(stats.payload_runs);
        assert!(
            stats.payload_run_bytes <= 3 * stats.payload_live_bytes,
            "round {round}: {} bytes of runs for {} live",
            stats.payload_run_bytes,
            stats.payload_live_bytes
        );
        assert!(run_files(fs.as_ref(), root).len() as u64 >= stats.payload_runs);
        // Every payload still reads, including those moved out of compacted runs.
        check_payloads(&c, 0..400, |id| version[id as usize]);
    }
    assert!(most_runs <= 8, "{most_runs} runs");
    check_payloads(&c, 0..400, |id| version[id as usize]);
    drop((c, db));
    let db = open(fs, root);
    let c = db.collection("c").unwrap();
    check_payloads(&c, 0..400, |id| version[id as usize]);
    assert!(c.verify().unwrap().is_ok());
}

#[test]
fn overwritten_payloads_are_reclaimed_and_the_run_count_stays_bounded() {
    let fs = SimFs::new();
    overwrites_are_reclaimed(fs.shared(), Path::new("/db"));
}

#[test]
fn overwritten_payloads_are_reclaimed_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    overwrites_are_reclaimed(RealFs::shared(), &dir.path().join("db"));
}

#[test]
fn a_flipped_byte_in_a_payload_run_is_an_error_naming_the_file_and_offset() {
    let fs = SimFs::new();
    let root = Path::new("/db");
    {
        let db = open(fs.shared(), root);
        let c = db
            .create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat())
            .unwrap();
        upsert_range(&c, 0..20, 1);
        c.checkpoint().unwrap();
    }
    let (run, _) = run_files(&fs, root).remove(0);
    // Inside the payload of the fourth record (header 24 bytes, records 16 + ~1 KiB).
    let at = 24 + 3 * (16 + payload(0, 1).len()) + 100;
    fs.tamper(&run, |b| b[at] ^= 0x20).unwrap();
    let db = open(fs.shared(), root);
    let c = db.collection("c").unwrap();
    let err = c.get(3).unwrap_err().to_string();
    let name = run.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.contains(&name) && err.contains("offset") && err.contains("id 3"),
        "{err}"
    );
    assert_eq!(c.get(4).unwrap().unwrap().payload, Some(payload(4, 1)));
    let report = c.verify().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&name) && p.contains("offset")),
        "{:?}",
        report.problems
    );
    // A filter that reads the damaged payload fails the search; it does not skip the point.
    let pred = |p: Option<&[u8]>| p.is_some();
    let err = c
        .search_with(
            &common::vector(3, DIM),
            5,
            &SearchParams {
                filter: Some(SearchFilter::Payload(&pred)),
                ..SearchParams::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains(&name), "{err}");
    // Replacing the point without a payload leaves the damaged record unreferenced.
    c.upsert(Point::new(3, common::vector(3, DIM))).unwrap();
    assert_eq!(c.get(3).unwrap().unwrap().payload, None);
}

#[test]
fn unsaved_payload_bytes_past_their_threshold_ask_for_a_checkpoint() {
    let fs = SimFs::new();
    let options = common::options(1 << 20, 256).with_checkpoint_after_payload_bytes(32 << 10);
    let db = Database::open_with_fs(fs.shared(), "/db", options).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat())
        .unwrap();
    // 20 payloads of ~1 KiB: under the threshold, and under every other one.
    upsert_range(&c, 0..20, 1);
    assert_eq!(db.maintain().unwrap().checkpoints, 0);
    upsert_range(&c, 20..40, 1);
    assert_eq!(db.maintain().unwrap().checkpoints, 1);
    assert_eq!(c.stats().payload_unsaved_bytes, 0);
}

#[test]
fn writers_checkpoint_when_unsaved_payloads_pass_twice_their_threshold() {
    let fs = SimFs::new();
    let options = common::options(1 << 20, 256).with_checkpoint_after_payload_bytes(16 << 10);
    let db = Database::open_with_fs(fs.shared(), "/db", options).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat())
        .unwrap();
    let mut most = 0;
    for id in 0..200 {
        c.upsert(Point::new(id, common::vector(id, DIM)).with_payload(payload(id, 1)))
            .unwrap();
        most = most.max(c.stats().payload_unsaved_bytes);
    }
    // No background checkpoints here: the writers kept the unsaved bytes bounded.
    assert!(most < (32 << 10) + 2 * 1100, "{most} unsaved bytes");
    assert!(c.stats().generation >= 5, "{}", c.stats().generation);
    check_payloads(&c, 0..200, |_| 1);
}

#[test]
fn hits_carry_payloads_and_vectors_when_asked_and_get_many_keeps_the_order_given() {
    let fs = SimFs::new();
    let db = open(fs.shared(), Path::new("/db"));
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat())
        .unwrap();
    upsert_range(&c, 0..30, 1);
    c.upsert(Point::new(30, common::vector(30, DIM))).unwrap();
    c.checkpoint().unwrap();
    upsert_range(&c, 0..3, 2);
    let q = common::vector(2, DIM);
    let plain = c.search(&q, 5).unwrap();
    assert!(
        plain
            .iter()
            .all(|h| h.payload.is_none() && h.vector.is_none())
    );
    let full = c
        .search_with(
            &q,
            5,
            &SearchParams {
                with_payload: true,
                with_vector: true,
                ..SearchParams::default()
            },
        )
        .unwrap();
    assert_eq!(
        full.iter().map(|h| h.id).collect::<Vec<_>>(),
        plain.iter().map(|h| h.id).collect::<Vec<_>>()
    );
    for h in &full {
        let p = c.get(h.id).unwrap().unwrap();
        assert_eq!(
            (&h.payload, h.vector.as_ref()),
            (&p.payload, Some(&p.vector)),
            "{}",
            h.id
        );
    }
    let got = c.get_many(&[30, 2, 999, 7]).unwrap();
    assert_eq!(got.iter().map(|p| p.id).collect::<Vec<_>>(), [30, 2, 7]);
    assert_eq!(got[0].payload, None);
    assert_eq!(got[1].payload.as_deref(), Some(&payload(2, 2)[..]));
    assert_eq!(got[2].payload.as_deref(), Some(&payload(7, 1)[..]));
}
