//! Atomic replace: after any crash image at any point of a replace, the file holds exactly
//! the old or exactly the new contents. The same checker is run on replace procedures with
//! one step removed, and must catch each of them: that is what proves the test can fail.

mod common;

use std::path::Path;

use common::read_all;
use vellum_fs::{
    CrashHarness, CrashModel, CrashPoints, CrashReport, Fs, RealFs, Result, SimFs, atomic_replace,
    create_dir_all_durable, tmp_path,
};

const OLD_LEN: usize = 3000;
const NEW_LEN: usize = 9000;

/// A replace procedure under test.
type Replace = fn(&dyn Fs, &Path, &[u8]) -> Result<()>;

fn without_file_sync(fs: &dyn Fs, path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let file = fs.create(&tmp)?;
    file.write_at(contents, 0)?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(path.parent().unwrap())
}

fn without_dir_sync(fs: &dyn Fs, path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let file = fs.create(&tmp)?;
    file.write_at(contents, 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, path)
}

fn in_place(fs: &dyn Fs, path: &Path, contents: &[u8]) -> Result<()> {
    let file = fs.create(path)?;
    file.write_at(contents, 0)?;
    file.sync_data()?;
    fs.sync_dir(path.parent().unwrap())
}

/// Sets up `/db/config` with old contents durably, then replaces it. Returns whether the
/// setup completed and whether the replace was acknowledged.
fn scenario(fs: &SimFs, replace: Replace) -> (bool, bool) {
    let path = Path::new("/db/config");
    let old = vec![b'o'; OLD_LEN];
    let new = vec![b'n'; NEW_LEN];
    let setup =
        create_dir_all_durable(fs, Path::new("/db")).and_then(|()| atomic_replace(fs, path, &old));
    if setup.is_err() {
        return (false, false);
    }
    (true, replace(fs, path, &new).is_ok())
}

fn check(image: &SimFs, (setup_done, replaced): &(bool, bool)) -> std::result::Result<(), String> {
    let got = read_all(image, Path::new("/db/config")).map_err(|e| e.to_string())?;
    match got {
        Some(b) if b == vec![b'n'; NEW_LEN] => Ok(()),
        Some(b) if b == vec![b'o'; OLD_LEN] && !replaced => Ok(()),
        None if !setup_done => Ok(()),
        Some(b) => Err(format!(
            "mixed or stale contents: {} bytes, first {:?}, last {:?} (acknowledged: {replaced})",
            b.len(),
            b.first(),
            b.last()
        )),
        None => Err(format!(
            "file missing (setup done: {setup_done}, acknowledged: {replaced})"
        )),
    }
}

fn harness(model: CrashModel) -> CrashHarness {
    CrashHarness {
        model,
        images_per_point: 512,
        points: CrashPoints::EveryOp,
        seed: 42,
    }
}

fn run(replace: Replace, model: CrashModel) -> CrashReport {
    harness(model).run(|fs| scenario(fs, replace), check)
}

fn catches(replace: Replace, model: CrashModel) -> bool {
    match harness(model).try_run(|fs| scenario(fs, replace), check) {
        Ok(report) => {
            println!("not caught: {report}");
            false
        }
        Err(failure) => {
            println!("caught as expected: {failure}");
            true
        }
    }
}

#[test]
fn every_crash_image_of_a_replace_holds_the_old_or_the_new_contents() {
    let mut total = CrashReport::default();
    for model in [
        CrashModel::drop_unsynced(),
        CrashModel::any_subset(),
        CrashModel::torn_512(),
        CrashModel::torn_4k(),
    ] {
        total.add(run(atomic_replace, model));
    }
    println!("atomic replace: {total}");
    assert!(total.images > 500, "too few images checked: {total}");
}

#[test]
fn removing_the_file_sync_from_a_replace_is_caught() {
    assert!(catches(without_file_sync, CrashModel::torn_512()));
}

#[test]
fn removing_the_directory_sync_from_a_replace_is_caught() {
    assert!(catches(without_dir_sync, CrashModel::torn_512()));
}

#[test]
fn overwriting_in_place_is_caught() {
    assert!(catches(in_place, CrashModel::torn_512()));
}

#[test]
fn a_replace_on_the_real_file_system_leaves_exactly_the_new_contents() {
    let dir = tempfile::tempdir().unwrap();
    let fs = RealFs::new();
    let path = dir.path().join("sub").join("config");
    create_dir_all_durable(&fs, path.parent().unwrap()).unwrap();
    atomic_replace(&fs, &path, &[1; OLD_LEN]).unwrap();
    atomic_replace(&fs, &path, &[2; NEW_LEN]).unwrap();
    assert_eq!(read_all(&fs, &path).unwrap().unwrap(), vec![2; NEW_LEN]);
    assert!(
        !fs.exists(&tmp_path(&path)).unwrap(),
        "temporary file left behind"
    );
}
