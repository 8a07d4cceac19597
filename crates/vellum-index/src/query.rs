//! A query prepared for many distances: the metric resolved and the query's own norm
//! computed once per search, and a batch of candidate vectors scored under one dispatch to
//! the SIMD kernels (the per-pair `match` and dispatch cost 4% of a GloVe search).
//!
//! Cosine is one fused pass over the candidate: `a.b` and `b.b` (the query's `a.a` is
//! known), then `1 - a.b / sqrt(a.a * b.b)` — two multiply-adds per element instead of
//! three. [`Metric::distance`] and the exact scan use it too. The vectors are read as
//! stored, so a `get` stays bit-exact.

use pulp::{Simd, WithSimd};

use crate::distance::{Metric, arch, cosine_from_parts, dot_kernel, l2_four, l2_kernel};

/// The query side of a search, prepared once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreparedQuery<'q> {
    metric: Metric,
    query: &'q [f32],
    /// `query . query`, for cosine.
    query_norm_sq: f32,
}

impl<'q> PreparedQuery<'q> {
    pub(crate) fn new(metric: Metric, query: &'q [f32]) -> PreparedQuery<'q> {
        let query_norm_sq = match metric {
            Metric::Cosine => arch().dispatch(SelfDot(query)),
            _ => 0.0,
        };
        PreparedQuery {
            metric,
            query,
            query_norm_sq,
        }
    }

    /// The distance from the query to `vector`.
    #[inline]
    pub(crate) fn distance(&self, vector: &[f32]) -> f32 {
        arch().dispatch(One(self, vector))
    }

    /// The distances from the query to each vector of `batch`, in order, into `out`
    /// (cleared first): one dispatch for the whole batch.
    pub(crate) fn distances<K: Copy>(&self, batch: &[(K, &[f32])], out: &mut Vec<f32>) {
        out.clear();
        arch().dispatch(Many {
            query: self,
            batch,
            out,
        });
    }

    #[inline(always)]
    fn with_simd<S: Simd>(&self, simd: S, vector: &[f32]) -> f32 {
        match self.metric {
            Metric::L2 => l2_kernel(simd, self.query, vector),
            Metric::Dot => -dot_kernel(simd, self.query, vector),
            Metric::Cosine => {
                let (dot, norm_sq) = dot_and_norm(simd, self.query, vector);
                cosine_from_parts((dot, self.query_norm_sq, norm_sq))
            }
        }
    }
}

struct SelfDot<'a>(&'a [f32]);

impl WithSimd for SelfDot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        dot_kernel(simd, self.0, self.0)
    }
}

struct One<'p, 'q, 'v>(&'p PreparedQuery<'q>, &'v [f32]);

impl WithSimd for One<'_, '_, '_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        self.0.with_simd(simd, self.1)
    }
}

struct Many<'p, 'q, 'b, 'v, 'o, K> {
    query: &'p PreparedQuery<'q>,
    batch: &'b [(K, &'v [f32])],
    out: &'o mut Vec<f32>,
}

impl<K> WithSimd for Many<'_, '_, '_, '_, '_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // The metric is matched once for the batch. Plain loops, no closures: a closure
        // does not inherit the SIMD target features of this function, and its kernel
        // calls would not be inlined.
        let q = self.query;
        let out = self.out;
        out.reserve(self.batch.len());
        match q.metric {
            Metric::L2 => {
                // Four at a time (the query's loads shared), the rest one by one: the same
                // bits either way.
                let mut fours = self.batch.chunks_exact(4);
                for four in &mut fours {
                    let vectors = [four[0].1, four[1].1, four[2].1, four[3].1];
                    out.extend_from_slice(&l2_four(simd, q.query, vectors));
                }
                for (_, v) in fours.remainder() {
                    out.push(l2_kernel(simd, q.query, v));
                }
            }
            Metric::Dot => {
                for (_, v) in self.batch {
                    out.push(-dot_kernel(simd, q.query, v));
                }
            }
            Metric::Cosine => {
                let mut fours = self.batch.chunks_exact(4);
                for four in &mut fours {
                    let vectors = [four[0].1, four[1].1, four[2].1, four[3].1];
                    for (dot, norm_sq) in dot_and_norm_four(simd, q.query, vectors) {
                        out.push(cosine_from_parts((dot, q.query_norm_sq, norm_sq)));
                    }
                }
                for (_, v) in fours.remainder() {
                    let (dot, norm_sq) = dot_and_norm(simd, q.query, v);
                    out.push(cosine_from_parts((dot, q.query_norm_sq, norm_sq)));
                }
            }
        }
    }
}

