//! Fuzz entry points. `fuzz/fuzz_targets/index_graph.rs` calls these, and
//! `tests/fuzz_corpus.rs` replays the committed corpus through them in ordinary test runs.

use crate::{Hnsw, VectorSource};

/// Any id maps to one of seven fixed vectors, so a graph with arbitrary ids can be searched.
struct Cyclic {
    dim: usize,
    rows: Vec<f32>,
}

impl VectorSource for Cyclic {
    fn dim(&self) -> usize {
        self.dim
    }

    fn vector(&self, id: u64) -> &[f32] {
        let row = (id % 7) as usize;
        &self.rows[row * self.dim..(row + 1) * self.dim]
    }
}

/// Decodes arbitrary bytes as a graph file. Bytes that decode must search (following every
/// link) and re-encode to a file that decodes to the same number of nodes; a panic anywhere
/// is a bug.
pub fn graph_bytes(data: &[u8]) {
    let Ok(index) = Hnsw::from_bytes(data.to_vec()) else {
        return;
    };
    if index.dim() > 64 {
        return;
    }
    let dim = index.dim();
    let source = Cyclic {
        dim,
        rows: (0..7 * dim).map(|i| (i % 5) as f32 - 2.0).collect(),
    };
    let hits = index
        .search(&source, &source.rows[..dim], 10)
        .expect("a decoded graph searches");
    assert!(hits.len() <= 10);
    let again = Hnsw::from_bytes(index.to_bytes().expect("re-encode")).expect("re-open");
    assert_eq!(again.len(), index.len());
}
