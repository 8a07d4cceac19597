#![no_main]
//! The graph file decoder on arbitrary bytes: it returns a typed error or a graph whose every
//! link is valid, which is then searched (a bad link would panic on an index out of range).

use vellum_index::{Hnsw, VectorSource};

/// Any id maps to one of a few fixed vectors, so a graph with arbitrary ids can be searched.
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

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(index) = Hnsw::from_bytes(data.to_vec()) else {
        return;
    };
    if index.dim() > 64 {
        return;
    }
    let dim = index.dim();
    let source = Cyclic { dim, rows: (0..7 * dim).map(|i| (i % 5) as f32 - 2.0).collect() };
    let hits = index.search(&source, &source.rows[..dim], 10).expect("valid graph searches");
    assert!(hits.len() <= 10);
    let again = Hnsw::from_bytes(index.to_bytes().expect("re-encode")).expect("re-open");
    assert_eq!(again.len(), index.len());
});
