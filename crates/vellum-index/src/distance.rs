//! Distance metrics and their kernels.
//!
//! Every metric is a *distance*: smaller is closer. The kernels are written once against
//! [`pulp::Simd`] and dispatched at run time by [`pulp::Arch`]: on x86-64 with AVX2 and FMA
//! they run on 256-bit registers with fused multiply-add; elsewhere they fall back to the
//! best available instruction set or to plain scalar code. This keeps the crate free of
//! `unsafe` (pulp confines the `target_feature` calls) while reaching the speed of
//! hand-written intrinsics; docs/format/index.md records the measurement.

use std::sync::OnceLock;

use pulp::{Arch, Simd, WithSimd};

/// How distance between two vectors is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Metric {
    /// Squared Euclidean distance, `sum((a - b)^2)`.
    L2,
    /// Cosine distance, `1 - a.b / (|a| |b|)`; 1 when either vector is all zeros.
    Cosine,
    /// Negated inner product, `-a.b`, so that a larger product is closer.
    Dot,
}

impl Metric {
    /// The code stored in the graph file header.
    pub(crate) fn code(self) -> u32 {
        match self {
            Metric::L2 => 1,
            Metric::Cosine => 2,
            Metric::Dot => 3,
        }
    }

    /// The metric for a header code, if it is one.
    pub(crate) fn from_code(code: u32) -> Option<Metric> {
        match code {
            1 => Some(Metric::L2),
            2 => Some(Metric::Cosine),
            3 => Some(Metric::Dot),
            _ => None,
        }
    }

    /// Distance between `a` and `b` under this metric, on the fastest kernel this CPU has.
    ///
    /// Both slices must have the same length; extra elements of the longer one are ignored.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        let arch = arch();
        match self {
            Metric::L2 => arch.dispatch(L2Kernel(a, b)),
            Metric::Dot => -arch.dispatch(DotKernel(a, b)),
            Metric::Cosine => crate::query::PreparedQuery::new(self, a).distance(b),
        }
    }

    /// Distance between `a` and `b` with plain scalar code (the portable fallback; tests
    /// compare the dispatched kernels against it).
    pub fn distance_scalar(self, a: &[f32], b: &[f32]) -> f32 {
        let scalar = pulp::Scalar::new();
        match self {
            Metric::L2 => L2Kernel(a, b).with_simd(scalar),
            Metric::Dot => -DotKernel(a, b).with_simd(scalar),
            Metric::Cosine => {
                let (dot, norm_b) = crate::query::dot_and_norm(scalar, a, b);
                cosine_from_parts((dot, dot_kernel(scalar, a, a), norm_b))
            }
        }
    }
}

/// The instruction set detected once per process.
pub(crate) fn arch() -> Arch {
    static ARCH: OnceLock<Arch> = OnceLock::new();
    *ARCH.get_or_init(Arch::new)
}

pub(crate) fn cosine_from_parts((dot, norm_a, norm_b): (f32, f32, f32)) -> f32 {
    let denom = (norm_a * norm_b).sqrt();
    if denom > 0.0 { 1.0 - dot / denom } else { 1.0 }
}

/// Four independent accumulators hide the latency of the fused multiply-add chain.
const LANES_UNROLL: usize = 4;

struct L2Kernel<'a>(&'a [f32], &'a [f32]);

impl WithSimd for L2Kernel<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        l2_kernel(simd, self.0, self.1)
    }
}

/// `sum((a - b)^2)` on `simd` (inlined into whichever dispatch calls it).
///
/// Two accumulators, chunk pairs, an odd last chunk into the first, then the scalar tail:
/// exactly the sequence [`l2_four`] runs for each of its vectors, so a distance is the same
/// bits whichever of the two computed it.
#[inline(always)]
pub(crate) fn l2_kernel<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a_head, a_tail) = S::as_simd_f32s(&a[..len]);
    let (b_head, b_tail) = S::as_simd_f32s(&b[..len]);
    let n = a_head.len();
    let b_head = &b_head[..n];
    let zero = simd.splat_f32s(0.0);
    let (mut acc0, mut acc1) = (zero, zero);
    for i in 0..n / 2 {
        let d0 = simd.sub_f32s(a_head[2 * i], b_head[2 * i]);
        acc0 = simd.mul_add_e_f32s(d0, d0, acc0);
        let d1 = simd.sub_f32s(a_head[2 * i + 1], b_head[2 * i + 1]);
        acc1 = simd.mul_add_e_f32s(d1, d1, acc1);
    }
    if n % 2 == 1 {
        let d = simd.sub_f32s(a_head[n - 1], b_head[n - 1]);
        acc0 = simd.mul_add_e_f32s(d, d, acc0);
    }
    let mut total = simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1));
    for (a, b) in a_tail.iter().zip(b_tail) {
        let d = a - b;
        total += d * d;
    }
    total
}

