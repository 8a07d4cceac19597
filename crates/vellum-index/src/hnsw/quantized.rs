//! Searching on quantized codes, then rescoring the best candidates with the originals.

use super::scorer::{Codes, Scorer, Vectors};
use super::search::{Search, finish};
use super::{Hnsw, SearchOptions};
use crate::error::{Error, Result};
use crate::exact::{Neighbour, TopK};
use crate::quant::{CodeSource, QuantizedSearch};
use crate::source::VectorSource;

impl Hnsw {
    /// The `k` nearest live ids, found by walking the graph on the quantized `codes` and,
    /// with `quantized.rescore`, rescored with the `f32` originals of `source`.
    ///
    /// The walk collects `k * oversampling` candidates (`ef` is raised to that when
    /// smaller), ordered by approximate distance; rescoring computes their exact distances
    /// and returns the best `k` of them, so the hits carry exact distances and their order
    /// is exact among the candidates. Without rescoring the hits carry the approximate
    /// distances of [`Quantizer::approximate_distance`](crate::Quantizer).
    ///
    /// Filters work as in [`Hnsw::search_with`] (a small allowed set is scanned exactly, on
    /// the codes).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] as for a search, and [`Error::InvalidParameter`] when the
    /// codes' quantizer was trained for another dimension or metric, or `oversampling` is
    /// below 1 or not finite.
    pub fn search_quantized<S, C>(
        &self,
        source: &S,
        codes: &C,
        query: &[f32],
        k: usize,
        options: &SearchOptions<'_>,
        quantized: &QuantizedSearch,
    ) -> Result<Vec<Neighbour>>
    where
        S: VectorSource + ?Sized,
        C: CodeSource + ?Sized,
    {
        self.check_query(source, query)?;
        let quantizer = codes.quantizer();
        if quantizer.dim() != self.dim || quantizer.metric() != self.metric {
            return Err(Error::InvalidParameter {
                name: "codes",
                reason: format!(
                    "the quantizer is for {} dimensions under {:?}; the index has {} under {:?}",
                    quantizer.dim(),
                    quantizer.metric(),
                    self.dim,
                    self.metric
                ),
            });
        }
        let oversampling = quantized.oversampling;
        if !(oversampling.is_finite() && oversampling >= 1.0) {
            return Err(Error::InvalidParameter {
                name: "oversampling",
                reason: format!("{oversampling} is not a number of at least 1"),
            });
        }
        let candidates = if quantized.rescore {
            ((k as f64 * f64::from(oversampling)).ceil() as usize).max(k)
        } else {
            k
        };
        let ef = options
            .ef
            .unwrap_or(self.params.ef_search)
            .max(candidates)
            .max(1);
        let scorer = Codes::new(codes, query);
        let run = Search {
            scorer: &scorer,
            k: candidates,
            ef,
            live: self.len(),
        };
        let hits = self.run(&run, options.filter.as_ref())?;
        if !quantized.rescore {
            return Ok(hits);
        }
        // Every candidate's vector is requested before any is scored, so the misses
        // overlap, then all are scored under one dispatch.
        let exact = Vectors::new(source, self.metric, query);
        let batch: Vec<(u32, &[f32])> = hits
            .iter()
            .map(|hit| {
                let vector = exact.data(hit.id);
                Vectors::<S>::prefetch(vector);
                (0, vector)
            })
            .collect();
        let mut distances = Vec::with_capacity(batch.len());
        exact.distances(&batch, &mut distances);
        let mut top = TopK::new(k);
        for (hit, distance) in hits.iter().zip(distances) {
            top.push(distance, hit.id);
        }
        Ok(finish(top))
    }
}
