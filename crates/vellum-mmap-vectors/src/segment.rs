//! Segment files: a header page, then fixed-size slots. Layout in `docs/format/vectors.md`.
//!
//! All integers are little-endian. The header occupies the first [`HEADER_BYTES`] of the
//! file (one page, so slots start page-aligned and every slot is aligned to
//! [`SLOT_ALIGN_BYTES`]); its fields are followed by a CRC-32 of the bytes before it and
//! zeros up to the end of the page.

#![deny(clippy::cast_possible_truncation)]

use std::fmt;
use vellum_fs::le::u32_at;

/// The first eight bytes of a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"VLMVSEG\x01";
/// The segment format version written and read.
pub const SEGMENT_VERSION: u32 = 1;
/// Bytes reserved for the header: slots start here.
pub const HEADER_BYTES: usize = 4096;
/// Every slot starts at a multiple of this many bytes (a cache line; enough for any SIMD
/// load of f32 lanes).
pub const SLOT_ALIGN_BYTES: usize = 64;
/// The largest dimension accepted (a slot must stay well below a segment).
pub const MAX_DIMENSION: u32 = 1 << 16;
/// The most slots one segment may hold.
pub const MAX_SLOTS_PER_SEGMENT: u32 = 1 << 24;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + SEGMENT_MAGIC.len();
const ELEMENT_OFFSET: usize = VERSION_OFFSET + 4;
const RESERVED_OFFSET: usize = ELEMENT_OFFSET + 1;
const DIMENSION_OFFSET: usize = RESERVED_OFFSET + 3;
const SLOT_BYTES_OFFSET: usize = DIMENSION_OFFSET + 4;
const SLOTS_OFFSET: usize = SLOT_BYTES_OFFSET + 4;
const INDEX_OFFSET: usize = SLOTS_OFFSET + 4;
const CRC_OFFSET: usize = INDEX_OFFSET + 4;
/// Bytes of header fields, checksum included.
pub const HEADER_FIELDS_BYTES: usize = CRC_OFFSET + 4;

const _: () = assert!(DIMENSION_OFFSET.is_multiple_of(4) && CRC_OFFSET == 32);
const _: () = assert!(HEADER_FIELDS_BYTES <= HEADER_BYTES);
const _: () = assert!(HEADER_BYTES.is_multiple_of(SLOT_ALIGN_BYTES));

/// The element type of a segment's slots: `f32` vectors, or the opaque bytes of a code
/// plane (`codes.rs`). The header byte leaves room for `f16` (2) and `i8` (3) vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementType {
    /// 32-bit IEEE float.
    F32,
    /// Bytes of a code plane's slots (a code and its binding); never a vector segment.
    Code,
}

impl ElementType {
    /// The header byte of this type.
    pub fn id(self) -> u8 {
        match self {
            ElementType::F32 => 1,
            ElementType::Code => 4,
        }
    }

    /// The type a header byte names, if this build supports it.
    pub fn from_id(id: u8) -> Option<ElementType> {
        match id {
            1 => Some(ElementType::F32),
            4 => Some(ElementType::Code),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            ElementType::F32 => 4,
            ElementType::Code => 1,
        }
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElementType::F32 => f.write_str("f32"),
            ElementType::Code => f.write_str("code"),
        }
    }
}

/// Code slots are rounded up to this many bytes only: codes are read a byte at a time (or
/// unaligned), and 64-byte slots made 36-byte codes take 64 (a code plane of 32-dimension
/// int8 codes took 69% of the vectors' bytes; with 8 it takes 31%).
pub const CODE_SLOT_ALIGN_BYTES: usize = 8;

/// The bytes one slot takes for `dimension` elements of `element`: rounded up to
/// [`SLOT_ALIGN_BYTES`] for vectors, [`CODE_SLOT_ALIGN_BYTES`] for codes.
pub fn slot_bytes_for(element: ElementType, dimension: u32) -> usize {
    let raw = dimension as usize * element.size_bytes();
    let align = match element {
        ElementType::Code => CODE_SLOT_ALIGN_BYTES,
        _ => SLOT_ALIGN_BYTES,
    };
    raw.div_ceil(align) * align
}

