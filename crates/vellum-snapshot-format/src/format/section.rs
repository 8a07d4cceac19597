//! Sections: the head before a file's blocks, a block's frame, a section's totals and
//! its entry in the footer.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use super::*;

/// The decoded head of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHead {
    /// File or removed.
    pub kind: SectionKind,
    /// Block storage.
    pub compression: Compression,
    /// Index in archive order.
    pub index: u32,
    /// Validated relative name.
    pub name: String,
}

impl SectionHead {
    /// Encodes the section header (fixed part, name, CRC).
    ///
    /// # Panics
    ///
    /// If the name is longer than its u16 length field holds: [`validate_name`] (which
    /// `ArchiveWriter::begin_section` calls first) keeps names to [`MAX_NAME_BYTES`].
    pub fn encode(&self) -> Vec<u8> {
        let name = self.name.as_bytes();
        let mut b = vec![0u8; SECTION_HEAD_BYTES + name.len() + 4];
        b[..4].copy_from_slice(&SECTION_MAGIC);
        b[4] = self.kind.code();
        b[5] = self.compression.code();
        put_u16(&mut b, 6, narrow(name.len(), "validate_name"));
        put_u32(&mut b, 8, self.index);
        b[SECTION_HEAD_BYTES..SECTION_HEAD_BYTES + name.len()].copy_from_slice(name);
        let end = SECTION_HEAD_BYTES + name.len();
        let crc = crc32(&[&b[..end]]);
        put_u32(&mut b, end, crc);
        b
    }

    /// Decodes the fixed part: returns (kind, compression, name_len, index).
    pub(crate) fn decode_fixed(
        b: &[u8; SECTION_HEAD_BYTES],
        offset: u64,
    ) -> Result<(SectionKind, Compression, usize, u32)> {
        if b[..4] != SECTION_MAGIC {
            return Err(Error::corrupt(offset, "bad section magic"));
        }
        let kind = SectionKind::from_code(b[4])
            .ok_or_else(|| Error::corrupt(offset, format!("unknown section kind {}", b[4])))?;
        let compression = Compression::from_code(b[5])
            .ok_or_else(|| Error::corrupt(offset, format!("unknown compression {}", b[5])))?;
        let name_len = u16_at(b, 6) as usize;
        if name_len == 0 || name_len > MAX_NAME_BYTES {
            return Err(Error::corrupt(
                offset,
                format!("section name length {name_len} outside 1..={MAX_NAME_BYTES}"),
            ));
        }
        if u32_at(b, 12) != 0 {
            return Err(Error::corrupt(offset, "reserved section bits are set"));
        }
        Ok((kind, compression, name_len, u32_at(b, 8)))
    }
}

/// Encodes a block frame header for `stored` bytes that decode to `raw_len` bytes.
///
/// # Panics
///
/// If `stored` is longer than a u32 length holds: the writer stores at most a block
/// (`ArchiveHeader::validate` keeps blocks to [`MAX_BLOCK_BYTES`]).
pub fn block_frame(raw_len: u32, stored: &[u8]) -> [u8; BLOCK_FRAME_BYTES] {
    let mut b = [0u8; BLOCK_FRAME_BYTES];
    put_u32(&mut b, 0, raw_len);
    let stored_len = narrow(stored.len(), "one block: MAX_BLOCK_BYTES");
    put_u32(&mut b, 4, stored_len);
    let crc = crc32(&[&b[..8], stored]);
    put_u32(&mut b, 8, crc);
    b
}

/// Totals of one section as recorded in its trailer and in the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SectionTotals {
    /// Raw (decompressed) bytes.
    pub raw_bytes: u64,
    /// Stored bytes (sum of the blocks' stored lengths).
    pub stored_bytes: u64,
    /// Number of blocks.
    pub block_count: u64,
    /// BLAKE3 of the raw bytes.
    pub content_hash: [u8; 32],
}

impl SectionTotals {
    /// Encodes the 60-byte section trailer.
    pub fn encode_trailer(&self) -> [u8; SECTION_TRAILER_BYTES] {
        let mut b = [0u8; SECTION_TRAILER_BYTES];
        put_u64(&mut b, 0, self.raw_bytes);
        put_u64(&mut b, 8, self.stored_bytes);
        put_u64(&mut b, 16, self.block_count);
        b[24..56].copy_from_slice(&self.content_hash);
        let crc = crc32(&[&b[..56]]);
        put_u32(&mut b, 56, crc);
        b
    }

    pub(crate) fn decode_trailer(b: &[u8; SECTION_TRAILER_BYTES], offset: u64) -> Result<Self> {
        if crc32(&[&b[..56]]) != u32_at(b, 56) {
            return Err(Error::ChecksumMismatch {
                what: "section trailer".into(),
                offset,
            });
        }
        Ok(SectionTotals {
            raw_bytes: u64_at(b, 0),
            stored_bytes: u64_at(b, 8),
            block_count: u64_at(b, 16),
            content_hash: array_at(b, 24),
        })
    }
}

/// One entry of the footer's section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionEntry {
    /// File or removed.
    pub kind: SectionKind,
    /// Block storage.
    pub compression: Compression,
    /// Relative name.
    pub name: String,
    /// Archive offset of the section header.
    pub header_offset: u64,
    /// Totals.
    pub totals: SectionTotals,
}

/// One file of the generation after the snapshot is applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateEntry {
    /// Relative name.
    pub name: String,
    /// Length in bytes.
    pub len: u64,
    /// BLAKE3 of the content.
    pub hash: [u8; 32],
}

impl SectionTotals {
    /// The totals of a section without blocks.
    pub fn empty() -> Self {
        SectionTotals {
            content_hash: *blake3::hash(b"").as_bytes(),
            ..SectionTotals::default()
        }
    }
}
