//! The int8 kernels on AVX2 and FMA, through pulp's safe intrinsics: eight levels widened
//! to `i32` and converted to `f32` per step. A batch is scored four codes at a time (each
//! query chunk loaded once, four accumulator chains side by side, as the f32 kernels do);
//! one code alone runs the same sequence, so both give the same bits. Left to itself the
//! compiler kept one 128-bit chain or vectorised across chains with shuffles.

use std::sync::OnceLock;

use core::arch::x86_64::__m256;
use pulp::x86::V3;
use pulp::{Simd, WithSimd, cast};

use super::kernels::{QuantizedQuery, levels_dot, weighted_l2};

/// AVX2 and FMA, detected once per process.
pub(super) fn v3() -> Option<V3> {
    static V3_TOKEN: OnceLock<Option<V3>> = OnceLock::new();
    *V3_TOKEN.get_or_init(V3::try_new)
}

pub(super) struct Int8Batch<'q, 'b, 'c, 'o, K> {
    pub(super) v3: V3,
    pub(super) query: &'q QuantizedQuery,
    pub(super) batch: &'b [(K, &'c [u8])],
    pub(super) out: &'o mut Vec<f32>,
}

impl<K> WithSimd for Int8Batch<'_, '_, '_, '_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let v3 = self.v3;
        let mut fours = self.batch.chunks_exact(4);
        for four in &mut fours {
            let codes = [four[0].1, four[1].1, four[2].1, four[3].1];
            let d = self.query.int8_four_with(
                codes,
                |q, w, c| l2_four(v3, q, w, c),
                |q, c| dot_four(v3, q, c),
            );
            self.out.extend_from_slice(&d);
        }
        for (_, code) in fours.remainder() {
            let d = self
                .query
                .int8_with(code, |q, w, c| l2(v3, q, w, c), |q, c| dot(v3, q, c));
            self.out.push(d);
        }
    }
}

/// Eight levels at `at` as `f32` lanes.
#[inline(always)]
fn levels(v3: V3, code: &[u8], at: usize) -> __m256 {
    let eight = u64::from_le_bytes(code[at..at + 8].try_into().expect("8 bytes"));
    let low: core::arch::x86_64::__m128i = cast([eight, 0u64]);
    let widened = v3.avx2._mm256_cvtepu8_epi32(low);
    v3.avx._mm256_cvtepi32_ps(widened)
}

/// Eight floats at `at`.
#[inline(always)]
fn floats(values: &[f32], at: usize) -> __m256 {
    cast(<[f32; 8]>::try_from(&values[at..at + 8]).expect("8 floats"))
}

#[inline(always)]
fn lane_sum(v: __m256) -> f32 {
    let lanes: [f32; 8] = cast(v);
    lanes.iter().sum()
}

/// `sum(scaled * levels)`: one chain, the sequence `dot_four` runs for each code.
#[inline(always)]
fn dot(v3: V3, scaled: &[f32], code: &[u8]) -> f32 {
    let len = scaled.len().min(code.len());
    let whole = len - len % 8;
    let mut acc = v3.avx._mm256_setzero_ps();
    for at in (0..whole).step_by(8) {
        acc = v3
            .fma
            ._mm256_fmadd_ps(floats(scaled, at), levels(v3, code, at), acc);
    }
    lane_sum(acc) + levels_dot(&scaled[whole..len], &code[whole..len])
}

/// `dot` of four codes, side by side.
#[inline(always)]
fn dot_four(v3: V3, scaled: &[f32], codes: [&[u8]; 4]) -> [f32; 4] {
    let len = codes.iter().fold(scaled.len(), |len, c| len.min(c.len()));
    let whole = len - len % 8;
    let mut acc = [v3.avx._mm256_setzero_ps(); 4];
    for at in (0..whole).step_by(8) {
        let q = floats(scaled, at);
        for (acc, code) in acc.iter_mut().zip(&codes) {
            *acc = v3.fma._mm256_fmadd_ps(q, levels(v3, code, at), *acc);
        }
    }
    let mut out = [0f32; 4];
    for ((out, acc), code) in out.iter_mut().zip(acc).zip(codes) {
        *out = lane_sum(acc) + levels_dot(&scaled[whole..len], &code[whole..len]);
    }
    out
}

