//! Vector search for Vellum: exact (flat) and HNSW search under L2, cosine and dot-product
//! metrics over vectors it borrows, and a graph file that search runs on directly from a
//! mapped slice, so opening never rebuilds the graph.
//!
//! **Architecture invariant:** this crate does no file I/O. It reads vectors through a
//! [`VectorSource`] it is handed and encodes its graph to bytes ([`Hnsw::to_bytes`]) or
//! searches bytes it is handed ([`Hnsw::open`]); the caller decides where they live.
//!
//! ```
//! use vellum_index::{FlatVectors, Hnsw, HnswParams, Metric};
//! let data: Vec<f32> = (0..400).map(|i| (i % 17) as f32).collect();
//! let source = FlatVectors::new(&data, 4);
//! let mut index = Hnsw::new(4, Metric::L2, HnswParams::default()).unwrap();
//! index.insert_batch(&source, &(0..100).collect::<Vec<u64>>()).unwrap();
//! let reopened = Hnsw::from_bytes(index.to_bytes().unwrap()).unwrap();
//! let hits = reopened.search(&source, source_row(&data, 3), 5).unwrap();
//! assert_eq!(hits[0].distance, 0.0);
//! # fn source_row(d: &[f32], i: usize) -> &[f32] { &d[i * 4..i * 4 + 4] }
//! ```
#![forbid(unsafe_code)]

mod distance;
mod error;
mod exact;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod graph;
mod hnsw;
mod live;
mod source;

pub use distance::Metric;
pub use error::{Error, Result};
pub use exact::{Filter, Neighbour, PARALLEL_EXACT_MIN_LEN, exact_search};
pub use format::{HEADER_LEN, MAGIC, MAX_DIM, MAX_LEVEL, MAX_M, VERSION};
pub use hnsw::{FILTER_EXACT_MAX, GraphBytes, Hnsw, HnswParams, SearchOptions};
pub use source::{FlatVectors, VectorSource};