/// The decoded header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Element type.
    pub element: ElementType,
    /// Elements per vector.
    pub dimension: u32,
    /// Bytes per slot.
    pub slot_bytes: u32,
    /// Slots in this segment.
    pub slots_per_segment: u32,
    /// This segment's position in the store (its file name repeats it).
    pub segment_index: u32,
}

/// Why a segment header is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("{len} bytes is shorter than a segment header ({HEADER_BYTES} bytes)")]
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// Not a segment file.
    #[error("bad magic {found:02x?}")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// A version this build does not read.
    #[error("unsupported segment version {version} (this build reads {SEGMENT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The header checksum does not match.
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Stored CRC.
        stored: u32,
        /// Computed CRC.
        computed: u32,
    },
    /// An element type this build does not know (2 = f16 and 3 = i8 are reserved).
    #[error("unknown element type {id}")]
    UnknownElementType {
        /// The header byte.
        id: u8,
    },
    /// A field is out of range or inconsistent with the others.
    #[error("invalid header field {field} = {value}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

impl SegmentHeader {
    /// Encodes the header page.
    pub fn encode(&self) -> Vec<u8> {
        let mut page = vec![0u8; HEADER_BYTES];
        page[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
        page[VERSION_OFFSET..ELEMENT_OFFSET].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        page[ELEMENT_OFFSET] = self.element.id();
        page[DIMENSION_OFFSET..SLOT_BYTES_OFFSET].copy_from_slice(&self.dimension.to_le_bytes());
        page[SLOT_BYTES_OFFSET..SLOTS_OFFSET].copy_from_slice(&self.slot_bytes.to_le_bytes());
        page[SLOTS_OFFSET..INDEX_OFFSET].copy_from_slice(&self.slots_per_segment.to_le_bytes());
        page[INDEX_OFFSET..CRC_OFFSET].copy_from_slice(&self.segment_index.to_le_bytes());
        let crc = crc32fast::hash(&page[..CRC_OFFSET]);
        page[CRC_OFFSET..HEADER_FIELDS_BYTES].copy_from_slice(&crc.to_le_bytes());
        page
    }

    /// Decodes and checks a header from the start of a segment file. Total: any bytes give a
    /// header or an error.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if bytes.len() < HEADER_BYTES {
            return Err(HeaderError::Truncated { len: bytes.len() });
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[MAGIC_OFFSET..VERSION_OFFSET]);
        if magic != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic { found: magic });
        }
        let version = u32_at(bytes, VERSION_OFFSET);
        if version != SEGMENT_VERSION {
            return Err(HeaderError::UnsupportedVersion { version });
        }
        let stored = u32_at(bytes, CRC_OFFSET);
        let computed = crc32fast::hash(&bytes[..CRC_OFFSET]);
        if stored != computed {
            return Err(HeaderError::ChecksumMismatch { stored, computed });
        }
        let element =
            ElementType::from_id(bytes[ELEMENT_OFFSET]).ok_or(HeaderError::UnknownElementType {
                id: bytes[ELEMENT_OFFSET],
            })?;
        let reserved = &bytes[RESERVED_OFFSET..DIMENSION_OFFSET];
        if reserved.iter().any(|&b| b != 0) {
            return Err(HeaderError::InvalidField {
                field: "reserved",
                value: u64::from(reserved[0])
                    | u64::from(reserved[1]) << 8
                    | u64::from(reserved[2]) << 16,
            });
        }
        let header = SegmentHeader {
            element,
            dimension: u32_at(bytes, DIMENSION_OFFSET),
            slot_bytes: u32_at(bytes, SLOT_BYTES_OFFSET),
            slots_per_segment: u32_at(bytes, SLOTS_OFFSET),
            segment_index: u32_at(bytes, INDEX_OFFSET),
        };
        header.check()?;
        Ok(header)
    }

    /// Checks the fields against each other and their limits.
    pub fn check(&self) -> Result<(), HeaderError> {
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return Err(HeaderError::InvalidField {
                field: "dimension",
                value: u64::from(self.dimension),
            });
        }
        if self.slot_bytes as usize != slot_bytes_for(self.element, self.dimension) {
            return Err(HeaderError::InvalidField {
                field: "slot_bytes",
                value: u64::from(self.slot_bytes),
            });
        }
        if self.slots_per_segment == 0 || self.slots_per_segment > MAX_SLOTS_PER_SEGMENT {
            return Err(HeaderError::InvalidField {
                field: "slots_per_segment",
                value: u64::from(self.slots_per_segment),
            });
        }
        Ok(())
    }

    /// The length of a full segment (every slot allocated).
    pub fn file_len_bytes(&self) -> u64 {
        HEADER_BYTES as u64 + u64::from(self.slots_per_segment) * u64::from(self.slot_bytes)
    }
}

