//! The archive header: what the snapshot is, which block size it uses, its chain.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use super::*;

/// The archive header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveHeader {
    /// Full or incremental.
    pub kind: SnapshotKind,
    /// Raw bytes per checksummed block.
    pub block_bytes: u32,
    /// This snapshot.
    pub id: SnapshotId,
    /// The parent (incremental only).
    pub parent: Option<SnapshotId>,
    /// LSN range covered: `(lsn_start, lsn_end]`.
    pub lsn_start: u64,
    /// Last LSN covered.
    pub lsn_end: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

impl ArchiveHeader {
    /// Checks the header's own rules (the decoder and the writer both call this).
    pub fn validate(&self) -> Result<()> {
        if !(MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES).contains(&self.block_bytes) {
            return Err(Error::corrupt(
                header_layout::BLOCK_BYTES as u64,
                format!(
                    "block size {} outside {MIN_BLOCK_BYTES}..={MAX_BLOCK_BYTES}",
                    self.block_bytes
                ),
            ));
        }
        if self.id.is_none() {
            return Err(Error::corrupt(
                header_layout::ID as u64,
                "snapshot id is zero",
            ));
        }
        match (self.kind, self.parent) {
            (SnapshotKind::Full, None) => {
                if self.lsn_start != 0 {
                    return Err(Error::corrupt(
                        header_layout::LSN_START as u64,
                        "a full snapshot must start at LSN 0",
                    ));
                }
            }
            (SnapshotKind::Incremental, Some(p)) if !p.is_none() && p != self.id => {}
            (SnapshotKind::Full, Some(_)) => {
                return Err(Error::corrupt(
                    header_layout::PARENT as u64,
                    "a full snapshot names a parent",
                ));
            }
            (SnapshotKind::Incremental, _) => {
                return Err(Error::corrupt(
                    header_layout::PARENT as u64,
                    "an incremental snapshot needs a parent other than itself",
                ));
            }
        }
        if self.lsn_start > self.lsn_end {
            return Err(Error::corrupt(
                header_layout::LSN_START as u64,
                format!(
                    "LSN range starts at {} after its end {}",
                    self.lsn_start, self.lsn_end
                ),
            ));
        }
        Ok(())
    }

    /// Encodes the 96 header bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        use header_layout as h;
        let mut b = [0u8; HEADER_BYTES];
        b[h::MAGIC..h::MAGIC + 8].copy_from_slice(&HEADER_MAGIC);
        put_u16(&mut b, h::VERSION, FORMAT_VERSION);
        b[h::KIND] = self.kind.code();
        b[h::FLAGS] = 0;
        put_u32(&mut b, h::BLOCK_BYTES, self.block_bytes);
        b[h::ID..h::ID + 16].copy_from_slice(&self.id.0);
        b[h::PARENT..h::PARENT + 16].copy_from_slice(&self.parent.unwrap_or(SnapshotId::NONE).0);
        put_u64(&mut b, h::LSN_START, self.lsn_start);
        put_u64(&mut b, h::LSN_END, self.lsn_end);
        put_u64(&mut b, h::CREATED_MS, self.created_unix_ms);
        let crc = crc32(&[&b[..h::CRC]]);
        put_u32(&mut b, h::CRC, crc);
        b
    }

    /// Decodes and validates the 96 header bytes.
    pub fn decode(b: &[u8; HEADER_BYTES]) -> Result<Self> {
        use header_layout as h;
        if b[h::MAGIC..h::MAGIC + 8] != HEADER_MAGIC {
            return Err(Error::corrupt(
                0,
                "not a Vellum snapshot (bad header magic)",
            ));
        }
        if crc32(&[&b[..h::CRC]]) != u32_at(b, h::CRC) {
            return Err(Error::ChecksumMismatch {
                what: "archive header".into(),
                offset: 0,
            });
        }
        let version = u16_at(b, h::VERSION);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        let kind = SnapshotKind::from_code(b[h::KIND]).ok_or_else(|| {
            Error::corrupt(h::KIND as u64, format!("unknown kind {}", b[h::KIND]))
        })?;
        if b[h::FLAGS] != 0 || b[h::RESERVED..h::CRC].iter().any(|&x| x != 0) {
            return Err(Error::corrupt(
                h::FLAGS as u64,
                "reserved header bits are set",
            ));
        }
        let parent = SnapshotId(array_at(b, h::PARENT));
        let header = ArchiveHeader {
            kind,
            block_bytes: u32_at(b, h::BLOCK_BYTES),
            id: SnapshotId(array_at(b, h::ID)),
            parent: (!parent.is_none()).then_some(parent),
            lsn_start: u64_at(b, h::LSN_START),
            lsn_end: u64_at(b, h::LSN_END),
            created_unix_ms: u64_at(b, h::CREATED_MS),
        };
        header.validate()?;
        Ok(header)
    }
}
