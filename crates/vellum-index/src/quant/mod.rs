//! Quantized copies of vectors: compact codes the graph walk and the exact scan score
//! instead of the `f32` originals, which stay the source of truth and rescore the best
//! candidates.
//!
//! Three kinds (docs/format/quantizer.md has the byte layouts):
//!
//! * **int8** — every value `x` becomes `round((x - lo) / step)` clamped to `0..=255`,
//!   with a `lo` and `step` per dimension, calibrated from a sample at a quantile so a few
//!   outliers do not waste the range. The query stays `f32` (asymmetric scoring: only the
//!   stored side carries quantization error), one multiply-add a dimension for dot and
//!   cosine. 1 byte a dimension.
//! * **f16** — half precision, 2 bytes a dimension; the query stays `f32`.
//! * **binary** — one bit a dimension, set when the value is above that dimension's mean in
//!   the sample; scored by Hamming distance (XOR and popcount). Meant for cosine and dot on
//!   high dimensions, always with rescoring.
//!
//! Cosine collections quantize the *normalised* vector, so a cosine distance is one dot
//! product of codes; the originals are never changed.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod codes;
mod kernels;
mod params;
mod train;

pub use codes::{CodeSource, FlatCodes};
pub use params::{QUANTIZER_MAGIC, QUANTIZER_VERSION};
pub use train::{INT8_QUANTILE, TRAIN_VALUES_MAX};

use crate::distance::Metric;
use crate::error::{Error, Result};

pub(crate) use kernels::QuantizedQuery;

/// Which quantized copy a collection keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuantKind {
    /// One byte a dimension, calibrated per collection.
    Int8,
    /// Half precision.
    F16,
    /// One bit a dimension.
    Binary,
}

impl QuantKind {
    /// The lowercase name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            QuantKind::Int8 => "int8",
            QuantKind::F16 => "f16",
            QuantKind::Binary => "binary",
        }
    }

    /// The kind named `name` (`int8`, `f16`, `binary`).
    pub fn from_name(name: &str) -> Option<QuantKind> {
        match name {
            "int8" => Some(QuantKind::Int8),
            "f16" => Some(QuantKind::F16),
            "binary" => Some(QuantKind::Binary),
            _ => None,
        }
    }

    pub(crate) fn code(self) -> u32 {
        match self {
            QuantKind::Int8 => 1,
            QuantKind::F16 => 2,
            QuantKind::Binary => 3,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<QuantKind> {
        match code {
            1 => Some(QuantKind::Int8),
            2 => Some(QuantKind::F16),
            3 => Some(QuantKind::Binary),
            _ => None,
        }
    }
}

/// The trained parameters of one quantized copy: how a vector becomes a code and how a
/// query is scored against codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    kind: QuantKind,
    metric: Metric,
    dim: usize,
    params: Params,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Params {
    /// `x[i] ~ lo[i] + step[i] * code[i]`; every `step` is positive.
    Int8 {
        lo: Vec<f32>,
        step: Vec<f32>,
    },
    F16,
    /// A bit is set when the value is above its dimension's threshold.
    Binary {
        thresholds: Vec<f32>,
    },
}

impl Quantizer {
    /// The kind of codes.
    pub fn kind(&self) -> QuantKind {
        self.kind
    }

    /// The metric the codes are scored under.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Floats per original vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes per code.
    pub fn code_len(&self) -> usize {
        code_len(self.kind, self.dim)
    }

    /// Encodes `vector` (of `dim()` floats) into `out` (of `code_len()` bytes).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when either length is wrong.
    pub fn encode(&self, vector: &[f32], out: &mut [u8]) -> Result<()> {
        self.check_lengths(vector, out)?;
        let normalised;
        let vector = if self.metric == Metric::Cosine {
            normalised = normalise(vector);
            &normalised[..]
        } else {
            vector
        };
        kernels::encode(&self.params, vector, out);
        Ok(())
    }

    /// The code of `vector`, in a new buffer.
    pub fn encode_to_vec(&self, vector: &[f32]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.code_len()];
        self.encode(vector, &mut out)?;
        Ok(out)
    }

    /// The query prepared for scoring codes.
    pub(crate) fn prepare(&self, query: &[f32]) -> QuantizedQuery {
        let normalised;
        let query = if self.metric == Metric::Cosine {
            normalised = normalise(query);
            &normalised[..]
        } else {
            query
        };
        QuantizedQuery::new(self, query)
    }

    /// The approximate distance from `query` to the vector `code` was encoded from, on the
    /// scale of the metric (rescoring replaces it with the exact one).
    pub fn approximate_distance(&self, query: &[f32], code: &[u8]) -> Result<f32> {
        self.check_lengths(query, code)?;
        Ok(self.prepare(query).distance(code))
    }

    /// A vector of `dim()` floats and a code of `code_len()` bytes.
    fn check_lengths(&self, vector: &[f32], code: &[u8]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: vector.len(),
            });
        }
        if code.len() != self.code_len() {
            return Err(Error::InvalidParameter {
                name: "code",
                reason: format!("{} bytes, a code is {}", code.len(), self.code_len()),
            });
        }
        Ok(())
    }
}

/// Bytes per code of `kind` for `dim` floats.
pub fn code_len(kind: QuantKind, dim: usize) -> usize {
    match kind {
        QuantKind::Int8 => dim,
        QuantKind::F16 => dim * 2,
        QuantKind::Binary => dim.div_ceil(64) * 8,
    }
}

/// `v / |v|`, or `v` itself when it is all zeros.
fn normalise(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// How a quantized search finds and rescores its hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizedSearch {
    /// Rescore the candidates with the `f32` originals (exact distances, better order).
    /// Without it the hits carry approximate distances.
    pub rescore: bool,
    /// How many candidates per requested hit the codes select for rescoring (at least 1).
    pub oversampling: f32,
}

impl Default for QuantizedSearch {
    fn default() -> QuantizedSearch {
        QuantizedSearch {
            rescore: true,
            oversampling: 2.0,
        }
    }
}
