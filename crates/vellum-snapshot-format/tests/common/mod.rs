//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vellum_fs::rng::SplitMix64;
use vellum_fs::{Fs, SimFs};
use vellum_snapshot_format::*;

/// Deterministic pseudo-random bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible bytes (runs of a repeated byte).
pub fn compressible(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i / 1000) as u64 ^ seed) as u8).collect()
}

pub type Tree = BTreeMap<String, Vec<u8>>;

pub fn tree(files: &[(&str, Vec<u8>)]) -> Tree {
    files
        .iter()
        .map(|(n, b)| ((*n).to_owned(), b.clone()))
        .collect()
}

/// Writes `files` under `dir` durably (data synced, every directory synced).
pub fn write_tree(fs: &dyn Fs, dir: &Path, files: &Tree) {
    vellum_fs::create_dir_all_durable(fs, dir).unwrap();
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert(dir.to_path_buf());
    for (name, bytes) in files {
        let path = dir.join(name);
        let parent = path.parent().unwrap().to_path_buf();
        if !dirs.contains(&parent) {
            vellum_fs::create_dir_all_durable(fs, &parent).unwrap();
            dirs.insert(parent);
        }
        let f = fs.create(&path).unwrap();
        f.write_at(bytes, 0).unwrap();
        f.sync_data().unwrap();
    }
    for d in &dirs {
        fs.sync_dir(d).unwrap();
    }
}

/// Reads every file under `dir` (relative names with `/`); `None` if `dir` is absent.
pub fn read_tree(fs: &dyn Fs, dir: &Path) -> Option<Tree> {
    if !fs.exists(dir).unwrap() {
        return None;
    }
    let mut out = Tree::new();
    for f in list_generation(fs, dir).unwrap() {
        let file = fs.open(&f.path).unwrap();
        let mut buf = vec![0u8; file.len().unwrap() as usize];
        file.read_at(&mut buf, 0).unwrap();
        out.insert(f.name, buf);
    }
    Some(out)
}

/// Exports `dir` to a chunk list.
pub fn chunks_of(
    fs: &dyn Fs,
    dir: &Path,
    opts: &ExportOptions,
    chunk_bytes: usize,
) -> (Vec<Chunk>, ExportSummary) {
    let files = list_generation(fs, dir).unwrap();
    let mut chunks = Vec::new();
    let summary = export_chunks(fs, &files, opts, chunk_bytes, &mut |c| {
        chunks.push(c);
        Ok(())
    })
    .unwrap();
    (chunks, summary)
}

/// Exports `dir` into an archive in memory.
pub fn archive_of(fs: &dyn Fs, dir: &Path, opts: &ExportOptions) -> (Vec<u8>, ExportSummary) {
    let files = list_generation(fs, dir).unwrap();
    let mut bytes = Vec::new();
    let summary = export_archive(fs, &files, opts, &mut bytes).unwrap();
    (bytes, summary)
}

/// Options with a fixed creation time and a small block size (many blocks per file).
pub fn small_opts(seed: u64, lsn_end: u64) -> ExportOptions {
    ExportOptions {
        created_unix_ms: 1_700_000_000_000 + seed,
        block_bytes: 4096,
        ..ExportOptions::full(SnapshotId::from_seed(seed), lsn_end)
    }
}

/// Imports `chunks` (in the given order) into a fresh staging dir and publishes to `dest`.
pub fn import(fs: &SimFs, chunks: &[Chunk], staging: &str, dest: &str) -> Result<ArchiveInfo> {
    let mut rx = ChunkReceiver::open(fs.shared(), Path::new(staging), ImportOptions::default())?;
    for c in chunks {
        rx.receive(c)?;
    }
    rx.finish(Path::new(dest))
}

pub fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// A small generation: several files of distinct content, one over 64 KiB, nested names.
pub fn sample_tree(seed: u64) -> Tree {
    tree(&[
        ("manifest", pattern(seed, 300)),
        ("vectors/seg-000001", pattern(seed + 1, 200_000)),
        ("vectors/seg-000002", pattern(seed + 2, 70_000)),
        ("index/graph.bin", compressible(seed + 3, 50_000)),
        ("empty", Vec::new()),
        ("wal/000001.log", pattern(seed + 4, 4096)),
    ])
}
