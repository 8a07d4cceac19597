//! Calibrating a quantizer from a sample of the vectors it will encode.

use super::{Params, QuantKind, Quantizer, normalise};
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::format::MAX_DIM;

/// The share of each dimension's sampled values int8 keeps inside its range by default:
/// the lowest and highest 0.05% are clamped, so one outlier does not spread 256 levels
/// over a range the other values never use.
pub const INT8_QUANTILE: f32 = 0.999;

/// Values sampled at most for the int8 quantiles (a sample beyond it is strided): bounds
/// the memory of training at 16 MiB whatever the collection's size.
pub const TRAIN_VALUES_MAX: usize = 4 << 20;

impl Quantizer {
    /// Trains a quantizer of `kind` for vectors of `dim` floats under `metric` from
    /// `sample` (a few thousand vectors suffice; int8 keeps [`INT8_QUANTILE`] of them in
    /// range).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a dimension of 0 or above the index's limit, and
    /// [`Error::DimensionMismatch`] for a sample vector of another length. An empty sample
    /// trains a usable quantizer (int8 over `-1..=1`, binary thresholds 0).
    pub fn train<'v>(
        kind: QuantKind,
        metric: Metric,
        dim: usize,
        sample: impl IntoIterator<Item = &'v [f32]>,
    ) -> Result<Quantizer> {
        Quantizer::train_with_quantile(kind, metric, dim, sample, INT8_QUANTILE)
    }

    /// As [`Quantizer::train`], keeping `quantile` (in `0.5..=1.0`) of the sampled values
    /// inside the int8 range.
    pub fn train_with_quantile<'v>(
        kind: QuantKind,
        metric: Metric,
        dim: usize,
        sample: impl IntoIterator<Item = &'v [f32]>,
        quantile: f32,
    ) -> Result<Quantizer> {
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::InvalidParameter {
                name: "dim",
                reason: format!("{dim} is outside 1..={MAX_DIM}"),
            });
        }
        if !(0.5..=1.0).contains(&quantile) {
            return Err(Error::InvalidParameter {
                name: "quantile",
                reason: format!("{quantile} is outside 0.5..=1.0"),
            });
        }
        let mut vectors: Vec<Vec<f32>> = Vec::new();
        for v in sample {
            if v.len() != dim {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    found: v.len(),
                });
            }
            let v = if metric == Metric::Cosine {
                normalise(v)
            } else {
                v.to_vec()
            };
            if v.iter().all(|x| x.is_finite()) {
                vectors.push(v);
            }
        }
        let params = match kind {
            QuantKind::Int8 => int8_range(&vectors, dim, quantile),
            QuantKind::F16 => Params::F16,
            QuantKind::Binary => Params::Binary {
                thresholds: means(&vectors, dim),
            },
        };
        Ok(Quantizer {
            kind,
            metric,
            dim,
            params,
        })
    }
}

/// Per dimension, `lo` and `step` covering `quantile` of the sampled values.
fn int8_range(vectors: &[Vec<f32>], dim: usize, quantile: f32) -> Params {
    let stride = (vectors.len() * dim).div_ceil(TRAIN_VALUES_MAX).max(1);
    let rows: Vec<&Vec<f32>> = vectors.iter().step_by(stride).collect();
    let (mut lows, mut steps) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
    let mut values = Vec::with_capacity(rows.len());
    for d in 0..dim {
        values.clear();
        values.extend(rows.iter().map(|row| row[d]));
        let (lo, hi) = quantile_range(&mut values, quantile);
        lows.push(lo);
        // A dimension with one value keeps step 1: every code is 0 and `lo` is exact.
        steps.push(if hi > lo { (hi - lo) / 255.0 } else { 1.0 });
    }
    Params::Int8 {
        lo: lows,
        step: steps,
    }
}

/// The values at the `(1 - quantile) / 2` and `(1 + quantile) / 2` ranks; `(-1, 1)` for
/// no values.
fn quantile_range(values: &mut [f32], quantile: f32) -> (f32, f32) {
    if values.is_empty() {
        return (-1.0, 1.0);
    }
    let tail = (1.0 - quantile) / 2.0;
    let last = values.len() - 1;
    let lo_at = ((last as f32) * tail).floor() as usize;
    let hi_at = (((last as f32) * (1.0 - tail)).ceil() as usize).min(last);
    let lo = *values.select_nth_unstable_by(lo_at, f32::total_cmp).1;
    let hi = *values.select_nth_unstable_by(hi_at, f32::total_cmp).1;
    (lo, hi)
}

/// Each dimension's mean over the sample (0 without one).
fn means(vectors: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let mut sums = vec![0f64; dim];
    for v in vectors {
        for (s, x) in sums.iter_mut().zip(v) {
            *s += f64::from(*x);
        }
    }
    let n = vectors.len().max(1) as f64;
    sums.into_iter().map(|s| (s / n) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_calibration_clamps_outliers_beyond_the_quantile_per_dimension() {
        let mut sample: Vec<Vec<f32>> = (0..1000)
            .map(|i| vec![(i % 100) as f32 / 100.0, 5.0])
            .collect();
        sample.push(vec![1000.0, 5.0]);
        let q = Quantizer::train_with_quantile(
            QuantKind::Int8,
            Metric::L2,
            2,
            sample.iter().map(|v| v.as_slice()),
            0.99,
        )
        .unwrap();
        let Params::Int8 { lo, step } = &q.params else {
            panic!("not int8")
        };
        assert!(lo[0] >= 0.0 && lo[0] < 0.02, "{lo:?}");
        let hi = lo[0] + 255.0 * step[0];
        assert!(
            hi < 1.0 && hi > 0.95,
            "{hi}: the outlier stretched the range"
        );
        assert_eq!((lo[1], step[1]), (5.0, 1.0), "a constant dimension");
        assert_eq!(q.encode_to_vec(&[0.5, 5.0]).unwrap()[1], 0);
    }

    #[test]
    fn binary_thresholds_are_the_sample_means() {
        let sample = [vec![0.0, 2.0], vec![2.0, 4.0]];
        let q = Quantizer::train(
            QuantKind::Binary,
            Metric::Dot,
            2,
            sample.iter().map(|v| v.as_slice()),
        )
        .unwrap();
        assert_eq!(
            q.params,
            Params::Binary {
                thresholds: vec![1.0, 3.0]
            }
        );
    }

    #[test]
    fn a_sample_of_the_wrong_dimension_or_a_bad_quantile_is_refused() {
        let sample = [vec![0.0, 2.0, 3.0]];
        let wrong = Quantizer::train(
            QuantKind::Int8,
            Metric::L2,
            2,
            sample.iter().map(|v| v.as_slice()),
        );
        assert!(matches!(
            wrong,
            Err(Error::DimensionMismatch {
                expected: 2,
                found: 3
            })
        ));
        let bad = Quantizer::train_with_quantile(QuantKind::Int8, Metric::L2, 3, [], 0.2);
        assert!(matches!(
            bad,
            Err(Error::InvalidParameter {
                name: "quantile",
                ..
            })
        ));
        let empty = Quantizer::train(QuantKind::Int8, Metric::L2, 3, []).unwrap();
        let code = empty.encode_to_vec(&[-1.0, 0.0, 1.0]).unwrap();
        assert_eq!((code[0], code[2]), (0, 255), "an empty sample spans -1..=1");
        assert!((127..=128).contains(&code[1]), "{code:?}");
    }
}
