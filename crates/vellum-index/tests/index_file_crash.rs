//! `Hnsw::save` over an existing index file, with the power cut after every file-system
//! operation: every crash image opens (never an error) to exactly the old or exactly the
//! new index, and to the new one once the save returned. The same check run on a file
//! system that drops the save's file sync, or its directory sync, must fail: that is what
//! proves it can. Run with `--nocapture` to see how many images were checked.

mod common;

use std::path::Path;

use common::random_data;
use vellum_fs::{
    CrashHarness, CrashModel, CrashPoints, CrashReport, DirLock, File, Fs, MapMut, ReadMap, SimFs,
};
use vellum_index::{Hnsw, HnswParams, IndexView, Metric, OwnedVectors};

const PATH: &str = "/idx/points.index";
const DIM: usize = 4;

/// An index and its vectors as the test expects to find them.
struct Version {
    index: Hnsw,
    vectors: OwnedVectors,
}

fn version(ids: std::ops::Range<u64>, seed: u64) -> Version {
    let ids: Vec<u64> = ids.collect();
    let data = random_data(seed, ids.len(), DIM);
    let mut vectors = OwnedVectors::new(DIM);
    for (&id, row) in ids.iter().zip(data.chunks_exact(DIM)) {
        vectors.insert(id, row).unwrap();
    }
    let params = HnswParams {
        m: 4,
        ef_construction: 32,
        ef_search: 16,
        seed: seed + 1,
    };
    let index = Hnsw::new(DIM, Metric::L2, params).unwrap();
    index.insert_batch(&vectors, &ids).unwrap();
    Version { index, vectors }
}

/// Whether `view` holds exactly `v`: the same ids, each with its vector, each found by a
/// search for that vector at distance 0.
fn holds(view: &IndexView, v: &Version) -> bool {
    let mut ids = v.vectors.ids().to_vec();
    ids.sort_unstable();
    view.ids() == ids
        && ids.iter().all(|&id| {
            let want = v.vectors.get(id).unwrap();
            view.vector(id) == Some(want)
                && view
                    .search(want, 1)
                    .unwrap()
                    .first()
                    .map(|h| (h.id, h.distance))
                    == Some((id, 0.0))
        })
}

/// What the scenario got done before the power went.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    old_saved: bool,
    new_saved: bool,
}

/// Saves the old version durably, then the new one over it through `second` (the file
/// system itself, or one with a step removed).
fn scenario(fs: &SimFs, old: &Version, new: &Version, second: Second) -> Outcome {
    let setup = vellum_fs::create_dir_all_durable(fs, Path::new("/idx"))
        .map_err(vellum_index::Error::from)
        .and_then(|()| old.index.save(fs, PATH, &old.vectors));
    if setup.is_err() {
        return Outcome {
            old_saved: false,
            new_saved: false,
        };
    }
    let fs2 = second(fs);
    Outcome {
        old_saved: true,
        new_saved: new.index.save(fs2.as_ref(), PATH, &new.vectors).is_ok(),
    }
}

fn check(image: &SimFs, out: &Outcome, old: &Version, new: &Version) -> Result<(), String> {
    let view = match IndexView::open(image, PATH) {
        Ok(view) => view,
        Err(vellum_index::Error::Fs(e)) if e.is_not_found() && !out.old_saved => return Ok(()),
        Err(e) => return Err(format!("{out:?}: the file does not open: {e}")),
    };
    if holds(&view, new) {
        return Ok(());
    }
    if holds(&view, old) && !out.new_saved {
        return Ok(());
    }
    Err(format!(
        "{out:?}: the file opens to neither the old nor the new index ({} ids)",
        view.len()
    ))
}

fn harness(model: CrashModel) -> CrashHarness {
    CrashHarness {
        model,
        images_per_point: 256,
        points: CrashPoints::EveryOp,
        seed: 77,
    }
}

fn run_with(model: CrashModel, second: Second) -> Result<CrashReport, vellum_fs::CrashFailure> {
    let old = version(0..40, 1);
    let new = version(20..75, 2);
    harness(model).try_run(
        |fs| scenario(fs, &old, &new, second),
        |image, out| check(image, out, &old, &new),
    )
}

/// The file system the second save runs on.
type Second = fn(&SimFs) -> Box<dyn Fs>;

fn unchanged(fs: &SimFs) -> Box<dyn Fs> {
    Box::new(fs.clone())
}

