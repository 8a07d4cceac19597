//! What an operator sees: the counters `stats()` keeps since open, and the `tracing` events
//! on open, recovery, checkpoints and snapshots (silent unless a subscriber is installed).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point, SyncPolicy};
use vellum_fs::{Fault, FaultRule, OpKind, SimFs};

fn options() -> DatabaseOptions {
    DatabaseOptions::default()
        .with_background_checkpoints(false)
        .with_sync_policy(SyncPolicy::Always)
}

fn point(i: u64) -> Point {
    Point::new(i, vec![i as f32, 1.0, 2.0])
}

#[test]
fn stats_count_writes_searches_syncs_and_checkpoints_since_open() {
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(3, Metric::L2))
        .unwrap();
    c.upsert_batch((0..6).map(point)).unwrap();
    c.upsert_batch((6..10).map(point)).unwrap();
    c.delete(3).unwrap();
    for _ in 0..3 {
        c.search(&[1.0, 1.0, 2.0], 2).unwrap();
    }
    let before = c.stats();
    assert_eq!(
        (before.writes_since_open, before.searches_since_open),
        (11, 3)
    );
    // One sync per acknowledged write call under `Always` with one writer.
    assert_eq!(before.wal_syncs_since_open, 3);
    assert!(before.wal_sync_time_max <= before.wal_sync_time_total);
    assert_eq!(
        before.wal_bytes_written_since_open,
        before.wal_bytes - 32 * before.wal_segments
    );
    assert_eq!(before.checkpoints_since_open, 0);
    let info = c.checkpoint().unwrap();
    let after = c.stats();
    assert_eq!(after.checkpoints_since_open, 1);
    assert_eq!(after.checkpoint_time_total, info.elapsed);
    assert_eq!(after.checkpoint_lock_held_max, info.lock_held);
    drop((c, db));
    // Counters start again at open: the replay is not counted as writes.
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let s = db.collection("c").unwrap().stats();
    assert_eq!(
        (
            s.writes_since_open,
            s.searches_since_open,
            s.wal_syncs_since_open
        ),
        (0, 0, 0)
    );
}

/// Every event of this test binary, formatted. One global subscriber rather than a scoped
/// one per test: `tracing` caches whether a call site is enabled, and a call site first hit
/// on a thread with no subscriber (another test running meanwhile) would stay disabled.
/// Tests run in parallel, so each looks for its own collection's name.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Captured;

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` and returns what was logged meanwhile (other tests' events included).
fn captured<T>(f: impl FnOnce() -> T) -> (T, String) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(|| Captured)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    let from = LOG.lock().unwrap().len();
    let value = f();
    let text = String::from_utf8_lossy(&LOG.lock().unwrap()[from..]).into_owned();
    (value, text)
}

#[test]
fn opens_recoveries_checkpoints_and_snapshots_are_traced() {
    let fs = SimFs::new();
    {
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db
            .create_collection("traced", CollectionConfig::new(3, Metric::L2))
            .unwrap();
        c.upsert_batch((0..7).map(point)).unwrap();
    }
    let ((), log) = captured(|| {
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db.collection("traced").unwrap();
        c.checkpoint().unwrap();
        db.export_snapshot("traced", Path::new("/c.vsnap"), vellum::Compression::None)
            .unwrap();
    });
    for expected in [
        "database opened",
        "collection opened: checkpoint loaded, log tail replayed collection=\"traced\" generation=0 graph_loaded=false replayed=7",
        "checkpoint committed collection=traced generation=1 lsn=7",
        "lock_held_ms=",
        "snapshot exported collection=\"traced\"",
    ] {
        assert!(log.contains(expected), "no {expected:?} in:\n{log}");
    }
}

#[test]
fn a_failed_fsync_is_reported_as_an_error_event_naming_the_file() {
    let fs = SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let c = db
        .create_collection("fsync", CollectionConfig::new(3, Metric::L2))
        .unwrap();
    c.upsert(point(1)).unwrap();
    fs.inject(FaultRule::nth_of(OpKind::SyncData, 1, Fault::Eio).on_path("wal"));
    let (result, log) = captured(|| c.upsert(point(2)));
    assert!(
        result.is_err(),
        "the write was acknowledged without its sync"
    );
    assert!(
        log.contains("ERROR")
            && log.contains("I/O failed")
            && log.contains("I/O failed")
            && log.contains("/wal/"),
        "{log}"
    );
}
