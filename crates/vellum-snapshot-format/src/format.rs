//! Byte layout of snapshot archives, version 1 (normative text: `docs/format/snapshot.md`).
//!
//! Every offset is derived from the previous one and the sums are checked at compile time.
//! Encoders return bytes; decoders take bytes and return a typed error on anything the
//! format does not allow. The streaming reader (`reader.rs`) and writer (`writer.rs`) are
//! built from these pieces, and tests use them to build hostile archives by hand.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use std::collections::BTreeSet;

use vellum_fs::le::LeReader;
pub(crate) use vellum_fs::le::{array_at, u16_at, u32_at, u64_at};

use crate::error::{Error, Result};
use crate::id::SnapshotId;

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Archive header magic.
pub const HEADER_MAGIC: [u8; 8] = *b"VELLSNAP";
/// Section header magic.
pub const SECTION_MAGIC: [u8; 4] = *b"VSEC";
/// Footer magic.
pub const FOOTER_MAGIC: [u8; 4] = *b"VFTR";
/// Trailer magic.
pub const TRAILER_MAGIC: [u8; 8] = *b"VSNAPEND";

/// Smallest allowed checksummed block.
pub const MIN_BLOCK_BYTES: u32 = 4096;
/// Largest allowed checksummed block (bounds every buffer the reader allocates).
pub const MAX_BLOCK_BYTES: u32 = 16 << 20;
/// Default block size.
pub const DEFAULT_BLOCK_BYTES: u32 = 256 << 10;
/// Longest name inside an archive, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Largest footer body.
pub const MAX_FOOTER_BODY_BYTES: u64 = 256 << 20;
/// Most metadata bytes (keys and values) in one archive.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;
// Names go into u16 length fields, metadata values into u32 ones.
const _: () = assert!(MAX_NAME_BYTES <= u16::MAX as usize);
const _: () = assert!(MAX_METADATA_BYTES <= u32::MAX as u64);

/// Header field offsets.
pub mod header_layout {
    /// Magic, 8 bytes.
    pub const MAGIC: usize = 0;
    /// Format version, u16.
    pub const VERSION: usize = MAGIC + 8;
    /// Kind, u8.
    pub const KIND: usize = VERSION + 2;
    /// Flags, u8.
    pub const FLAGS: usize = KIND + 1;
    /// Block size, u32.
    pub const BLOCK_BYTES: usize = FLAGS + 1;
    /// Snapshot id, 16 bytes.
    pub const ID: usize = BLOCK_BYTES + 4;
    /// Parent id, 16 bytes.
    pub const PARENT: usize = ID + 16;
    /// First LSN covered (exclusive), u64.
    pub const LSN_START: usize = PARENT + 16;
    /// Last LSN covered (inclusive), u64.
    pub const LSN_END: usize = LSN_START + 8;
    /// Creation time in ms since the epoch, u64.
    pub const CREATED_MS: usize = LSN_END + 8;
    /// Reserved zeros, 20 bytes.
    pub const RESERVED: usize = CREATED_MS + 8;
    /// CRC32 of everything before, u32.
    pub const CRC: usize = RESERVED + 20;
    /// Header length.
    pub const LEN: usize = CRC + 4;
}
/// Archive header length in bytes.
pub const HEADER_BYTES: usize = header_layout::LEN;
const _: () = assert!(HEADER_BYTES == 96);
const _: () = assert!(header_layout::CRC.is_multiple_of(4));

/// Section header: fixed part before the name.
pub const SECTION_HEAD_BYTES: usize = 16;
/// Block frame header (`raw_len`, `stored_len`, `crc32`).
pub const BLOCK_FRAME_BYTES: usize = 12;
/// Section trailer: raw total, stored total, block count, BLAKE3, CRC32.
pub const SECTION_TRAILER_BYTES: usize = 8 + 8 + 8 + 32 + 4;
const _: () = assert!(SECTION_TRAILER_BYTES == 60);
/// Footer head: magic, three counts, body length.
pub const FOOTER_HEAD_BYTES: usize = 4 + 4 + 4 + 4 + 8;
const _: () = assert!(FOOTER_HEAD_BYTES == 24);
/// Fixed part of a footer section entry (before the name).
pub const SECTION_ENTRY_FIXED_BYTES: usize = 1 + 1 + 2 + 4 + 8 + 8 + 8 + 8 + 32;
const _: () = assert!(SECTION_ENTRY_FIXED_BYTES == 72);
/// Fixed part of a state entry.
pub const STATE_ENTRY_FIXED_BYTES: usize = 2 + 6 + 8 + 32;
const _: () = assert!(STATE_ENTRY_FIXED_BYTES == 48);
/// Fixed part of a metadata entry.
pub const METADATA_ENTRY_FIXED_BYTES: usize = 2 + 2 + 4;
/// Trailer: footer offset, footer length, archive length, magic, BLAKE3.
pub const TRAILER_BYTES: usize = 8 + 8 + 8 + 8 + 32;
const _: () = assert!(TRAILER_BYTES == 64);
/// The part of the trailer covered by the archive hash.
pub const TRAILER_HASHED_BYTES: usize = TRAILER_BYTES - 32;
/// Smallest possible archive: header, empty footer, trailer.
pub const MIN_ARCHIVE_BYTES: u64 = (HEADER_BYTES + FOOTER_HEAD_BYTES + 4 + TRAILER_BYTES) as u64;

