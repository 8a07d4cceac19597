//! What a walk scores: the `f32` originals through a prepared query, or quantized codes.
//!
//! The walk (`search.rs`) is written once against [`Scorer`]: it asks for a node's data by
//! id, prefetches it, and scores a batch under one dispatch. [`Vectors`] reads the
//! [`VectorSource`]; [`Codes`] reads a [`CodeSource`] and scores on the codes.

use crate::distance::Metric;
use crate::quant::{CodeSource, QuantizedQuery};
use crate::query::PreparedQuery;
use crate::source::VectorSource;

/// Cache lines of each candidate prefetched before its batch is scored (the hardware
/// prefetcher follows on from there for longer data).
const PREFETCH_LINES: usize = 8;

/// Cache lines of each candidate code prefetched: a whole int8 code up to 1024 dimensions.
const CODE_PREFETCH_LINES: usize = 16;

/// Distances from one query to the data of nodes, by external id.
pub(crate) trait Scorer: Sync {
    /// What one id's data is: `[f32]` or `[u8]`.
    type Data: ?Sized;

    /// The data stored under `id`.
    fn data(&self, id: u64) -> &Self::Data;

    /// Starts loading `data` into cache.
    fn prefetch(data: &Self::Data);

    /// The distance to one item.
    fn distance(&self, data: &Self::Data) -> f32;

    /// The distances to each item of `batch`, in order, into `out` (cleared first).
    fn distances(&self, batch: &[(u32, &Self::Data)], out: &mut Vec<f32>);

    /// The distance to the data of `id`.
    #[inline]
    fn distance_to(&self, id: u64) -> f32 {
        self.distance(self.data(id))
    }
}

/// Scores the `f32` originals.
pub(crate) struct Vectors<'a, S: ?Sized> {
    source: &'a S,
    query: PreparedQuery<'a>,
}

impl<'a, S: VectorSource + ?Sized> Vectors<'a, S> {
    pub(crate) fn new(source: &'a S, metric: Metric, query: &'a [f32]) -> Vectors<'a, S> {
        Vectors {
            source,
            query: PreparedQuery::new(metric, query),
        }
    }
}

impl<S: VectorSource + ?Sized> Scorer for Vectors<'_, S> {
    type Data = [f32];

    #[inline]
    fn data(&self, id: u64) -> &[f32] {
        self.source.vector(id)
    }

    #[inline]
    fn prefetch(data: &[f32]) {
        vellum_fs::prefetch_read(bytemuck::cast_slice(data), PREFETCH_LINES);
    }

    #[inline]
    fn distance(&self, data: &[f32]) -> f32 {
        self.query.distance(data)
    }

    #[inline]
    fn distances(&self, batch: &[(u32, &[f32])], out: &mut Vec<f32>) {
        self.query.distances(batch, out);
    }
}

/// Scores quantized codes (approximate distances).
pub(crate) struct Codes<'a, C: ?Sized> {
    codes: &'a C,
    query: QuantizedQuery,
}

impl<'a, C: CodeSource + ?Sized> Codes<'a, C> {
    pub(crate) fn new(codes: &'a C, query: &[f32]) -> Codes<'a, C> {
        Codes {
            codes,
            query: codes.quantizer().prepare(query),
        }
    }
}

impl<C: CodeSource + ?Sized> Scorer for Codes<'_, C> {
    type Data = [u8];

    #[inline]
    fn data(&self, id: u64) -> &[u8] {
        self.codes.code(id)
    }

    #[inline]
    fn prefetch(data: &[u8]) {
        vellum_fs::prefetch_read(data, CODE_PREFETCH_LINES);
    }

    #[inline]
    fn distance(&self, data: &[u8]) -> f32 {
        self.query.distance(data)
    }

    #[inline]
    fn distances(&self, batch: &[(u32, &[u8])], out: &mut Vec<f32>) {
        self.query.distances(batch, out);
    }
}
