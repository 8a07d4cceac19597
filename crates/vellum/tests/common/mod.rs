//! Helpers shared by the facade's integration tests. Each test binary uses a subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vellum::{Collection, DatabaseOptions, SearchParams};
use vellum_fs::Fs;

/// Options for tests: no background checkpoints (tests checkpoint when they mean to), and
/// small log segments and vector segments so rotation and growth happen in small tests.
pub fn options(wal_segment_bytes: u64, slots_per_segment: u32) -> DatabaseOptions {
    DatabaseOptions::default()
        .with_background_checkpoints(false)
        .with_wal_segment_size_bytes(wal_segment_bytes)
        .with_slots_per_segment(slots_per_segment)
}

/// A deterministic `dim`-dimensional vector for id `i`, components in [0, 1).
pub fn vector(i: u64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|d| ((i * 31 + d as u64 * 7) % 97) as f32 / 97.0)
        .collect()
}

/// How many of the index's `k` nearest to `query` exact search also returns.
pub fn overlap_with_exact(c: &Collection, query: &[f32], k: usize) -> usize {
    let approx = c.search(query, k).unwrap();
    let exact = c
        .search_with(
            query,
            k,
            &SearchParams {
                exact: true,
                ..Default::default()
            },
        )
        .unwrap();
    approx
        .iter()
        .filter(|h| exact.iter().any(|e| e.id == h.id))
        .count()
}

/// After a recovery: every live slot is in the graph or in the pending tail, exactly once
/// (`verify` checks it slot by slot), and the indexer then brings the graph to every point.
pub fn graph_and_tail_agree(c: &Collection) -> Result<(), String> {
    let report = c.verify().map_err(|e| e.to_string())?;
    if !report.is_ok() {
        return Err(format!("index and store differ: {:?}", report.problems));
    }
    c.wait_indexed().map_err(|e| e.to_string())?;
    let s = c.stats();
    if s.indexed != s.points || s.index_pending != 0 {
        return Err(format!(
            "{} of {} indexed after wait_indexed",
            s.indexed, s.points
        ));
    }
    Ok(())
}

/// The whole contents of a file.
pub fn read_file(fs: &dyn Fs, path: &Path) -> Vec<u8> {
    let f = fs.open(path).unwrap();
    let mut b = vec![0; usize::try_from(f.len().unwrap()).unwrap()];
    f.read_at(&mut b, 0).unwrap();
    b
}

/// Replaces a file's contents (synced, so crash images keep it).
pub fn write_file(fs: &dyn Fs, path: &Path, bytes: &[u8]) {
    let f = fs.create(path).unwrap();
    f.write_at(bytes, 0).unwrap();
    f.sync_data().unwrap();
}

/// Every directory and file under `dir` with its bytes, sorted: what must not change.
pub fn tree(fs: &dyn Fs, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for name in fs.list_dir(&d).unwrap() {
            let p = d.join(name);
            if fs.is_dir(&p).unwrap() {
                out.push((p.clone(), b"<dir>".to_vec()));
                stack.push(p);
            } else {
                let bytes = read_file(fs, &p);
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Runs each scenario `fn(DynFs, &Path)` as two tests, `<name>::on_sim_fs` (SimFs, database
/// at `/db`) and `<name>::on_real_fs` (a fresh temporary directory): one scenario, every
/// file system.
#[macro_export]
macro_rules! on_both_file_systems {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn on_sim_fs() {
                let fs = vellum_fs::SimFs::new();
                super::$name(fs.shared(), std::path::Path::new("/db"));
            }

            #[test]
            fn on_real_fs() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(vellum_fs::RealFs::shared(), &dir.path().join("db"));
            }
        }
    )*};
}

/// Opens the database and then every collection in it (collections open on first use, so
/// damage to one shows at its first use, not at `Database::open`): the first error.
pub fn open_all(
    fs: vellum_fs::DynFs,
    root: impl AsRef<Path>,
    options: DatabaseOptions,
) -> vellum::Result<vellum::Database> {
    let db = vellum::Database::open_with_fs(fs, root, options)?;
    db.stats()?;
    Ok(db)
}