/// Updates the whole-archive hash and a file's content hash. One after the other on
/// purpose: handing each block to another thread (`rayon::join`) was measured slower on the
/// shared 2-core machine (a wake-up per block); the import overlaps verification with
/// receiving on a long-lived thread instead (`verify_stream.rs`).
pub(crate) fn hash_both(
    a: &mut blake3::Hasher,
    a_bytes: &[u8],
    b: &mut blake3::Hasher,
    b_bytes: &[u8],
) {
    a.update(a_bytes);
    b.update(b_bytes);
}

pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

pub(crate) fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A length or count for a narrower field, from a value `validated_by` already bounded:
/// past that check, not fitting is a bug in the caller, never data.
#[track_caller]
fn narrow<T: TryFrom<usize>>(n: usize, validated_by: &str) -> T {
    T::try_from(n).unwrap_or_else(|_| panic!("{n} does not fit its field: {validated_by}"))
}

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotKind {
    /// Carries a whole generation.
    Full,
    /// Carries what changed since its parent.
    Incremental,
}

impl SnapshotKind {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            SnapshotKind::Full => 1,
            SnapshotKind::Incremental => 2,
        }
    }

    /// Decodes the on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SnapshotKind::Full),
            2 => Some(SnapshotKind::Incremental),
            _ => None,
        }
    }
}

/// How a section's blocks are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// As is.
    #[default]
    None,
    /// Each block one zstd frame (blocks that do not shrink are stored as is).
    Zstd,
}

impl Compression {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }

    /// Decodes the on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// What a section carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// The bytes of a named file.
    File,
    /// In an incremental: the named file of the parent's state is gone (no blocks).
    Removed,
}

impl SectionKind {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            SectionKind::File => 1,
            SectionKind::Removed => 2,
        }
    }

    /// Decodes the on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SectionKind::File),
            2 => Some(SectionKind::Removed),
            _ => None,
        }
    }
}

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

/// The footer: what the archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Footer {
    /// The sections in archive order.
    pub sections: Vec<SectionEntry>,
    /// The complete file set after applying this snapshot, sorted by name.
    pub state: Vec<StateEntry>,
    /// Caller key/value metadata.
    pub metadata: Vec<(String, Vec<u8>)>,
}

