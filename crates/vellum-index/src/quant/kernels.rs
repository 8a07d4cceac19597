//! Encoding vectors into codes and scoring a prepared query against codes.
//!
//! The scoring loops are plain integer and float loops over byte slices, inlined into one
//! [`pulp`] dispatch per batch: compiled with the dispatched target features (AVX2 on
//! x86-64), the compiler turns the `u8` products into 16-bit multiply-adds and the f16
//! decode into vector shifts, with no `unsafe` here.

use pulp::{Simd, WithSimd};

use super::{Params, QuantKind, Quantizer};
use crate::distance::{Metric, arch};

/// The largest finite f16; larger values are clamped to it when encoded.
const F16_MAX: f32 = 65504.0;

/// Encodes one (already normalised, for cosine) vector under `params` into `out`.
pub(super) fn encode(params: &Params, vector: &[f32], out: &mut [u8]) {
    match params {
        Params::Int8 { lo, step } => {
            for (((o, &x), &lo), &step) in out.iter_mut().zip(vector).zip(lo).zip(step) {
                *o = int8_level(x, lo, step);
            }
        }
        Params::F16 => {
            for (o, &x) in out.chunks_exact_mut(2).zip(vector) {
                let h = half::f16::from_f32(x.clamp(-F16_MAX, F16_MAX));
                o.copy_from_slice(&h.to_bits().to_le_bytes());
            }
        }
        Params::Binary { thresholds } => {
            out.fill(0);
            for (i, (&x, &t)) in vector.iter().zip(thresholds).enumerate() {
                if x > t {
                    out[i / 8] |= 1 << (i % 8);
                }
            }
        }
    }
}

/// The int8 level of `x`: `(x - lo) / step` rounded half up and clamped to `0..=255` (NaN
/// gives 0). Truncating `+ 0.5` rounds without a call to `roundf`, which every query
/// encode paid per dimension.
#[inline]
fn int8_level(x: f32, lo: f32, step: f32) -> u8 {
    ((x - lo) / step + 0.5).clamp(0.0, 255.0) as u8
}

/// A query prepared against one quantizer, with the terms of the distance that do not
/// depend on the code computed once.
///
/// int8 is scored *asymmetrically*: the query stays `f32` and each code level `c` stands
/// for `lo + step * c` of its dimension, so only the stored vector carries quantization
/// error (a query encoded to levels too doubled it and cost GloVe-50 3.5 points of recall
/// at ef 64 for no speed on 50 dimensions):
///
/// * dot: `q.x ~ sum(q * lo) + sum((q * step) * c)` — one multiply-add a dimension;
/// * L2: `|q - x|^2 ~ sum(step^2 * ((q - lo) / step - c)^2)` — two.
#[derive(Debug, Clone)]
pub(crate) struct QuantizedQuery {
    kind: QuantKind,
    metric: Metric,
    /// int8 dot: `q * step`; int8 L2: `(q - lo) / step`; f16: the query; binary: empty.
    floats: Vec<f32>,
    /// int8 L2: `step^2` per dimension.
    weights: Vec<f32>,
    /// binary: the query's own code.
    code: Vec<u8>,
    /// int8 dot: `sum(q * lo)`.
    constant: f32,
}

impl QuantizedQuery {
    pub(super) fn new(quantizer: &Quantizer, query: &[f32]) -> QuantizedQuery {
        let mut prepared = QuantizedQuery {
            kind: quantizer.kind,
            metric: quantizer.metric,
            floats: Vec::new(),
            weights: Vec::new(),
            code: Vec::new(),
            constant: 0.0,
        };
        match &quantizer.params {
            Params::Int8 { lo, step } => {
                if quantizer.metric == Metric::L2 {
                    prepared.floats = query
                        .iter()
                        .zip(lo)
                        .zip(step)
                        .map(|((q, lo), step)| (q - lo) / step)
                        .collect();
                    prepared.weights = step.iter().map(|s| s * s).collect();
                } else {
                    prepared.floats = query.iter().zip(step).map(|(q, s)| q * s).collect();
                    prepared.constant = query.iter().zip(lo).map(|(q, lo)| q * lo).sum();
                }
            }
            Params::F16 => prepared.floats = query.to_vec(),
            Params::Binary { .. } => {
                let mut code = vec![0u8; quantizer.code_len()];
                encode(&quantizer.params, query, &mut code);
                prepared.code = code;
            }
        }
        prepared
    }