/// [`l2_kernel`] of `a` against four vectors at once: each chunk of the query is loaded
/// once for all four, and the four vectors' eight accumulator chains run side by side
/// (faiss scores its HNSW neighbours four at a time the same way). Every vector's result
/// is bit for bit what `l2_kernel` gives it.
#[inline(always)]
pub(crate) fn l2_four<S: Simd>(simd: S, a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let len = b.iter().fold(a.len(), |len, v| len.min(v.len()));
    let (a_head, a_tail) = S::as_simd_f32s(&a[..len]);
    let n = a_head.len();
    let split = b.map(|v| S::as_simd_f32s(&v[..len]));
    let heads = split.map(|(head, _)| &head[..n]);
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; 4];
    for i in 0..n / 2 {
        let (q0, q1) = (a_head[2 * i], a_head[2 * i + 1]);
        for (acc, head) in acc.iter_mut().zip(&heads) {
            let d0 = simd.sub_f32s(q0, head[2 * i]);
            acc[0] = simd.mul_add_e_f32s(d0, d0, acc[0]);
            let d1 = simd.sub_f32s(q1, head[2 * i + 1]);
            acc[1] = simd.mul_add_e_f32s(d1, d1, acc[1]);
        }
    }
    if n % 2 == 1 {
        for (acc, head) in acc.iter_mut().zip(&heads) {
            let d = simd.sub_f32s(a_head[n - 1], head[n - 1]);
            acc[0] = simd.mul_add_e_f32s(d, d, acc[0]);
        }
    }
    let mut out = [0f32; 4];
    for ((out, acc), (_, tail)) in out.iter_mut().zip(&acc).zip(&split) {
        let mut total = simd.reduce_sum_f32s(simd.add_f32s(acc[0], acc[1]));
        for (a, b) in a_tail.iter().zip(*tail) {
            let d = a - b;
            total += d * d;
        }
        *out = total;
    }
    out
}

struct DotKernel<'a>(&'a [f32], &'a [f32]);

impl WithSimd for DotKernel<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        dot_kernel(simd, self.0, self.1)
    }
}

/// `a.b` on `simd` (inlined into whichever dispatch calls it).
#[inline(always)]
pub(crate) fn dot_kernel<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a_head, a_tail) = S::as_simd_f32s(&a[..len]);
    let (b_head, b_tail) = S::as_simd_f32s(&b[..len]);
    let zero = simd.splat_f32s(0.0);
    let mut acc = [zero; LANES_UNROLL];
    let a_chunks = a_head.chunks_exact(LANES_UNROLL);
    let b_chunks = b_head.chunks_exact(LANES_UNROLL);
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (a, b) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES_UNROLL {
            acc[lane] = simd.mul_add_e_f32s(a[lane], b[lane], acc[lane]);
        }
    }
    for (a, b) in a_rest.iter().zip(b_rest) {
        acc[0] = simd.mul_add_e_f32s(*a, *b, acc[0]);
    }
    let sum = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
    let mut total = simd.reduce_sum_f32s(sum);
    for (a, b) in a_tail.iter().zip(b_tail) {
        total += a * b;
    }
    total
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deterministic vector of `len` components in [-1, 1) (shared with `query.rs`).
    pub(crate) fn vector(seed: u64, len: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn reference(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        match metric {
            Metric::L2 => a
                .iter()
                .zip(b)
                .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                .sum(),
            Metric::Dot => -dot,
            Metric::Cosine => {
                let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
                let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
                if na * nb > 0.0 {
                    1.0 - dot / (na * nb).sqrt()
                } else {
                    1.0
                }
            }
        }
    }

    #[test]
    fn dispatched_and_scalar_kernels_agree_with_a_float64_reference_for_every_length() {
        for len in 0..80 {
            let (a, b) = (vector(len as u64, len), vector(1000 + len as u64, len));
            for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
                let want = reference(metric, &a, &b);
                let tolerance = 1e-4 * (1.0 + want.abs());
                let fast = metric.distance(&a, &b) as f64;
                let scalar = metric.distance_scalar(&a, &b) as f64;
                assert!(
                    (fast - want).abs() <= tolerance,
                    "{metric:?} len {len}: {fast} vs {want}"
                );
                assert!(
                    (scalar - want).abs() <= tolerance,
                    "{metric:?} len {len}: {scalar} vs {want}"
                );
            }
        }
    }

    #[test]
    fn cosine_distance_of_a_zero_vector_is_one() {
        assert_eq!(Metric::Cosine.distance(&[0.0; 5], &[1.0; 5]), 1.0);
    }

    #[test]
    fn metric_codes_round_trip_and_unknown_codes_are_rejected() {
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            assert_eq!(Metric::from_code(metric.code()), Some(metric));
        }
        assert_eq!(Metric::from_code(0), None);
        assert_eq!(Metric::from_code(4), None);
    }
}