impl Footer {
    /// Encodes head, body and CRC.
    ///
    /// # Panics
    ///
    /// If a name, a metadata value or a table is too long for its length or count field,
    /// which [`Footer::validate`] rules out (`ArchiveWriter::finish` validates first).
    pub fn encode(&self) -> Vec<u8> {
        const NAME: &str = "Footer::validate: names to MAX_NAME_BYTES";
        let mut body = Vec::new();
        for s in &self.sections {
            let name = s.name.as_bytes();
            let mut e = [0u8; SECTION_ENTRY_FIXED_BYTES];
            e[0] = s.kind.code();
            e[1] = s.compression.code();
            put_u16(&mut e, 2, narrow(name.len(), NAME));
            put_u64(&mut e, 8, s.header_offset);
            put_u64(&mut e, 16, s.totals.raw_bytes);
            put_u64(&mut e, 24, s.totals.stored_bytes);
            put_u64(&mut e, 32, s.totals.block_count);
            e[40..72].copy_from_slice(&s.totals.content_hash);
            body.extend_from_slice(&e);
            body.extend_from_slice(name);
        }
        for s in &self.state {
            let name = s.name.as_bytes();
            let mut e = [0u8; STATE_ENTRY_FIXED_BYTES];
            put_u16(&mut e, 0, narrow(name.len(), NAME));
            put_u64(&mut e, 8, s.len);
            e[16..48].copy_from_slice(&s.hash);
            body.extend_from_slice(&e);
            body.extend_from_slice(name);
        }
        for (key, value) in &self.metadata {
            let mut e = [0u8; METADATA_ENTRY_FIXED_BYTES];
            put_u16(&mut e, 0, narrow(key.len(), NAME));
            let value_len = narrow(value.len(), "Footer::validate: MAX_METADATA_BYTES");
            put_u32(&mut e, 4, value_len);
            body.extend_from_slice(&e);
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(value);
        }
        let mut out = vec![0u8; FOOTER_HEAD_BYTES];
        out[..4].copy_from_slice(&FOOTER_MAGIC);
        const COUNT: &str = "Footer::validate: table lengths to u32::MAX";
        put_u32(&mut out, 4, narrow(self.sections.len(), COUNT));
        put_u32(&mut out, 8, narrow(self.state.len(), COUNT));
        put_u32(&mut out, 12, narrow(self.metadata.len(), COUNT));
        put_u64(&mut out, 16, body.len() as u64);
        out.extend_from_slice(&body);
        let crc = crc32(&[&out]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a footer from its 24-byte head, its body and its CRC (`offset` is the
    /// footer's archive offset, for messages). Validates names and the tables' own rules.
    pub fn decode(
        head: &[u8; FOOTER_HEAD_BYTES],
        body: &[u8],
        crc: u32,
        offset: u64,
    ) -> Result<Self> {
        if head[..4] != FOOTER_MAGIC {
            return Err(Error::corrupt(offset, "bad footer magic"));
        }
        if crc32(&[head, body]) != crc {
            return Err(Error::ChecksumMismatch {
                what: "footer".into(),
                offset,
            });
        }
        if u64_at(head, 16) != body.len() as u64 {
            return Err(Error::corrupt(offset, "footer body length mismatch"));
        }
        let n_sections = u32_at(head, 4) as usize;
        let n_state = u32_at(head, 8) as usize;
        let n_meta = u32_at(head, 12) as usize;
        let mut cur = Cursor(LeReader::with_base(body, offset + FOOTER_HEAD_BYTES as u64));
        // Capacities are bounded by what the body could possibly hold.
        let mut sections =
            Vec::with_capacity(n_sections.min(body.len() / SECTION_ENTRY_FIXED_BYTES));
        for _ in 0..n_sections {
            let at = cur.offset();
            let e = cur.take(SECTION_ENTRY_FIXED_BYTES)?;
            let kind = SectionKind::from_code(e[0])
                .ok_or_else(|| Error::corrupt(at, format!("unknown section kind {}", e[0])))?;
            let compression = Compression::from_code(e[1])
                .ok_or_else(|| Error::corrupt(at, format!("unknown compression {}", e[1])))?;
            let name_len = u16_at(e, 2) as usize;
            if u32_at(e, 4) != 0 {
                return Err(Error::corrupt(at, "reserved footer bits are set"));
            }
            let totals = SectionTotals {
                raw_bytes: u64_at(e, 16),
                stored_bytes: u64_at(e, 24),
                block_count: u64_at(e, 32),
                content_hash: array_at(e, 40),
            };
            let header_offset = u64_at(e, 8);
            let name = cur.name(name_len)?;
            sections.push(SectionEntry {
                kind,
                compression,
                name,
                header_offset,
                totals,
            });
        }
        let mut state = Vec::with_capacity(n_state.min(body.len() / STATE_ENTRY_FIXED_BYTES));
        for _ in 0..n_state {
            let at = cur.offset();
            let e = cur.take(STATE_ENTRY_FIXED_BYTES)?;
            let name_len = u16_at(e, 0) as usize;
            if e[2..8].iter().any(|&x| x != 0) {
                return Err(Error::corrupt(at, "reserved footer bits are set"));
            }
            let len = u64_at(e, 8);
            let hash = array_at(e, 16);
            let name = cur.name(name_len)?;
            state.push(StateEntry { name, len, hash });
        }
        let mut metadata = Vec::with_capacity(n_meta.min(body.len() / METADATA_ENTRY_FIXED_BYTES));
        for _ in 0..n_meta {
            let at = cur.offset();
            let e = cur.take(METADATA_ENTRY_FIXED_BYTES)?;
            let key_len = u16_at(e, 0) as usize;
            if u16_at(e, 2) != 0 {
                return Err(Error::corrupt(at, "reserved footer bits are set"));
            }
            let value_len = u32_at(e, 4) as usize;
            let key = cur.name(key_len)?;
            let value = cur.take(value_len)?.to_vec();
            metadata.push((key, value));
        }
        if cur.0.remaining() != 0 {
            return Err(Error::corrupt(
                cur.offset(),
                "footer body has bytes after its last entry",
            ));
        }
        let footer = Footer {
            sections,
            state,
            metadata,
        };
        footer.validate(offset)?;
        Ok(footer)
    }

    /// The table rules: table lengths that fit their counts, valid unique names, sorted
    /// state, metadata within limits, and the section and state tables agreeing with each
    /// other.
    pub fn validate(&self, offset: u64) -> Result<()> {
        // The head counts each table in a u32 (always true of a decoded footer).
        for (what, len) in [
            ("footer sections", self.sections.len()),
            ("footer state entries", self.state.len()),
            ("footer metadata entries", self.metadata.len()),
        ] {
            if u32::try_from(len).is_err() {
                return Err(Error::limit(what, len as u64, u64::from(u32::MAX)));
            }
        }
        check_names(self.sections.iter().map(|s| s.name.as_str()), "section")?;
        check_names(self.state.iter().map(|s| s.name.as_str()), "state entry")?;
        if self.state.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupt(offset, "state table is not sorted by name"));
        }
        let mut meta_bytes = 0u64;
        let mut keys = BTreeSet::new();
        for (key, value) in &self.metadata {
            validate_name(key)?;
            if !keys.insert(key.as_str()) {
                return Err(Error::DuplicateName {
                    name: key.clone(),
                    detail: "two metadata entries".into(),
                });
            }
            meta_bytes += (key.len() + value.len()) as u64;
        }
        if meta_bytes > MAX_METADATA_BYTES {
            return Err(Error::limit(
                "metadata bytes",
                meta_bytes,
                MAX_METADATA_BYTES,
            ));
        }
        for s in &self.sections {
            let state = self
                .state
                .binary_search_by(|e| e.name.as_str().cmp(&s.name))
                .ok()
                .map(|i| &self.state[i]);
            match (s.kind, state) {
                (SectionKind::File, Some(e))
                    if e.len == s.totals.raw_bytes && e.hash == s.totals.content_hash => {}
                (SectionKind::File, _) => {
                    return Err(Error::corrupt(
                        offset,
                        format!("file section {:?} disagrees with the state table", s.name),
                    ));
                }
                (SectionKind::Removed, None) => {
                    if s.totals != SectionTotals::empty() || s.compression != Compression::None {
                        return Err(Error::corrupt(
                            offset,
                            format!("removed section {:?} has content", s.name),
                        ));
                    }
                }
                (SectionKind::Removed, Some(_)) => {
                    return Err(Error::corrupt(
                        offset,
                        format!("removed section {:?} is still in the state table", s.name),
                    ));
                }
            }
        }
        Ok(())
    }
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

/// The footer body's reader: the shared little-endian cursor, with the footer's error.
struct Cursor<'a>(LeReader<'a>);

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.0.offset()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.0.take(n).map_err(|short| {
            Error::corrupt(
                short.offset,
                format!("footer entry of {n} bytes runs past the footer body"),
            )
        })
    }

    fn name(&mut self, len: usize) -> Result<String> {
        if len == 0 || len > MAX_NAME_BYTES {
            return Err(Error::corrupt(
                self.offset(),
                format!("name length {len} outside 1..={MAX_NAME_BYTES}"),
            ));
        }
        let bytes = self.take(len)?;
        let name = String::from_utf8(bytes.to_vec()).map_err(|_| Error::InvalidName {
            name: String::from_utf8_lossy(bytes).into_owned(),
            reason: "not UTF-8",
        })?;
        validate_name(&name)?;
        Ok(name)
    }
}