    /// The approximate distance to one code.
    pub(crate) fn distance(&self, code: &[u8]) -> f32 {
        let mut out = Vec::with_capacity(1);
        self.distances(&[((), code)], &mut out);
        out[0]
    }

    /// The approximate distances to each code of `batch`, in order, into `out` (cleared
    /// first): one dispatch for the batch.
    pub(crate) fn distances<K>(&self, batch: &[(K, &[u8])], out: &mut Vec<f32>) {
        out.clear();
        out.reserve(batch.len());
        #[cfg(target_arch = "x86_64")]
        if self.kind == QuantKind::Int8
            && let Some(v3) = super::avx2::v3()
        {
            return Simd::vectorize(
                v3,
                super::avx2::Int8Batch {
                    v3,
                    query: self,
                    batch,
                    out,
                },
            );
        }
        arch().dispatch(Batch {
            query: self,
            batch,
            out,
        });
    }

    #[inline(always)]
    fn int8_distance(&self, code: &[u8]) -> f32 {
        self.int8_with(code, weighted_l2, levels_dot)
    }

    /// The int8 distance to `code` with the given kernels for its two sums.
    #[inline(always)]
    pub(super) fn int8_with(
        &self,
        code: &[u8],
        l2: impl FnOnce(&[f32], &[f32], &[u8]) -> f32,
        dot: impl FnOnce(&[f32], &[u8]) -> f32,
    ) -> f32 {
        match self.metric {
            Metric::L2 => l2(&self.floats, &self.weights, code),
            _ => self.distance_of_dot(self.constant + dot(&self.floats, code)),
        }
    }

    /// The int8 distances to four codes with four-at-a-time kernels for their sums.
    #[inline(always)]
    pub(super) fn int8_four_with(
        &self,
        codes: [&[u8]; 4],
        l2: impl FnOnce(&[f32], &[f32], [&[u8]; 4]) -> [f32; 4],
        dot: impl FnOnce(&[f32], [&[u8]; 4]) -> [f32; 4],
    ) -> [f32; 4] {
        match self.metric {
            Metric::L2 => l2(&self.floats, &self.weights, codes),
            _ => dot(&self.floats, codes).map(|d| self.distance_of_dot(self.constant + d)),
        }
    }

    #[inline(always)]
    fn f16_distance(&self, code: &[u8]) -> f32 {
        match self.metric {
            Metric::L2 => f16_l2(&self.floats, code),
            _ => self.distance_of_dot(f16_dot(&self.floats, code)),
        }
    }

    /// The distance of the metric for a dot product of normalised (cosine) or raw (dot)
    /// vectors.
    #[inline(always)]
    fn distance_of_dot(&self, dot: f32) -> f32 {
        if self.metric == Metric::Cosine {
            1.0 - dot
        } else {
            -dot
        }
    }
}

struct Batch<'q, 'b, 'c, 'o, K> {
    query: &'q QuantizedQuery,
    batch: &'b [(K, &'c [u8])],
    out: &'o mut Vec<f32>,
}