fn without_file_sync(fs: &SimFs) -> Box<dyn Fs> {
    Box::new(Lossy {
        inner: fs.clone(),
        drop_file_sync: true,
        drop_dir_sync: false,
    })
}

fn without_dir_sync(fs: &SimFs) -> Box<dyn Fs> {
    Box::new(Lossy {
        inner: fs.clone(),
        drop_file_sync: false,
        drop_dir_sync: true,
    })
}

#[test]
fn every_crash_image_of_a_save_over_an_index_file_opens_to_the_old_or_the_new_index() {
    let mut total = CrashReport::default();
    for model in [
        CrashModel::drop_unsynced(),
        CrashModel::any_subset(),
        CrashModel::torn_512(),
        CrashModel::torn_4k(),
    ] {
        match run_with(model, unchanged) {
            Ok(report) => total.add(report),
            Err(failure) => panic!("{failure}"),
        }
    }
    println!("Hnsw::save over an index file: {total}");
    assert!(total.images > 500, "too few images checked: {total}");
}

#[test]
fn a_save_without_its_file_sync_is_caught() {
    let failure = run_with(CrashModel::torn_512(), without_file_sync).expect_err("not caught");
    println!("caught as expected: {failure}");
}

#[test]
fn a_save_without_its_directory_sync_is_caught() {
    let failure = run_with(CrashModel::torn_512(), without_dir_sync).expect_err("not caught");
    println!("caught as expected: {failure}");
}

/// A file system that skips `sync_data` or `sync_dir` and passes everything else through:
/// the save with one of its durability steps removed, without changing its code.
#[derive(Debug)]
struct Lossy {
    inner: SimFs,
    drop_file_sync: bool,
    drop_dir_sync: bool,
}

#[derive(Debug)]
struct LossyFile {
    inner: Box<dyn File>,
    drop_sync: bool,
}

type FsResult<T> = vellum_fs::Result<T>;

impl Lossy {
    fn wrap(&self, file: FsResult<Box<dyn File>>) -> FsResult<Box<dyn File>> {
        Ok(Box::new(LossyFile {
            inner: file?,
            drop_sync: self.drop_file_sync,
        }))
    }
}

impl Fs for Lossy {
    fn create(&self, path: &Path) -> FsResult<Box<dyn File>> {
        self.wrap(self.inner.create(path))
    }
    fn create_new(&self, path: &Path) -> FsResult<Box<dyn File>> {
        self.wrap(self.inner.create_new(path))
    }
    fn open(&self, path: &Path) -> FsResult<Box<dyn File>> {
        self.wrap(self.inner.open(path))
    }
    fn open_read(&self, path: &Path) -> FsResult<Box<dyn File>> {
        self.wrap(self.inner.open_read(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> FsResult<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> FsResult<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> FsResult<()> {
        self.inner.remove_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> FsResult<()> {
        self.inner.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> FsResult<()> {
        if self.drop_dir_sync {
            return Ok(());
        }
        self.inner.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> FsResult<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> FsResult<bool> {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> FsResult<bool> {
        self.inner.is_dir(path)
    }
    fn try_lock_dir(&self, path: &Path) -> FsResult<Option<DirLock>> {
        self.inner.try_lock_dir(path)
    }
    fn fail_point(&self, name: &str) -> FsResult<()> {
        self.inner.fail_point(name)
    }
}

impl File for LossyFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> FsResult<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> FsResult<()> {
        self.inner.write_at(buf, offset)
    }
    fn append(&self, buf: &[u8]) -> FsResult<u64> {
        self.inner.append(buf)
    }
    fn len(&self) -> FsResult<u64> {
        self.inner.len()
    }
    fn set_len(&self, len_bytes: u64) -> FsResult<()> {
        self.inner.set_len(len_bytes)
    }
    fn allocate(&self, len_bytes: u64) -> FsResult<()> {
        self.inner.allocate(len_bytes)
    }
    fn sync_data(&self) -> FsResult<()> {
        if self.drop_sync {
            return Ok(());
        }
        self.inner.sync_data()
    }
    fn map_read(&self) -> FsResult<ReadMap> {
        self.inner.map_read()
    }
    fn map_mut(&self, len_bytes: usize) -> FsResult<MapMut> {
        self.inner.map_mut(len_bytes)
    }
    fn map_private(&self, len_bytes: usize) -> FsResult<MapMut> {
        self.inner.map_private(len_bytes)
    }
    fn try_lock_exclusive(&self) -> FsResult<bool> {
        self.inner.try_lock_exclusive()
    }
}