/// Checks that `name` is a safe relative path: non-empty, at most 1024 bytes, no NUL or
/// backslash, not absolute, each `/`-separated component non-empty and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("longer than 1024 bytes");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    if name.contains('\0') {
        return bad("contains NUL");
    }
    if name.contains('\\') {
        return bad("contains a backslash");
    }
    for component in name.split('/') {
        match component {
            "" => return bad("empty path component"),
            "." => return bad("`.` component"),
            ".." => return bad("`..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a list of names: each valid, none repeated, none a directory prefix of another.
pub fn check_names<'a>(names: impl IntoIterator<Item = &'a str>, what: &str) -> Result<()> {
    let mut seen = BTreeSet::new();
    for name in names {
        validate_name(name)?;
        if !seen.insert(name) {
            return Err(Error::DuplicateName {
                name: name.to_owned(),
                detail: format!("two {what}s"),
            });
        }
    }
    // In sorted order, a name that is a directory of another is immediately followed by a
    // name starting with "<name>/" somewhere before any name greater than "<name>/~": check
    // every name's directory prefixes instead, which is exact.
    for name in &seen {
        let mut at = 0;
        while let Some(i) = name[at..].find('/') {
            let dir = &name[..at + i];
            if seen.contains(dir) {
                return Err(Error::DuplicateName {
                    name: dir.to_owned(),
                    detail: format!("{dir:?} is both a file and the directory of {name:?}"),
                });
            }
            at += i + 1;
        }
    }
    Ok(())
}