impl<K> WithSimd for Batch<'_, '_, '_, '_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        // Plain loops, matched once per batch: a closure would not inherit the dispatched
        // target features (see query.rs).
        let q = self.query;
        match q.kind {
            QuantKind::Int8 => {
                for (_, code) in self.batch {
                    self.out.push(q.int8_distance(code));
                }
            }
            QuantKind::F16 => {
                let mut fours = self.batch.chunks_exact(4);
                for four in &mut fours {
                    let codes = [four[0].1, four[1].1, four[2].1, four[3].1];
                    let d = match q.metric {
                        Metric::L2 => {
                            f16_sum_four(&q.floats, codes, |a, x, acc| (a - x).mul_add(a - x, acc))
                        }
                        _ => f16_sum_four(&q.floats, codes, |a, x, acc| a.mul_add(x, acc))
                            .map(|dot| q.distance_of_dot(dot)),
                    };
                    self.out.extend_from_slice(&d);
                }
                for (_, code) in fours.remainder() {
                    self.out.push(q.f16_distance(code));
                }
            }
            QuantKind::Binary => {
                for (_, code) in self.batch {
                    self.out.push(hamming(&q.code, code) as f32);
                }
            }
        }
    }
}

/// Eight levels as floats (the compiler widens them in one vector register).
#[inline(always)]
fn levels_eight(code: &[u8]) -> [f32; 8] {
    let code: &[u8; 8] = code.try_into().expect("8 bytes");
    code.map(f32::from)
}

