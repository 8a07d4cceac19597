//! The facade's WAL records: what one upsert or delete looks like in the log.
//!
//! ```text
//! upsert: 0x01 | id u64 | dim u32 | dim × f32 | payload flag u8 | [payload len u32 | bytes]
//! delete: 0x02 | id u64
//! ```
//!
//! All integers and floats little-endian. The WAL frames and checksums each record; this
//! decoder is still total (a record from a newer version, or one damaged in a way the
//! checksum cannot see, is an error naming the LSN, never a panic).

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use vellum_fs::le::LeReader;

use crate::error::{Error, Result};

const TAG_UPSERT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// One logged operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Upsert {
        id: u64,
        vector: Vec<f32>,
        payload: Option<Vec<u8>>,
    },
    Delete {
        id: u64,
    },
}

/// Encodes an upsert of a vector the caller checked against the collection's dimension
/// (`Collection::write` does, before it encodes). A payload longer than its u32 length field
/// is refused: no WAL record could hold it either.
pub(crate) fn encode_upsert(id: u64, vector: &[f32], payload: Option<&[u8]>) -> Result<Vec<u8>> {
    // The payload with its length as the record stores it.
    let payload = match payload {
        None => None,
        Some(p) => Some((
            p,
            u32::try_from(p.len()).map_err(|_| {
                Error::InvalidArgument(format!(
                    "payload of id {id} is {} bytes, more than a record holds ({})",
                    p.len(),
                    u32::MAX
                ))
            })?,
        )),
    };
    // The collection's dimension, which `CollectionConfig::validate` keeps to MAX_DIM.
    let dim = u32::try_from(vector.len()).expect("a checked vector has at most MAX_DIM components");
    let mut out =
        Vec::with_capacity(1 + 8 + 4 + vector.len() * 4 + 5 + payload.map_or(0, |(p, _)| p.len()));
    out.push(TAG_UPSERT);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&dim.to_le_bytes());
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    match payload {
        None => out.push(0),
        Some((p, len)) => {
            out.push(1);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(p);
        }
    }
    Ok(out)
}

pub(crate) fn encode_delete(id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(TAG_DELETE);
    out.extend_from_slice(&id.to_le_bytes());
    out
}

/// The shared little-endian cursor, with the record's error (its LSN).
struct Reader<'a> {
    bytes: LeReader<'a>,
    lsn: u64,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.bytes
            .take(n)
            .map_err(|_| bad(self.lsn, "record ends early"))
    }

    fn u8(&mut self) -> Result<u8> {
        self.bytes
            .u8()
            .map_err(|_| bad(self.lsn, "record ends early"))
    }

    fn u32(&mut self) -> Result<u32> {
        self.bytes
            .u32()
            .map_err(|_| bad(self.lsn, "record ends early"))
    }

    fn u64(&mut self) -> Result<u64> {
        self.bytes
            .u64()
            .map_err(|_| bad(self.lsn, "record ends early"))
    }
}

fn bad(lsn: u64, what: &str) -> Error {
    Error::BadRecord {
        lsn,
        reason: what.to_owned(),
    }
}

/// Decodes the record at `lsn`, checking its dimension against `dim`.
pub(crate) fn decode(bytes: &[u8], lsn: u64, dim: usize) -> Result<Op> {
    let mut r = Reader {
        bytes: LeReader::new(bytes),
        lsn,
    };
    let op = match r.u8()? {
        TAG_UPSERT => {
            let id = r.u64()?;
            let d = r.u32()? as usize;
            if d != dim {
                return Err(bad(
                    lsn,
                    &format!("vector of {d} dimensions in a collection of {dim}"),
                ));
            }
            // The length is checked against the remaining bytes before allocating.
            let raw = r.take(
                d.checked_mul(4)
                    .ok_or_else(|| bad(lsn, "dimension overflows"))?,
            )?;
            let vector = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            let payload = match r.u8()? {
                0 => None,
                1 => {
                    let n = r.u32()? as usize;
                    Some(r.take(n)?.to_vec())
                }
                other => return Err(bad(lsn, &format!("payload flag {other}"))),
            };
            Op::Upsert {
                id,
                vector,
                payload,
            }
        }
        TAG_DELETE => Op::Delete { id: r.u64()? },
        other => return Err(bad(lsn, &format!("unknown record tag {other}"))),
    };
    if r.bytes.remaining() != 0 {
        return Err(bad(lsn, "trailing bytes after the record"));
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let up = encode_upsert(7, &[1.0, -2.5], Some(b"pay")).unwrap();
        assert_eq!(
            decode(&up, 1, 2).unwrap(),
            Op::Upsert {
                id: 7,
                vector: vec![1.0, -2.5],
                payload: Some(b"pay".to_vec())
            }
        );
        assert_eq!(
            decode(&encode_delete(9), 2, 2).unwrap(),
            Op::Delete { id: 9 }
        );
        assert_eq!(
            decode(&encode_upsert(1, &[0.5], None).unwrap(), 3, 1).unwrap(),
            Op::Upsert {
                id: 1,
                vector: vec![0.5],
                payload: None
            }
        );
    }

    #[test]
    fn every_truncation_and_wrong_dimension_is_an_error_naming_the_lsn() {
        let up = encode_upsert(7, &[1.0, -2.5, 3.0], Some(b"payload")).unwrap();
        for cut in 0..up.len() {
            let e = decode(&up[..cut], 42, 3).unwrap_err();
            assert!(e.to_string().contains("42"), "{e}");
        }
        assert!(decode(&up, 1, 4).is_err());
        let mut extra = up.clone();
        extra.push(0);
        assert!(decode(&extra, 1, 3).is_err());
        assert!(decode(&[9, 0, 0], 1, 3).is_err());
    }
}