impl SegmentHeader {
    /// How many slots a segment file of `len_bytes` holds: a segment grows by whole slots
    /// from at least one up to `slots_per_segment`. `None` for any other length.
    pub fn slots_in_file(&self, len_bytes: u64) -> Option<u32> {
        let body = len_bytes.checked_sub(HEADER_BYTES as u64)?;
        let slot = u64::from(self.slot_bytes);
        if slot == 0 || !body.is_multiple_of(slot) {
            return None;
        }
        let slots = u32::try_from(body / slot).ok()?;
        (slots >= 1 && slots <= self.slots_per_segment).then_some(slots)
    }

    /// The file length of a segment holding `slots` slots.
    pub fn len_for_slots(&self, slots: u32) -> u64 {
        HEADER_BYTES as u64 + u64::from(slots) * u64::from(self.slot_bytes)
    }
}

/// Checks a whole segment file image: header valid and the length a header page plus whole
/// slots, at most the full segment. Used by the fuzz target and by `verify`.
pub fn validate_segment(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let header = SegmentHeader::decode(bytes)?;
    if header.slots_in_file(bytes.len() as u64).is_none() {
        return Err(HeaderError::InvalidField {
            field: "file length",
            value: bytes.len() as u64,
        });
    }
    Ok(header)
}

/// The file name of segment `index`.
///
/// Not the way to find a store's files: use
/// [`VectorStore::segment_files`](crate::VectorStore::segment_files) to list them and
/// [`is_segment_file_name`] to recognise one. Public for tests only.
#[doc(hidden)]
pub fn segment_file_name(index: u32) -> String {
    format!("segment-{index:08}.vec")
}

/// Whether `name` is spelled exactly as a store names a segment file in its directory:
/// what a copy of the directory (a snapshot, say) may check a name against.
pub fn is_segment_file_name(name: &str) -> bool {
    segment_index_of(name).is_some()
}

/// The index in a segment file name, if it is one.
pub(crate) fn segment_index_of(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".vec")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_every_bit_flip_is_rejected() {
        let h = SegmentHeader {
            element: ElementType::F32,
            dimension: 128,
            slot_bytes: 512,
            slots_per_segment: 1000,
            segment_index: 3,
        };
        let page = h.encode();
        assert_eq!(SegmentHeader::decode(&page).unwrap(), h);
        for bit in 0..HEADER_FIELDS_BYTES * 8 {
            let mut p = page.clone();
            p[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&p).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn slots_are_rounded_to_the_alignment() {
        assert_eq!(slot_bytes_for(ElementType::F32, 128), 512);
        assert_eq!(slot_bytes_for(ElementType::F32, 3), 64);
        assert_eq!(slot_bytes_for(ElementType::F32, 17), 128);
        assert_eq!(slot_bytes_for(ElementType::Code, 36), 40);
        assert_eq!(slot_bytes_for(ElementType::Code, 788), 792);
        assert_eq!(segment_index_of(&segment_file_name(42)), Some(42));
        assert_eq!(segment_index_of("segment-1.vec"), None);
        assert!(is_segment_file_name(&segment_file_name(7)));
        assert!(!is_segment_file_name("segment-00000000.vec\n"));
    }
}
