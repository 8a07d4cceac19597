//! Advisory file locks and fail-point pauses: the same lock semantics on both file systems,
//! and a paused thread that lets others (and crash images) go on.

use std::path::Path;
use std::time::Duration;

use vellum_fs::{Fs, RealFs, SimFs};

fn one_holder_at_a_time(fs: &dyn Fs, path: &Path) {
    let first = fs.create(path).unwrap();
    let second = fs.open(path).unwrap();
    assert!(first.try_lock_exclusive().unwrap(), "a free lock is taken");
    assert!(
        first.try_lock_exclusive().unwrap(),
        "the holder may ask again"
    );
    assert!(
        !second.try_lock_exclusive().unwrap(),
        "a second handle is refused"
    );
    drop(first);
    assert!(
        second.try_lock_exclusive().unwrap(),
        "dropping the holder frees it"
    );
}

#[test]
fn a_lock_has_one_holder_until_its_handle_is_dropped_on_both_file_systems() {
    let dir = tempfile::tempdir().unwrap();
    one_holder_at_a_time(&RealFs::new(), &dir.path().join("LOCK"));
    let sim = SimFs::new();
    one_holder_at_a_time(&sim, Path::new("/LOCK"));
}

fn one_directory_holder_at_a_time(fs: &dyn Fs, dir: &Path) {
    let first = fs
        .try_lock_dir(dir)
        .unwrap()
        .expect("a free directory lock is taken");
    assert!(
        fs.try_lock_dir(dir).unwrap().is_none(),
        "a second lock is refused"
    );
    // A lock file inside it does not interfere: the directory's lock is its own.
    let inside = fs.create(&dir.join("LOCK")).unwrap();
    assert!(inside.try_lock_exclusive().unwrap());
    fs.remove_file(&dir.join("LOCK")).unwrap();
    assert!(
        fs.try_lock_dir(dir).unwrap().is_none(),
        "still held after the file went"
    );
    drop(first);
    assert!(
        fs.try_lock_dir(dir).unwrap().is_some(),
        "dropping the guard frees it"
    );
    assert!(fs.try_lock_dir(&dir.join("missing")).is_err());
}

#[test]
fn a_directory_lock_has_one_holder_until_its_guard_is_dropped_on_both_file_systems() {
    let dir = tempfile::tempdir().unwrap();
    one_directory_holder_at_a_time(&RealFs::new(), dir.path());
    let sim = SimFs::new();
    sim.create_dir_all(Path::new("/db")).unwrap();
    one_directory_holder_at_a_time(&sim, Path::new("/db"));
}

#[test]
fn a_crash_image_holds_no_locks() {
    let sim = SimFs::new();
    let held = sim.create(Path::new("/LOCK")).unwrap();
    assert!(held.try_lock_exclusive().unwrap());
    sim.sync_dir(Path::new("/")).unwrap();
    let image = sim.crash_drop_unsynced();
    let after = image.open(Path::new("/LOCK")).unwrap();
    assert!(after.try_lock_exclusive().unwrap());
}

#[test]
fn a_paused_fail_point_holds_one_thread_while_others_and_crash_images_go_on() {
    let sim = SimFs::new();
    let pause = sim.pause_at("held");
    let worker = {
        let sim = sim.clone();
        std::thread::spawn(move || {
            sim.fail_point("held").unwrap();
            sim.create(Path::new("/after")).unwrap();
        })
    };
    assert!(pause.wait_reached(Duration::from_secs(60)));
    // The held thread is outside the file system's lock: this thread and images proceed.
    sim.create(Path::new("/meanwhile")).unwrap();
    assert!(!sim.exists(Path::new("/after")).unwrap());
    let image = sim.crash_drop_unsynced();
    assert!(!image.exists(Path::new("/after")).unwrap());
    pause.resume();
    worker.join().unwrap();
    assert!(sim.exists(Path::new("/after")).unwrap());
    // One-shot: the next thread passes straight through.
    sim.fail_point("held").unwrap();
}
