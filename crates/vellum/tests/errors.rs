//! Errors a caller can act on: the first error names the root cause, poisoning is seen at
//! any depth, advice names the facade's own options, and no cause is told twice.

mod common;

use std::error::Error as _;
use std::path::Path;

use vellum::{CollectionConfig, Database, DatabaseOptions, Error, Metric, Point};
use vellum_fs::{Fault, FaultRule, SimFs};

fn options() -> DatabaseOptions {
    common::options(1 << 16, 64)
}

/// Every message in the chain, outermost first.
fn chain(e: &Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out
}

/// No message in the chain repeats one below it (a cause formatted into its wrapper's
/// message and also returned as its source would).
fn assert_no_cause_told_twice(e: &Error) {
    let all = chain(e);
    for (i, outer) in all.iter().enumerate() {
        for inner in &all[i + 1..] {
            assert!(!outer.contains(inner.as_str()), "told twice: {all:#?}");
        }
    }
}

#[test]
fn after_a_full_disk_during_a_checkpoint_the_first_error_a_writer_sees_names_it() {
    let mut failed_checkpoints = 0;
    for n in 1..40 {
        let fs = SimFs::new();
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new(2, Metric::L2))
            .unwrap();
        c.upsert_batch((0..50).map(|i| Point::new(i, vec![i as f32, 1.0])))
            .unwrap();
        fs.inject(FaultRule::nth_op(n, Fault::Enospc));
        let Err(e) = c.checkpoint() else {
            continue;
        };
        failed_checkpoints += 1;
        assert_no_cause_told_twice(&e);
        let text = chain(&e).join(" / ");
        assert!(text.contains("os error 28"), "op {n}: {text}");
        fs.clear_faults();
        let e = c.upsert(Point::new(1000, vec![0.0, 0.0])).unwrap_err();
        assert!(e.is_poisoned(), "op {n}: {e}");
        let text = chain(&e).join(" / ");
        assert!(
            text.contains("os error 28"),
            "op {n}: the writer's first error hides the root cause: {text}"
        );
    }
    assert!(failed_checkpoints > 3, "{failed_checkpoints}");
}

#[test]
fn poisoning_is_seen_through_every_layer() {
    let poisoned = || vellum_fs::Error::Poisoned {
        cause: "EIO".into(),
    };
    let nested = Error::Store(vellum_mmap_vectors::Error::Checkpoint(
        vellum_checkpoint::Error::Fs(poisoned()),
    ));
    assert!(nested.is_poisoned());
    assert!(Error::Checkpoint(vellum_checkpoint::Error::Fs(poisoned())).is_poisoned());
    assert!(Error::Snapshot(vellum_snapshot_format::Error::Fs(poisoned())).is_poisoned());
    assert!(Error::Wal(vellum_wal::Error::Fs(poisoned())).is_poisoned());
    assert!(
        !Error::Store(vellum_mmap_vectors::Error::Fs(vellum_fs::Error::io(
            vellum_fs::OpKind::Write,
            "/x",
            std::io::Error::from_raw_os_error(5),
        )))
        .is_poisoned()
    );
}

#[test]
fn a_damaged_current_checkpoint_advises_the_facade_option_and_tells_each_cause_once() {
    let fs = SimFs::new();
    {
        let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new(2, Metric::L2))
            .unwrap();
        c.upsert(Point::new(1, vec![1.0, 2.0])).unwrap();
        c.checkpoint().unwrap();
        c.upsert(Point::new(2, vec![1.0, 2.0])).unwrap();
        c.checkpoint().unwrap();
    }
    let colls = Path::new("/db/collections");
    use vellum_fs::Fs;
    let dir = colls
        .join(fs.list_dir(colls).unwrap().pop().unwrap())
        .join("checkpoints");
    let data = dir.join(
        fs.list_dir(&dir)
            .unwrap()
            .into_iter()
            .rfind(|n| n.starts_with("data-"))
            .unwrap(),
    );
    fs.tamper(&data, |b| b[0] ^= 0xFF).unwrap();
    let e = common::open_all(fs.shared(), "/db", options()).unwrap_err();
    assert!(matches!(e, Error::CheckpointDamaged { .. }), "{e}");
    let text = chain(&e).join("\n");
    assert!(
        text.contains("with_fallback_to_previous_checkpoint") && !text.contains("LoadOptions"),
        "{text}"
    );
    assert_no_cause_told_twice(&e);
    let db = Database::open_with_fs(
        fs.shared(),
        "/db",
        options().with_fallback_to_previous_checkpoint(true),
    )
    .unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 2);
}

#[test]
fn io_and_format_errors_tell_their_cause_once() {
    let e = vellum_fs::Error::io(
        vellum_fs::OpKind::Write,
        "/x",
        std::io::Error::from_raw_os_error(28),
    );
    assert!(e.to_string().contains("os error 28"));
    assert!(
        e.source().is_none(),
        "the io error is in the message already"
    );
    assert_no_cause_told_twice(&Error::Fs(e));
}
