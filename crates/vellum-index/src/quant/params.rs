//! The quantizer's parameters as bytes (docs/format/quantizer.md): what a checkpoint
//! stores so codes written before a restart are scored the same way after it.

use vellum_fs::le::LeReader;

use super::{Params, QuantKind, Quantizer};
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::format::MAX_DIM;

/// The first four bytes of encoded quantizer parameters.
pub const QUANTIZER_MAGIC: [u8; 4] = *b"VQNT";
/// The format version this build reads and writes.
pub const QUANTIZER_VERSION: u32 = 1;

/// Magic, version, kind, metric, dim.
const HEADER_LEN: usize = 4 + 4 + 4 + 4 + 4;

impl Quantizer {
    /// The parameters as bytes, ending in a CRC-32 of everything before it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 12);
        out.extend_from_slice(&QUANTIZER_MAGIC);
        out.extend_from_slice(&QUANTIZER_VERSION.to_le_bytes());
        out.extend_from_slice(&self.kind.code().to_le_bytes());
        out.extend_from_slice(&self.metric.code().to_le_bytes());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        match &self.params {
            Params::Int8 { lo, step } => {
                for (lo, step) in lo.iter().zip(step) {
                    out.extend_from_slice(&lo.to_le_bytes());
                    out.extend_from_slice(&step.to_le_bytes());
                }
            }
            Params::F16 => {}
            Params::Binary { thresholds } => {
                for t in thresholds {
                    out.extend_from_slice(&t.to_le_bytes());
                }
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parameters from [`Quantizer::to_bytes`], every field checked: a wrong magic,
    /// version, kind, metric or dimension, a length that does not match the kind, a
    /// non-finite or non-positive int8 step, or a checksum mismatch is an
    /// [`Error::CorruptQuantizer`] naming the field and its offset.
    pub fn from_bytes(bytes: &[u8]) -> Result<Quantizer> {
        let bad = |offset: u64, field: &'static str, reason: String| Error::CorruptQuantizer {
            offset,
            field,
            reason,
        };
        if bytes.len() < HEADER_LEN + 4 {
            return Err(bad(
                0,
                "header",
                format!(
                    "{} bytes, the header and checksum alone are {}",
                    bytes.len(),
                    HEADER_LEN + 4
                ),
            ));
        }
        let body_len = bytes.len() - 4;
        let stored = u32::from_le_bytes(bytes[body_len..].try_into().expect("4 bytes"));
        let actual = crc32fast::hash(&bytes[..body_len]);
        let mut r = LeReader::new(&bytes[..body_len]);
        let short = |s: vellum_fs::le::Short| bad(s.offset, "header", s.to_string());
        let magic: [u8; 4] = r.array().map_err(short)?;
        if magic != QUANTIZER_MAGIC {
            return Err(bad(
                0,
                "magic",
                format!("{magic:?} is not {QUANTIZER_MAGIC:?}"),
            ));
        }
        let version = r.u32().map_err(short)?;
        if version != QUANTIZER_VERSION {
            return Err(bad(
                4,
                "version",
                format!("version {version}; this build reads {QUANTIZER_VERSION}"),
            ));
        }
        if stored != actual {
            return Err(bad(
                body_len as u64,
                "crc32",
                format!("stored {stored:#010x}, computed {actual:#010x}"),
            ));
        }
        let kind_code = r.u32().map_err(short)?;
        let kind = QuantKind::from_code(kind_code)
            .ok_or_else(|| bad(8, "kind", format!("{kind_code} is not a quantizer kind")))?;
        let metric_code = r.u32().map_err(short)?;
        let metric = Metric::from_code(metric_code)
            .ok_or_else(|| bad(12, "metric", format!("{metric_code} is not a metric")))?;
        let dim = r.u32().map_err(short)? as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(bad(16, "dim", format!("{dim} is outside 1..={MAX_DIM}")));
        }
        let want = match kind {
            QuantKind::Int8 => dim * 8,
            QuantKind::F16 => 0,
            QuantKind::Binary => dim * 4,
        };
        if r.remaining() != want {
            return Err(bad(
                HEADER_LEN as u64,
                "params",
                format!(
                    "{} bytes of {} parameters, expected {want}",
                    r.remaining(),
                    kind.name()
                ),
            ));
        }
        let params = match kind {
            QuantKind::Int8 => {
                let (mut lows, mut steps) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
                for i in 0..dim {
                    let at = (HEADER_LEN + i * 8) as u64;
                    let lo = r.f32().map_err(short)?;
                    let step = r.f32().map_err(short)?;
                    if !lo.is_finite() {
                        return Err(bad(at, "lo", format!("dimension {i}: {lo} is not finite")));
                    }
                    if !(step.is_finite() && step > 0.0) {
                        return Err(bad(
                            at + 4,
                            "step",
                            format!("dimension {i}: {step} is not a positive number"),
                        ));
                    }
                    lows.push(lo);
                    steps.push(step);
                }
                Params::Int8 {
                    lo: lows,
                    step: steps,
                }
            }
            QuantKind::F16 => Params::F16,
            QuantKind::Binary => {
                let mut thresholds = Vec::with_capacity(dim);
                for i in 0..dim {
                    let t = r.f32().map_err(short)?;
                    if t.is_nan() {
                        return Err(bad(
                            (HEADER_LEN + i * 4) as u64,
                            "thresholds",
                            format!("threshold {i} is NaN"),
                        ));
                    }
                    thresholds.push(t);
                }
                Params::Binary { thresholds }
            }
        };
        Ok(Quantizer {
            kind,
            metric,
            dim,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::tests::vector;

    #[test]
    fn parameters_round_trip_for_every_kind() {
        let sample: Vec<Vec<f32>> = (0..50).map(|i| vector(i, 9)).collect();
        for kind in [QuantKind::Int8, QuantKind::F16, QuantKind::Binary] {
            for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
                let q =
                    Quantizer::train(kind, metric, 9, sample.iter().map(|v| v.as_slice())).unwrap();
                assert_eq!(Quantizer::from_bytes(&q.to_bytes()).unwrap(), q);
            }
        }
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused_with_its_field() {
        let sample: Vec<Vec<f32>> = (0..50).map(|i| vector(i, 3)).collect();
        let q = Quantizer::train(
            QuantKind::Binary,
            Metric::Dot,
            3,
            sample.iter().map(|v| v.as_slice()),
        )
        .unwrap();
        let bytes = q.to_bytes();
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let err = Quantizer::from_bytes(&bad).unwrap_err();
            assert!(
                matches!(err, Error::CorruptQuantizer { .. }),
                "byte {at}: {err}"
            );
        }
        for len in 0..bytes.len() {
            assert!(
                Quantizer::from_bytes(&bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
        let mut wrong_step = Quantizer::train(QuantKind::Int8, Metric::L2, 3, [])
            .unwrap()
            .to_bytes();
        let body = wrong_step.len() - 4;
        wrong_step[24..28].copy_from_slice(&(-1.0f32).to_le_bytes());
        let crc = crc32fast::hash(&wrong_step[..body]);
        wrong_step[body..].copy_from_slice(&crc.to_le_bytes());
        let err = Quantizer::from_bytes(&wrong_step).unwrap_err();
        assert!(err.to_string().contains("(step)"), "{err}");
    }
}
