//! Vector search for Vellum: exact (flat) and HNSW search under L2, cosine and dot-product
//! metrics over vectors it borrows; a graph file that search runs on directly from a mapped
//! slice, so opening never rebuilds the graph; and an index file holding the graph with its
//! vectors, so a program can use the index alone (build, [`Hnsw::upsert`], [`Hnsw::save`],
//! then [`IndexView::open`] to search it mapped, or [`Hnsw::load`] to change it again).
//!
//! **Architecture invariant:** this crate does no file I/O of its own. The index reads
//! vectors through a [`VectorSource`] it is handed, encodes its graph to bytes
//! ([`Hnsw::to_bytes`]) and searches bytes it is handed ([`Hnsw::open`]); the caller decides
//! where they live. The index file is the one place it deals with files, and even there
//! every open, read, write, sync, rename and map goes through the [`vellum_fs::Fs`] the
//! caller hands to [`Hnsw::save`] and [`IndexView::open`] (`vellum_fs::RealFs`, or a
//! `vellum_fs::SimFs` that crashes it in tests): the crate never names `std::fs` and maps
//! no memory itself (`#![forbid(unsafe_code)]`; the map is `vellum_fs::File::map_read`).
//!
//! ```
//! use vellum_fs::RealFs;
//! use vellum_index::{Hnsw, HnswParams, IndexView, Metric, OwnedVectors};
//!
//! let mut vectors = OwnedVectors::new(3);
//! for id in 0..100u64 {
//!     vectors.insert(id, &[id as f32, (id % 7) as f32, 1.0]).unwrap();
//! }
//! let index = Hnsw::new(3, Metric::L2, HnswParams::default()).unwrap();
//! index.insert_batch(&vectors, &(0..100).collect::<Vec<u64>>()).unwrap();
//! // A new vector for id 7: store it, then upsert the id (insert refuses a present id).
//! vectors.insert(7, &[500.0, 0.0, 1.0]).unwrap();
//! assert!(index.upsert(&vectors, 7).unwrap());
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("points.index");
//! index.save(&RealFs::new(), &path, &vectors).unwrap();
//!
//! // Mapped and checked, not rebuilt; the vectors come from the file.
//! let view = IndexView::open(&RealFs::new(), &path).unwrap();
//! let hits = view.search(&[500.0, 0.0, 1.0], 3).unwrap();
//! assert_eq!((hits[0].id, hits[0].distance), (7, 0.0));
//! assert_eq!(view.vector(7), Some(&[500.0, 0.0, 1.0][..]));
//! assert_eq!(view.len(), 100);
//! ```
//!
//! The graph file alone, for a caller that keeps the vectors elsewhere:
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
mod owned;
mod quant;
mod query;
mod saved;
mod source;

pub use distance::Metric;
pub use error::{Error, Result};
pub use exact::{Filter, Neighbour, PARALLEL_EXACT_MIN_LEN, exact_search};
pub use format::{HEADER_LEN, MAGIC, MAX_DIM, MAX_LEVEL, MAX_M, VERSION};
pub use hnsw::{FILTER_EXACT_MAX, GraphBytes, Hnsw, HnswParams, SearchOptions};
pub use owned::OwnedVectors;
pub use quant::{
    CodeSource, FlatCodes, INT8_QUANTILE, QUANTIZER_MAGIC, QUANTIZER_VERSION, QuantKind,
    QuantizedSearch, Quantizer, TRAIN_VALUES_MAX, code_len,
};
pub use saved::{FILE_HEADER_LEN, FILE_MAGIC, FILE_VERSION, IndexView};
pub use source::{FlatVectors, VectorSource};
