//! Index files on a simulated file system, for the index file tests.

use std::path::Path;

use vellum_fs::{Fs, SimFs};
use vellum_index::{Error, Hnsw, HnswParams, IndexView, Metric, OwnedVectors};

use super::random_data;

/// Where the tests put their index file.
pub const PATH: &str = "/idx/points.index";

/// The parameters the index file tests build with (M varies).
pub fn params(m: usize) -> HnswParams {
    HnswParams {
        m,
        ef_construction: 64,
        ef_search: 32,
        seed: 21,
    }
}

/// Random vectors under `ids`, indexed in that order with `insert_batch` (deterministic).
pub fn built(ids: &[u64], dim: usize, metric: Metric, m: usize, seed: u64) -> (Hnsw, OwnedVectors) {
    let data = random_data(seed, ids.len(), dim);
    let mut vectors = OwnedVectors::new(dim);
    for (&id, row) in ids.iter().zip(data.chunks_exact(dim)) {
        vectors.insert(id, row).unwrap();
    }
    let index = Hnsw::new(dim, metric, params(m)).unwrap();
    index.insert_batch(&vectors, ids).unwrap();
    (index, vectors)
}

/// Ids `0..n`.
pub fn consecutive(n: u64) -> Vec<u64> {
    (0..n).collect()
}

/// A simulated file system with `/idx` durable.
pub fn sim_with_dir() -> SimFs {
    let fs = SimFs::new();
    vellum_fs::create_dir_all_durable(&fs, Path::new("/idx")).unwrap();
    fs
}

/// The bytes `save` writes for this index.
pub fn saved_bytes(index: &Hnsw, vectors: &OwnedVectors) -> Vec<u8> {
    let fs = sim_with_dir();
    index.save(&fs, PATH, vectors).unwrap();
    fs.read_file(Path::new(PATH)).unwrap()
}

/// Opens `bytes` as the file at PATH of a fresh simulated file system.
pub fn open_bytes(bytes: &[u8]) -> Result<IndexView, Error> {
    let fs = sim_with_dir();
    let file = fs.create(Path::new(PATH)).unwrap();
    file.write_at(bytes, 0).unwrap();
    drop(file);
    IndexView::open(&fs, PATH)
}