/// `sum(weights * (centred - levels)^2)`: one chain, as `l2_four` runs for each code.
#[inline(always)]
fn l2(v3: V3, centred: &[f32], weights: &[f32], code: &[u8]) -> f32 {
    let len = centred.len().min(weights.len()).min(code.len());
    let whole = len - len % 8;
    let mut acc = v3.avx._mm256_setzero_ps();
    for at in (0..whole).step_by(8) {
        let d = v3
            .avx
            ._mm256_sub_ps(floats(centred, at), levels(v3, code, at));
        let wd = v3.avx._mm256_mul_ps(floats(weights, at), d);
        acc = v3.fma._mm256_fmadd_ps(wd, d, acc);
    }
    lane_sum(acc)
        + weighted_l2(
            &centred[whole..len],
            &weights[whole..len],
            &code[whole..len],
        )
}

/// `l2` of four codes, side by side.
#[inline(always)]
fn l2_four(v3: V3, centred: &[f32], weights: &[f32], codes: [&[u8]; 4]) -> [f32; 4] {
    let len = codes
        .iter()
        .fold(centred.len().min(weights.len()), |len, c| len.min(c.len()));
    let whole = len - len % 8;
    let mut acc = [v3.avx._mm256_setzero_ps(); 4];
    for at in (0..whole).step_by(8) {
        let (q, w) = (floats(centred, at), floats(weights, at));
        for (acc, code) in acc.iter_mut().zip(&codes) {
            let d = v3.avx._mm256_sub_ps(q, levels(v3, code, at));
            let wd = v3.avx._mm256_mul_ps(w, d);
            *acc = v3.fma._mm256_fmadd_ps(wd, d, *acc);
        }
    }
    let mut out = [0f32; 4];
    for ((out, acc), code) in out.iter_mut().zip(acc).zip(codes) {
        *out = lane_sum(acc)
            + weighted_l2(
                &centred[whole..len],
                &weights[whole..len],
                &code[whole..len],
            );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Both<'a>(V3, &'a [f32], &'a [f32], &'a [u8]);

    impl WithSimd for Both<'_> {
        type Output = (f32, f32);

        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) -> (f32, f32) {
            (
                dot(self.0, self.1, self.3),
                l2(self.0, self.1, self.2, self.3),
            )
        }
    }

    struct Fours<'a>(V3, &'a [f32], &'a [f32], [&'a [u8]; 4]);

    impl WithSimd for Fours<'_> {
        type Output = ([f32; 4], [f32; 4], [f32; 4], [f32; 4]);

        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) -> Self::Output {
            let (v3, q, w, c) = (self.0, self.1, self.2, self.3);
            (
                dot_four(v3, q, c),
                c.map(|c| dot(v3, q, c)),
                l2_four(v3, q, w, c),
                c.map(|c| l2(v3, q, w, c)),
            )
        }
    }

    #[test]
    fn four_codes_at_once_give_the_bits_of_one_at_a_time_for_every_length() {
        let Some(v3) = v3() else {
            eprintln!("no AVX2 and FMA here: nothing to compare");
            return;
        };
        for len in 0..100 {
            let q: Vec<f32> = (0..len).map(|i| (i as f32 * 0.61).cos() * 3.0).collect();
            let w: Vec<f32> = (0..len).map(|i| 0.25 + (i % 5) as f32 * 0.2).collect();
            let codes: Vec<Vec<u8>> = (0..4)
                .map(|j| (0..len).map(|i| ((i * 31 + j * 57) % 256) as u8).collect())
                .collect();
            let c = [&codes[0][..], &codes[1][..], &codes[2][..], &codes[3][..]];
            let (dot4, dot1, l24, l21) = Simd::vectorize(v3, Fours(v3, &q, &w, c));
            assert_eq!(
                dot4.map(f32::to_bits),
                dot1.map(f32::to_bits),
                "dot, length {len}"
            );
            assert_eq!(
                l24.map(f32::to_bits),
                l21.map(f32::to_bits),
                "l2, length {len}"
            );
        }
    }

    #[test]
    fn the_avx2_kernels_agree_with_the_portable_ones_for_every_length() {
        let Some(v3) = v3() else {
            eprintln!("no AVX2 and FMA here: nothing to compare");
            return;
        };
        for len in 0..150 {
            let q: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
            let w: Vec<f32> = (0..len).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
            let c: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let (d, l) = Simd::vectorize(v3, Both(v3, &q, &w, &c));
            let (want_d, want_l) = (levels_dot(&q, &c), weighted_l2(&q, &w, &c));
            assert!(
                (d - want_d).abs() <= 1e-3 * (1.0 + want_d.abs()),
                "{len}: {d} vs {want_d}"
            );
            assert!(
                (l - want_l).abs() <= 1e-3 * (1.0 + want_l.abs()),
                "{len}: {l} vs {want_l}"
            );
        }
    }
}
