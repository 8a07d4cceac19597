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

mod footer;
mod header;
mod kinds;
mod names;
mod section;
mod trailer;

pub use footer::Footer;
pub use header::ArchiveHeader;
pub use kinds::{Compression, SectionKind, SnapshotKind};
pub use names::{check_names, validate_name};
pub use section::{SectionEntry, SectionHead, SectionTotals, StateEntry, block_frame};
pub use trailer::Trailer;
