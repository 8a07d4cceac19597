//! Fault injection: countdown faults, named fail points, power cuts, the Linux behaviour of a
//! failed fsync, and the fail-stop latch.

mod common;

use std::path::Path;

use common::read_all;
use vellum_fs::{
    Error, FailAction, FailStop, Fault, FaultRule, File, Fs, OpKind, SimFs, create_dir_all_durable,
};

fn setup() -> (SimFs, Box<dyn File>) {
    let fs = SimFs::new();
    create_dir_all_durable(&fs, Path::new("/d")).unwrap();
    let f = fs.create(Path::new("/d/f")).unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    (fs, f)
}

/// A tiny engine that follows the rules: every I/O result goes through its latch.
struct Engine {
    file: Box<dyn File>,
    latch: FailStop,
}

impl Engine {
    fn write_durably(&self, data: &[u8]) -> vellum_fs::Result<()> {
        self.latch.run(|| {
            self.file.append(data)?;
            self.file.sync_data()
        })
    }
}

#[test]
fn a_failed_sync_latches_fail_stop_and_later_writes_are_refused() {
    let (fs, file) = setup();
    let engine = Engine {
        file,
        latch: FailStop::new(),
    };
    engine.write_durably(b"one").unwrap();
    fs.inject(FaultRule::nth_of(OpKind::SyncData, 1, Fault::Eio));
    let first = engine.write_durably(b"two").unwrap_err();
    assert!(first.to_string().contains("os error 5"), "{first}");
    // The fault is one-shot, so the file system would accept the next write: the latch must
    // refuse it anyway.
    let second = engine.write_durably(b"three").unwrap_err();
    assert!(second.is_poisoned(), "{second}");
    assert!(second.to_string().contains("reopen"), "{second}");
    assert!(
        second.to_string().contains("os error 5"),
        "names the first cause: {second}"
    );
    assert_eq!(fs.stats().faults_fired, 1);
}

#[test]
fn writes_lost_by_a_failed_sync_never_reach_the_disk_even_after_a_retry_succeeds() {
    let (fs, file) = setup();
    file.write_at(b"durable", 0).unwrap();
    file.sync_data().unwrap();
    file.write_at(b"LOST!!!", 0).unwrap();
    fs.inject(FaultRule::nth_of(OpKind::SyncData, 1, Fault::Eio));
    assert!(file.sync_data().is_err());
    // Reads still see the write (the page cache keeps it) ...
    let mut buf = [0; 7];
    file.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"LOST!!!");
    // ... and a retried sync "succeeds", but the pages were marked clean: the write is gone.
    file.sync_data().unwrap();
    fs.cut_power();
    let image = fs.crash_drop_unsynced();
    assert_eq!(
        read_all(&image, Path::new("/d/f")).unwrap().unwrap(),
        b"durable"
    );
}

#[test]
fn a_full_disk_fails_writes_until_cleared_when_sticky() {
    let (fs, file) = setup();
    fs.inject(FaultRule::nth_of(OpKind::Write, 2, Fault::Enospc).sticky());
    file.append(b"fits").unwrap();
    for _ in 0..3 {
        let e = file.append(b"does not fit").unwrap_err();
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull), "{e}");
    }
    fs.clear_faults();
    file.append(b"fits again").unwrap();
    assert_eq!(fs.read_file(Path::new("/d/f")).unwrap(), b"fitsfits again");
}

#[test]
fn a_short_write_stores_half_and_reports_an_error() {
    let (fs, file) = setup();
    fs.inject(FaultRule::nth_of(OpKind::Write, 1, Fault::ShortWrite).on_path("/d/f"));
    assert!(file.write_at(&[9; 100], 0).is_err());
    assert_eq!(file.len().unwrap(), 50);
}