/// `sum(scaled * levels)` (the portable loop; on x86-64 with AVX2 `avx2.rs` runs instead).
#[inline(always)]
pub(super) fn levels_dot(scaled: &[f32], code: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    let s_chunks = scaled.chunks_exact(8);
    let c_chunks = code.chunks_exact(8);
    let (s_rest, c_rest) = (s_chunks.remainder(), c_chunks.remainder());
    for (s, c) in s_chunks.zip(c_chunks) {
        let c = levels_eight(c);
        for lane in 0..8 {
            acc[lane] = s[lane].mul_add(c[lane], acc[lane]);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for (s, &c) in s_rest.iter().zip(c_rest) {
        total += s * f32::from(c);
    }
    total
}

/// `sum(weights * (centred - levels)^2)` (portable, as `levels_dot`).
#[inline(always)]
pub(super) fn weighted_l2(centred: &[f32], weights: &[f32], code: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    let q_chunks = centred.chunks_exact(8);
    let w_chunks = weights.chunks_exact(8);
    let c_chunks = code.chunks_exact(8);
    let (q_rest, w_rest, c_rest) = (
        q_chunks.remainder(),
        w_chunks.remainder(),
        c_chunks.remainder(),
    );
    for ((q, w), c) in q_chunks.zip(w_chunks).zip(c_chunks) {
        let c = levels_eight(c);
        for lane in 0..8 {
            let d = q[lane] - c[lane];
            acc[lane] = (w[lane] * d).mul_add(d, acc[lane]);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for ((q, w), &c) in q_rest.iter().zip(w_rest).zip(c_rest) {
        let d = q - f32::from(c);
        total += w * d * d;
    }
    total
}

/// The f32 of little-endian f16 bytes: the exponent is rebased by a multiplication by
/// 2^112, which also turns f16 subnormals into the right f32 (no infinity or NaN is ever
/// encoded).
#[inline(always)]
fn f16_at(code: &[u8]) -> f32 {
    let h = u32::from(u16::from_le_bytes([code[0], code[1]]));
    let magnitude = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
}

/// Eight f16 values from 16 bytes, decoded lane by lane into an array the compiler keeps
/// in one vector register.
#[inline(always)]
fn f16_eight(code: &[u8]) -> [f32; 8] {
    let code: &[u8; 16] = code.try_into().expect("16 bytes");
    let mut out = [0f32; 8];
    for (lane, x) in out.iter_mut().enumerate() {
        *x = f16_at(&code[lane * 2..lane * 2 + 2]);
    }
    out
}

#[inline(always)]
fn f16_dot(query: &[f32], code: &[u8]) -> f32 {
    f16_sum(query, code, |q, x, acc| q.mul_add(x, acc))
}

#[inline(always)]
fn f16_l2(query: &[f32], code: &[u8]) -> f32 {
    f16_sum(query, code, |q, x, acc| (q - x).mul_add(q - x, acc))
}

/// `f16_sum` of four codes side by side (each query chunk read once); every code's result
/// is the bits `f16_sum` gives it.
#[inline(always)]
fn f16_sum_four(query: &[f32], codes: [&[u8]; 4], add: impl Fn(f32, f32, f32) -> f32) -> [f32; 4] {
    let chunks = codes
        .iter()
        .fold(query.len() / 8, |n, code| n.min(code.len() / 16));
    let mut acc = [[0f32; 8]; 4];
    for c in 0..chunks {
        let q: &[f32; 8] = query[c * 8..c * 8 + 8].try_into().expect("8 floats");
        for (acc, code) in acc.iter_mut().zip(&codes) {
            let x = f16_eight(&code[c * 16..c * 16 + 16]);
            for lane in 0..8 {
                acc[lane] = add(q[lane], x[lane], acc[lane]);
            }
        }
    }
    let mut out = [0f32; 4];
    for ((out, acc), code) in out.iter_mut().zip(&acc).zip(&codes) {
        let mut total: f32 = acc.iter().sum();
        let rest = code.get(chunks * 16..).unwrap_or(&[]);
        for (q, c) in query[chunks * 8..].iter().zip(rest.chunks_exact(2)) {
            total = add(*q, f16_at(c), total);
        }
        *out = total;
    }
    out
}

/// Folds `add(query value, decoded value, sum)` over the dimensions, eight lanes at a time.
#[inline(always)]
fn f16_sum(query: &[f32], code: &[u8], add: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let q_chunks = query.chunks_exact(8);
    let c_chunks = code.chunks_exact(16);
    let (q_rest, c_rest) = (q_chunks.remainder(), c_chunks.remainder());
    for (q, c) in q_chunks.zip(c_chunks) {
        let x = f16_eight(c);
        for lane in 0..8 {
            acc[lane] = add(q[lane], x[lane], acc[lane]);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for (q, c) in q_rest.iter().zip(c_rest.chunks_exact(2)) {
        total = add(*q, f16_at(c), total);
    }
    total
}

#[inline(always)]
fn hamming(a: &[u8], b: &[u8]) -> u32 {
    let mut bits = 0u32;
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let a = u64::from_le_bytes(a.try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        bits += (a ^ b).count_ones();
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::tests::vector;

    fn trained(kind: QuantKind, metric: Metric, dim: usize) -> Quantizer {
        let sample: Vec<Vec<f32>> = (0..200).map(|i| vector(i, dim)).collect();
        Quantizer::train(kind, metric, dim, sample.iter().map(|v| v.as_slice())).unwrap()
    }

    #[test]
    fn f16_decoding_matches_the_half_crate_for_every_finite_value() {
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            if !h.is_finite() {
                continue;
            }
            let got = f16_at(&bits.to_le_bytes());
            assert_eq!(got.to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
        }
    }

    /// The worst error of an approximate distance: int8 moves each stored value by at
    /// most half a step (the test trains on the full range, so nothing is clamped); f16
    /// by a relative 2^-11.
    fn error_bound(q: &Quantizer, a: &[f32], b: &[f32]) -> f32 {
        let (a, b) = if q.metric == Metric::Cosine {
            (super::super::normalise(a), super::super::normalise(b))
        } else {
            (a.to_vec(), b.to_vec())
        };
        let slack = 1e-4;
        match &q.params {
            Params::Int8 { step, .. } => {
                let per_value: f32 = match q.metric {
                    Metric::L2 => a
                        .iter()
                        .zip(&b)
                        .zip(step)
                        .map(|((x, y), s)| (x - y).abs() * s + s * s / 4.0)
                        .sum(),
                    _ => a.iter().zip(step).map(|(x, s)| x.abs() * s / 2.0).sum(),
                };
                per_value * 1.01 + slack
            }
            _ => {
                let exact_terms: f32 = match q.metric {
                    Metric::L2 => a
                        .iter()
                        .zip(&b)
                        .map(|(x, y)| 2.0 * (x - y).abs() * y.abs())
                        .sum(),
                    _ => a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum(),
                };
                exact_terms * 2f32.powi(-10) + slack
            }
        }
    }

    #[test]
    fn approximate_distances_stay_within_the_quantization_error_for_every_kind_and_metric() {
        for dim in [1, 7, 16, 33, 100] {
            for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
                for kind in [QuantKind::Int8, QuantKind::F16] {
                    let sample: Vec<Vec<f32>> = (0..200).map(|i| vector(i, dim)).collect();
                    let q = Quantizer::train_with_quantile(
                        kind,
                        metric,
                        dim,
                        sample.iter().map(|v| v.as_slice()),
                        1.0,
                    )
                    .unwrap();
                    for i in 0..20 {
                        let a = vector(10 + i, dim);
                        let b = vector(20 + i, dim);
                        let code = q.encode_to_vec(&b).unwrap();
                        let approx = q.approximate_distance(&a, &code).unwrap();
                        let exact = metric.distance(&a, &b);
                        let bound = error_bound(&q, &a, &b);
                        assert!(
                            (approx - exact).abs() <= bound,
                            "{kind:?} {metric:?} dim {dim}: {approx} vs {exact} (bound {bound})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn batched_distances_equal_one_at_a_time() {
        for kind in [QuantKind::Int8, QuantKind::F16, QuantKind::Binary] {
            for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
                let q = trained(kind, metric, 37);
                let codes: Vec<Vec<u8>> = (0..9)
                    .map(|i| q.encode_to_vec(&vector(500 + i, 37)).unwrap())
                    .collect();
                let batch: Vec<(usize, &[u8])> = codes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (i, c.as_slice()))
                    .collect();
                let query = vector(7, 37);
                let prepared = q.prepare(&query);
                let mut out = vec![1.0];
                prepared.distances(&batch, &mut out);
                assert_eq!(out.len(), 9);
                for (code, d) in codes.iter().zip(&out) {
                    assert_eq!(prepared.distance(code).to_bits(), d.to_bits());
                }
            }
        }
    }

    #[test]
    fn binary_codes_count_the_bits_on_opposite_sides_of_the_mean() {
        let sample = [vec![0.0f32; 70], vec![2.0f32; 70]];
        let q = Quantizer::train(
            QuantKind::Binary,
            Metric::Dot,
            70,
            sample.iter().map(|v| v.as_slice()),
        )
        .unwrap();
        let mut a = vec![0.0f32; 70];
        let b = vec![0.0f32; 70];
        for x in a.iter_mut().take(65) {
            *x = 5.0;
        }
        let code = q.encode_to_vec(&b).unwrap();
        assert_eq!(code.len(), 16);
        assert_eq!(q.approximate_distance(&a, &code).unwrap(), 65.0);
        assert_eq!(q.approximate_distance(&b, &code).unwrap(), 0.0);
    }

    #[test]
    fn int8_codes_hold_levels_and_clamp_values_out_of_range() {
        let sample = [vec![0.0f32, 0.0], vec![255.0, 255.0]];
        let q = Quantizer::train_with_quantile(
            QuantKind::Int8,
            Metric::L2,
            2,
            sample.iter().map(|v| v.as_slice()),
            1.0,
        )
        .unwrap();
        assert_eq!(q.encode_to_vec(&[-10.0, 100.4]).unwrap()[..2], [0, 100]);
        assert_eq!(q.encode_to_vec(&[f32::NAN, 1e9]).unwrap()[..2], [0, 255]);
        let code = q.encode_to_vec(&[3.0, 4.0]).unwrap();
        assert_eq!(q.approximate_distance(&[0.0, 0.0], &code).unwrap(), 25.0);
    }
}
