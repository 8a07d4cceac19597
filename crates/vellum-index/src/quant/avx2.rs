//! The int8 kernels on AVX2 and FMA, through pulp's safe intrinsics: eight levels widened
//! to `i32` and converted to `f32` per step, four independent multiply-add chains. Left to
//! itself the compiler kept one chain (each multiply-add waiting on the last) or, unrolled,
//! vectorized across the chains with shuffles at a third of the speed.

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
        for (_, code) in self.batch {
            let d = self
                .query
                .int8_with(code, |q, w, c| l2(v3, q, w, c), |q, c| dot(v3, q, c));
            self.out.push(d);
        }
    }
}

const CHAINS: usize = 4;
const STEP: usize = 8 * CHAINS;

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
fn sum(v3: V3, acc: [__m256; CHAINS]) -> f32 {
    let a = v3.avx._mm256_add_ps(acc[0], acc[1]);
    let b = v3.avx._mm256_add_ps(acc[2], acc[3]);
    let lanes: [f32; 8] = cast(v3.avx._mm256_add_ps(a, b));
    lanes.iter().sum()
}

/// `sum(scaled * levels)`.
#[inline(always)]
fn dot(v3: V3, scaled: &[f32], code: &[u8]) -> f32 {
    let len = scaled.len().min(code.len());
    let whole = len - len % STEP;
    let mut acc = [v3.avx._mm256_setzero_ps(); CHAINS];
    let mut i = 0;
    while i < whole {
        for (chain, acc) in acc.iter_mut().enumerate() {
            let at = i + chain * 8;
            *acc = v3
                .fma
                ._mm256_fmadd_ps(floats(scaled, at), levels(v3, code, at), *acc);
        }
        i += STEP;
    }
    sum(v3, acc) + levels_dot(&scaled[whole..len], &code[whole..len])
}

/// `sum(weights * (centred - levels)^2)`.
#[inline(always)]
fn l2(v3: V3, centred: &[f32], weights: &[f32], code: &[u8]) -> f32 {
    let len = centred.len().min(weights.len()).min(code.len());
    let whole = len - len % STEP;
    let mut acc = [v3.avx._mm256_setzero_ps(); CHAINS];
    let mut i = 0;
    while i < whole {
        for (chain, acc) in acc.iter_mut().enumerate() {
            let at = i + chain * 8;
            let d = v3
                .avx
                ._mm256_sub_ps(floats(centred, at), levels(v3, code, at));
            let wd = v3.avx._mm256_mul_ps(floats(weights, at), d);
            *acc = v3.fma._mm256_fmadd_ps(wd, d, *acc);
        }
        i += STEP;
    }
    sum(v3, acc)
        + weighted_l2(
            &centred[whole..len],
            &weights[whole..len],
            &code[whole..len],
        )
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