#[test]
fn the_nth_operation_of_any_kind_fails_exactly_once() {
    let (fs, file) = setup();
    let before = fs.stats().ops;
    fs.inject(FaultRule::nth_op(3, Fault::Eio));
    assert!(file.append(b"1").is_ok());
    assert!(file.append(b"2").is_ok());
    assert!(file.len().is_err(), "third operation fails");
    assert!(file.append(b"3").is_ok());
    assert_eq!(fs.stats().ops - before, 4);
}

#[test]
fn named_fail_points_count_hits_and_fire_on_the_nth() {
    let fs = SimFs::new();
    assert!(fs.fail_point("layer::step").is_ok());
    fs.arm_fail_point("layer::step", 2, FailAction::Error(Fault::Eio));
    assert!(fs.fail_point("layer::step").is_ok());
    assert!(fs.fail_point("layer::step").is_err());
    assert!(fs.fail_point("layer::step").is_ok());
    assert_eq!(fs.fail_point_hits("layer::step"), 3);
    assert_eq!(fs.fail_points_seen(), vec!["layer::step".to_owned()]);
}

#[test]
fn a_power_cut_at_a_fail_point_freezes_the_file_system() {
    let (fs, file) = setup();
    fs.arm_fail_point("before_sync", 1, FailAction::PowerCut);
    file.append(b"pending").unwrap();
    assert!(fs.fail_point("before_sync").is_err());
    assert!(fs.is_powered_off());
    let e = file.sync_data().unwrap_err();
    assert!(e.to_string().contains("power loss"), "{e}");
    assert!(fs.create(Path::new("/d/g")).is_err());
    let image = fs.crash_drop_unsynced();
    assert_eq!(read_all(&image, Path::new("/d/f")).unwrap().unwrap(), b"");
}

#[test]
fn cutting_power_after_n_operations_lets_exactly_n_run() {
    let (fs, file) = setup();
    let done = fs.stats().ops;
    fs.cut_power_after(done + 2);
    assert!(file.append(b"a").is_ok());
    assert!(file.append(b"b").is_ok());
    assert!(matches!(file.append(b"c"), Err(Error::Io { .. })));
    assert!(fs.is_powered_off());
}

#[test]
fn check_fail_points_names_points_never_reached_and_points_never_declared() {
    let fs = SimFs::new();
    fs.fail_point("x::reached").unwrap();
    fs.fail_point("x::stray").unwrap();
    fs.fail_point("other::ignored").unwrap();
    let err = fs
        .check_fail_points("x::", &["x::reached", "x::missed"])
        .unwrap_err();
    assert!(
        err.contains("x::missed") && err.contains("x::stray"),
        "{err}"
    );
    assert!(!err.contains("other::ignored"), "{err}");
    fs.check_fail_points("x::", &["x::reached", "x::stray"])
        .unwrap();
}

#[test]
fn a_space_limit_refuses_growth_past_it_names_what_allocate_needed_and_frees_unlinked_files() {
    let (fs, f) = setup();
    fs.limit_space(Some(1_000));
    f.write_at(&[7; 800], 0).unwrap();
    let e = f.allocate(1_200).unwrap_err();
    match &e {
        Error::NoSpace {
            needed_bytes, path, ..
        } => {
            assert_eq!(*needed_bytes, 400);
            assert_eq!(path, Path::new("/d/f"));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("400 more bytes were needed"), "{e}");
    assert_eq!(f.len().unwrap(), 800, "nothing changed");
    let g = fs.create(Path::new("/d/g")).unwrap();
    assert_eq!(
        g.write_at(&[1; 300], 0).unwrap_err().io_kind(),
        Some(std::io::ErrorKind::StorageFull)
    );
    assert!(g.set_len(300).is_err());
    g.write_at(&[1; 200], 0).unwrap();
    // Unlinked, the first file's bytes are free again.
    drop(f);
    fs.remove_file(Path::new("/d/f")).unwrap();
    g.allocate(900).unwrap();
    fs.limit_space(None);
    g.allocate(1 << 20).unwrap();
}
