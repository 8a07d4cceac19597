//! The trailer: where the footer is, and the whole-archive hash.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use super::*;

/// The archive trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Archive offset of the footer.
    pub footer_offset: u64,
    /// Footer length including head and CRC.
    pub footer_len: u64,
    /// Archive length including this trailer.
    pub archive_bytes: u64,
    /// BLAKE3 of the archive's first `archive_bytes - 32` bytes.
    pub hash: [u8; 32],
}

impl Trailer {
    /// The first 32 bytes (covered by the hash).
    pub fn encode_hashed_part(&self) -> [u8; TRAILER_HASHED_BYTES] {
        let mut b = [0u8; TRAILER_HASHED_BYTES];
        put_u64(&mut b, 0, self.footer_offset);
        put_u64(&mut b, 8, self.footer_len);
        put_u64(&mut b, 16, self.archive_bytes);
        b[24..32].copy_from_slice(&TRAILER_MAGIC);
        b
    }

    /// Decodes the 64 trailer bytes (structure only; the hash is checked by the reader).
    pub fn decode(b: &[u8; TRAILER_BYTES], offset: u64) -> Result<Self> {
        if b[24..32] != TRAILER_MAGIC {
            return Err(Error::corrupt(offset, "bad trailer magic"));
        }
        let t = Trailer {
            footer_offset: u64_at(b, 0),
            footer_len: u64_at(b, 8),
            archive_bytes: u64_at(b, 16),
            hash: array_at(b, 32),
        };
        let sum = t
            .footer_offset
            .checked_add(t.footer_len)
            .and_then(|x| x.checked_add(TRAILER_BYTES as u64));
        if sum != Some(t.archive_bytes) || t.footer_offset < HEADER_BYTES as u64 {
            return Err(Error::corrupt(
                offset,
                "trailer offsets do not add up to the archive length",
            ));
        }
        Ok(t)
    }
}