/// `(a.b, b.b)` in one pass: one accumulator of each, the exact sequence
/// [`dot_and_norm_four`] runs for each of its vectors (so either gives the same bits).
#[inline(always)]
pub(crate) fn dot_and_norm<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> (f32, f32) {
    let len = a.len().min(b.len());
    let (a_head, a_tail) = S::as_simd_f32s(&a[..len]);
    let (b_head, b_tail) = S::as_simd_f32s(&b[..len]);
    let zero = simd.splat_f32s(0.0);
    let (mut dot, mut bb) = (zero, zero);
    for (a, b) in a_head.iter().zip(b_head) {
        dot = simd.mul_add_e_f32s(*a, *b, dot);
        bb = simd.mul_add_e_f32s(*b, *b, bb);
    }
    let (mut dot, mut bb) = (simd.reduce_sum_f32s(dot), simd.reduce_sum_f32s(bb));
    for (a, b) in a_tail.iter().zip(b_tail) {
        dot += a * b;
        bb += b * b;
    }
    (dot, bb)
}

/// [`dot_and_norm`] of `a` against four vectors at once: each chunk of the query loaded
/// once, eight accumulator chains side by side.
#[inline(always)]
pub(crate) fn dot_and_norm_four<S: Simd>(simd: S, a: &[f32], b: [&[f32]; 4]) -> [(f32, f32); 4] {
    let len = b.iter().fold(a.len(), |len, v| len.min(v.len()));
    let (a_head, a_tail) = S::as_simd_f32s(&a[..len]);
    let n = a_head.len();
    let split = b.map(|v| S::as_simd_f32s(&v[..len]));
    let heads = split.map(|(head, _)| &head[..n]);
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; 4];
    for (i, q) in a_head.iter().enumerate() {
        for (acc, head) in acc.iter_mut().zip(&heads) {
            acc[0] = simd.mul_add_e_f32s(*q, head[i], acc[0]);
            acc[1] = simd.mul_add_e_f32s(head[i], head[i], acc[1]);
        }
    }
    let mut out = [(0f32, 0f32); 4];
    for ((out, acc), (_, tail)) in out.iter_mut().zip(&acc).zip(&split) {
        let (mut dot, mut bb) = (simd.reduce_sum_f32s(acc[0]), simd.reduce_sum_f32s(acc[1]));
        for (a, b) in a_tail.iter().zip(*tail) {
            dot += a * b;
            bb += b * b;
        }
        *out = (dot, bb);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::tests::vector;

    #[test]
    fn prepared_distances_agree_with_the_metric_for_every_length_one_at_a_time_and_batched() {
        for len in 0..80 {
            let query = vector(len as u64, len);
            let others: Vec<Vec<f32>> =
                (0..5).map(|i| vector(1000 + i + len as u64, len)).collect();
            let batch: Vec<(usize, &[f32])> = others
                .iter()
                .enumerate()
                .map(|(i, v)| (i, v.as_slice()))
                .collect();
            for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
                let prepared = PreparedQuery::new(metric, &query);
                let mut out = vec![f32::NAN; 2];
                prepared.distances(&batch, &mut out);
                assert_eq!(out.len(), others.len());
                for (v, batched) in others.iter().zip(&out) {
                    let want = metric.distance(&query, v);
                    let tolerance = 1e-5 * (1.0 + want.abs());
                    let one = prepared.distance(v);
                    assert!(
                        (one - want).abs() <= tolerance,
                        "{metric:?} {len}: {one} vs {want}"
                    );
                    assert_eq!(one.to_bits(), batched.to_bits(), "{metric:?} {len}");
                }
            }
        }
    }

    #[test]
    fn a_zero_query_or_vector_is_at_cosine_distance_one() {
        let prepared = PreparedQuery::new(Metric::Cosine, &[0.0; 4]);
        assert_eq!(prepared.distance(&[1.0; 4]), 1.0);
        let prepared = PreparedQuery::new(Metric::Cosine, &[1.0; 4]);
        assert_eq!(prepared.distance(&[0.0; 4]), 1.0);
    }
}
