//! Fuzz entry points. `fuzz/fuzz_targets/index_graph.rs` and `index_file.rs` call these,
//! and `tests/fuzz_corpus.rs` replays the committed corpora through them in ordinary test
//! runs.

use std::path::Path;
use std::sync::Arc;

use crate::{Hnsw, IndexView, Neighbour, VectorSource};

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

/// Hits as exactly comparable values (a NaN distance equals itself bit for bit).
fn hit_bits(hits: &[Neighbour]) -> Vec<(u64, u32)> {
    hits.iter().map(|h| (h.id, h.distance.to_bits())).collect()
}

/// Decodes arbitrary bytes as an index file (graph and vectors, docs/format/index-file.md).
/// Bytes that open must search (following every link), hold a vector of the right length
/// for every id, turn into an index in memory that searches the same, and save to a file
/// that opens again with the same ids; a panic anywhere is a bug.
pub fn index_file(data: &[u8]) {
    let Ok(view) = IndexView::from_bytes_at(Path::new("fuzz-input"), Arc::new(data.to_vec()))
    else {
        return;
    };
    let dim = view.dim();
    for &id in view.ids() {
        assert_eq!(view.vector(id).map(<[f32]>::len), Some(dim));
    }
    let query = match view.ids().first() {
        Some(&id) => view.vector(id).expect("listed id has a vector").to_vec(),
        None => vec![0.5; dim],
    };
    let hits = view
        .search(&query, 10)
        .expect("an opened index file searches");
    assert!(hits.len() <= view.len().min(10));
    assert!(hits.iter().all(|hit| view.contains(hit.id)));
    let (index, vectors) = view.to_index().expect("an opened index file copies");
    assert_eq!(index.len(), view.len());
    let again = index
        .search(&vectors, &query, 10)
        .expect("the copy searches");
    assert_eq!(
        hit_bits(&again),
        hit_bits(&hits),
        "the copy searches differently"
    );
    let fs = vellum_fs::SimFs::new();
    index.save(&fs, "/copy", &vectors).expect("the copy saves");
    let reopened = IndexView::open(&fs, "/copy").expect("a saved copy opens");
    assert_eq!(reopened.ids(), view.ids());
}

/// Decodes arbitrary bytes as quantizer parameters (docs/format/quantizer.md). Parameters
/// that decode must encode back to the same bytes (one encoding per quantizer), encode a
/// vector to a code of `code_len()` bytes and score a query against it; a panic anywhere
/// is a bug.
pub fn quantizer_params(data: &[u8]) {
    let Ok(quantizer) = crate::Quantizer::from_bytes(data) else {
        return;
    };
    assert_eq!(
        quantizer.to_bytes(),
        data,
        "decoded parameters re-encode differently"
    );
    let dim = quantizer.dim();
    let vector: Vec<f32> = (0..dim).map(|i| (i % 9) as f32 - 4.0).collect();
    let code = quantizer
        .encode_to_vec(&vector)
        .expect("a vector of its dimension");
    assert_eq!(code.len(), quantizer.code_len());
    quantizer
        .approximate_distance(&vector, &code)
        .expect("a query of its dimension");
}
