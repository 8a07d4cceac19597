//! The manifest: what one checkpoint generation consists of, and its byte encoding.
//!
//! The layout is specified in `docs/format/checkpoint.md`. All integers are little-endian;
//! the last four bytes are a CRC-32 (crc32fast, IEEE) of every byte before them. The decoder
//! is total: any input gives a [`Manifest`] or a [`ManifestError`], never a panic, and every
//! length is checked against a fixed limit and the bytes remaining before anything is
//! allocated for it.

#![deny(clippy::cast_possible_truncation)]

use vellum_fs::le::{LeReader, Short, u32_at};

use std::fmt;

/// The first eight bytes of every manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"VLMCKPT\x01";
/// The manifest format version this crate writes. Version 1 (read too) has no origin
/// generation per file: every file belongs to the manifest's own generation.
pub const MANIFEST_VERSION: u32 = 2;
/// The oldest manifest format version this crate reads.
pub const MANIFEST_VERSION_MIN: u32 = 1;
/// The most files one generation may hold.
pub const MAX_FILES: u32 = 1024;
/// The longest file name (bytes).
pub const MAX_NAME_BYTES: usize = 128;
/// The most caller metadata one generation may carry (bytes).
pub const MAX_METADATA_BYTES: u32 = 1 << 20;

// Fixed header layout, each offset derived from the previous field.
const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + MANIFEST_MAGIC.len();
const GENERATION_OFFSET: usize = VERSION_OFFSET + 4;
const WAL_LSN_OFFSET: usize = GENERATION_OFFSET + 8;
const FILE_COUNT_OFFSET: usize = WAL_LSN_OFFSET + 8;
const METADATA_LEN_OFFSET: usize = FILE_COUNT_OFFSET + 4;
/// Bytes before the metadata.
pub const HEADER_BYTES: usize = METADATA_LEN_OFFSET + 4;
/// Bytes of one file record apart from its name: name length u16, codec u8, raw length u64,
/// raw CRC u32, stored length u64, stored CRC u32, and (version 2) origin generation u64.
pub const FILE_RECORD_FIXED_BYTES: usize = 2 + 1 + 8 + 4 + 8 + 4 + 8;
/// Bytes of the trailing checksum.
pub const TRAILER_BYTES: usize = 4;
/// The largest manifest that can be valid; longer inputs are refused before reading them.
pub const MAX_MANIFEST_BYTES: usize = HEADER_BYTES
    + MAX_METADATA_BYTES as usize
    + MAX_FILES as usize * (FILE_RECORD_FIXED_BYTES + MAX_NAME_BYTES)
    + TRAILER_BYTES;

const _: () = assert!(HEADER_BYTES == 36);
const _: () = assert!(FILE_RECORD_FIXED_BYTES == 35);
const _: () = assert!(MAX_MANIFEST_BYTES < 2 << 20);

/// How a file's bytes are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Stored as given.
    None,
    /// zstd at the given level (1..=22; the level is not needed to decode and not stored).
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// gzip (flate2) at the given level (0..=9; not stored).
    Gzip {
        /// Compression level.
        level: u32,
    },
    /// Stored as given and mapped at load with only its length checked: for large files
    /// whose records carry their own checksums (checked as they are read). The whole-file
    /// checksum is still recorded, and checked by [`crate::Checkpointer::verify_file`].
    /// Opening then costs nothing per byte of such a file.
    Mapped,
}

impl Codec {
    /// zstd at its default level (3).
    pub const ZSTD: Codec = Codec::Zstd { level: 3 };
    /// gzip at its default level (6).
    pub const GZIP: Codec = Codec::Gzip { level: 6 };

    /// The byte the manifest stores for this codec.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd { .. } => 1,
            Codec::Gzip { .. } => 2,
            Codec::Mapped => 3,
        }
    }

    /// The codec a manifest byte names (with default levels), if any.
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::ZSTD),
            2 => Some(Codec::GZIP),
            3 => Some(Codec::Mapped),
            _ => None,
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd { .. } => "zstd",
            Codec::Gzip { .. } => "gzip",
            Codec::Mapped => "mapped",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One file of a generation as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The caller's name for the file (the on-disk name adds the generation).
    pub name: String,
    /// How it is stored.
    pub codec: Codec,
    /// Length of the contents before encoding.
    pub raw_len_bytes: u64,
    /// CRC-32 of the contents before encoding.
    pub raw_crc32: u32,
    /// Length of the file on disk.
    pub stored_len_bytes: u64,
    /// CRC-32 of the file on disk.
    pub stored_crc32: u32,
    /// The generation that wrote the file (its on-disk name carries this number): the
    /// manifest's own generation, or an earlier one whose file this generation carries over
    /// unchanged instead of writing it again.
    pub origin_generation: u64,
}

/// A decoded manifest: one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The generation number (1 for the first checkpoint, then increasing by one).
    pub generation: u64,
    /// The WAL LSN this generation covers: every record up to and including it is reflected
    /// in the files; replay starts after it.
    pub wal_lsn: u64,
    /// Caller metadata, opaque to this crate.
    pub metadata: Vec<u8>,
    /// The files, in the order they were committed.
    pub files: Vec<FileEntry>,
}

/// Why bytes are not a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The input is shorter than the smallest manifest or ends inside a field.
    #[error("truncated: needed {needed} bytes at offset {offset}, {len} in all")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Length of the input.
        len: usize,
    },
    /// The input is longer than any valid manifest.
    #[error("{len} bytes is longer than the largest valid manifest ({max} bytes)")]
    TooLong {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The magic bytes are wrong: not a manifest.
    #[error("bad magic {found:02x?}")]
    BadMagic {
        /// The first eight bytes found.
        found: [u8; 8],
    },
    /// A format version this build does not read.
    #[error(
        "unsupported manifest version {version} (this build reads {MANIFEST_VERSION_MIN} to \
         {MANIFEST_VERSION})"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The trailing checksum does not match the contents.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// The CRC stored in the trailer.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// A count or length field exceeds its limit.
    #[error("{field} is {value}, above the limit {limit}")]
    LimitExceeded {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// A file record names an unknown codec.
    #[error("file {index} has unknown codec id {id}")]
    UnknownCodec {
        /// Index of the file record.
        index: usize,
        /// The codec byte.
        id: u8,
    },
    /// A file name is not allowed (empty, too long, not UTF-8, or using characters outside
    /// `[A-Za-z0-9._-]`, or starting with a dot).
    #[error("file {index} has an invalid name")]
    InvalidName {
        /// Index of the file record.
        index: usize,
    },
    /// Two file records have the same name.
    #[error("file name {name:?} appears twice")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// Bytes are left over between the last file record and the trailer.
    #[error("{extra} unexpected bytes after the last file record")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A generation number of zero (generations start at 1).
    #[error("generation number 0 is not valid")]
    ZeroGeneration,
    /// A commit asked to carry over a file the current generation does not hold.
    #[error("file {name:?} cannot be carried over: the current generation does not hold it")]
    CarryMissing {
        /// The name asked for.
        name: String,
    },
    /// A file's origin generation is zero or later than the manifest's generation.
    #[error("file {index} comes from generation {origin}, not in 1..={generation}")]
    InvalidOrigin {
        /// Index of the file record.
        index: usize,
        /// The origin found.
        origin: u64,
        /// The manifest's generation.
        generation: u64,
    },
}

/// Whether `name` may be used as a checkpoint file name.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl Manifest {
    /// Encodes the manifest. The caller has checked names and limits (see
    /// [`Manifest::check_limits`]).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(MANIFEST_VERSION)
    }

    /// Encodes in format `version` (1: no origin generation per file; tests write the old
    /// format with it).
    fn encode_as(&self, version: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_BYTES
                + self.metadata.len()
                + self.files.len() * (FILE_RECORD_FIXED_BYTES + MAX_NAME_BYTES)
                + TRAILER_BYTES,
        );
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.wal_lsn.to_le_bytes());
        out.extend_from_slice(&field_u32(self.files.len()).to_le_bytes());
        out.extend_from_slice(&field_u32(self.metadata.len()).to_le_bytes());
        debug_assert_eq!(out.len(), HEADER_BYTES);
        out.extend_from_slice(&self.metadata);
        for f in &self.files {
            out.extend_from_slice(&field_u16(f.name.len()).to_le_bytes());
            out.extend_from_slice(f.name.as_bytes());
            out.push(f.codec.id());
            out.extend_from_slice(&f.raw_len_bytes.to_le_bytes());
            out.extend_from_slice(&f.raw_crc32.to_le_bytes());
            out.extend_from_slice(&f.stored_len_bytes.to_le_bytes());
            out.extend_from_slice(&f.stored_crc32.to_le_bytes());
            if version >= 2 {
                out.extend_from_slice(&f.origin_generation.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks the limits the decoder enforces, so nothing is written that cannot be read.
    pub fn check_limits(&self) -> Result<(), ManifestError> {
        if self.generation == 0 {
            return Err(ManifestError::ZeroGeneration);
        }
        if self.files.len() > MAX_FILES as usize {
            return Err(ManifestError::LimitExceeded {
                field: "file count",
                value: self.files.len() as u64,
                limit: u64::from(MAX_FILES),
            });
        }
        if self.metadata.len() > MAX_METADATA_BYTES as usize {
            return Err(ManifestError::LimitExceeded {
                field: "metadata length",
                value: self.metadata.len() as u64,
                limit: u64::from(MAX_METADATA_BYTES),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, f) in self.files.iter().enumerate() {
            if !valid_file_name(&f.name) {
                return Err(ManifestError::InvalidName { index });
            }
            if !seen.insert(f.name.as_str()) {
                return Err(ManifestError::DuplicateName {
                    name: f.name.clone(),
                });
            }
            check_origin(index, f.origin_generation, self.generation)?;
        }
        Ok(())
    }

    /// Decodes and validates a manifest. Total: never panics, allocates at most the input's
    /// length.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLong {
                len: bytes.len(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        if bytes.len() < HEADER_BYTES + TRAILER_BYTES {
            return Err(ManifestError::Truncated {
                offset: 0,
                needed: HEADER_BYTES + TRAILER_BYTES,
                len: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes, 0);
        let magic: [u8; 8] = r.array()?;
        if magic != MANIFEST_MAGIC {
            return Err(ManifestError::BadMagic { found: magic });
        }
        let version = r.u32()?;
        if !(MANIFEST_VERSION_MIN..=MANIFEST_VERSION).contains(&version) {
            return Err(ManifestError::UnsupportedVersion { version });
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES);
        let stored = u32_at(trailer, 0);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(ManifestError::ChecksumMismatch { stored, computed });
        }
        let mut r = Reader::new(body, GENERATION_OFFSET);
        let generation = r.u64()?;
        if generation == 0 {
            return Err(ManifestError::ZeroGeneration);
        }
        let wal_lsn = r.u64()?;
        let file_count = r.u32()?;
        if file_count > MAX_FILES {
            return Err(ManifestError::LimitExceeded {
                field: "file count",
                value: u64::from(file_count),
                limit: u64::from(MAX_FILES),
            });
        }
        let metadata_len = r.u32()?;
        if metadata_len > MAX_METADATA_BYTES {
            return Err(ManifestError::LimitExceeded {
                field: "metadata length",
                value: u64::from(metadata_len),
                limit: u64::from(MAX_METADATA_BYTES),
            });
        }
        let metadata = r.take(metadata_len as usize)?.to_vec();
        // Each record needs at least its fixed bytes, so the count is also bounded by the
        // input: the Vec below never grows past what the bytes can describe.
        let mut files = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for index in 0..file_count as usize {
            let name_len = r.u16()? as usize;
            if name_len > MAX_NAME_BYTES {
                return Err(ManifestError::LimitExceeded {
                    field: "file name length",
                    value: name_len as u64,
                    limit: MAX_NAME_BYTES as u64,
                });
            }
            let name = std::str::from_utf8(r.take(name_len)?)
                .ok()
                .filter(|n| valid_file_name(n))
                .ok_or(ManifestError::InvalidName { index })?
                .to_owned();
            let codec_id = r.u8()?;
            let codec = Codec::from_id(codec_id).ok_or(ManifestError::UnknownCodec {
                index,
                id: codec_id,
            })?;
            let raw_len_bytes = r.u64()?;
            let raw_crc32 = r.u32()?;
            let stored_len_bytes = r.u64()?;
            let stored_crc32 = r.u32()?;
            let origin_generation = if version >= 2 { r.u64()? } else { generation };
            check_origin(index, origin_generation, generation)?;
            if !seen.insert(name.clone()) {
                return Err(ManifestError::DuplicateName { name });
            }
            files.push(FileEntry {
                name,
                codec,
                raw_len_bytes,
                raw_crc32,
                stored_len_bytes,
                stored_crc32,
                origin_generation,
            });
        }
        if r.inner.remaining() != 0 {
            return Err(ManifestError::TrailingBytes {
                extra: r.inner.remaining(),
            });
        }
        Ok(Manifest {
            generation,
            wal_lsn,
            metadata,
            files,
        })
    }

    /// The record of the file called `name`.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The on-disk names of the generation's data files, in manifest order (a carried file
    /// is named after the generation that wrote it).
    pub fn data_file_names(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|f| crate::names::data_file_name(f.origin_generation, &f.name))
            .collect()
    }
}

/// The shared little-endian cursor, reporting a short read as the manifest's error.
struct Reader<'a> {
    inner: LeReader<'a>,
    /// Length of the bytes read (for the error).
    len: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes` starting at `from`.
    fn new(bytes: &'a [u8], from: usize) -> Self {
        Reader {
            inner: LeReader::with_base(&bytes[from..], from as u64),
            len: bytes.len(),
        }
    }

    fn short(&self, e: Short) -> ManifestError {
        ManifestError::Truncated {
            offset: usize::try_from(e.offset).unwrap_or(usize::MAX),
            needed: e.wanted,
            len: self.len,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        self.inner.take(n).map_err(|e| self.short(e))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ManifestError> {
        self.inner.array().map_err(|e| self.short(e))
    }

    fn u8(&mut self) -> Result<u8, ManifestError> {
        self.inner.u8().map_err(|e| self.short(e))
    }

    fn u16(&mut self) -> Result<u16, ManifestError> {
        self.inner.u16().map_err(|e| self.short(e))
    }

    fn u32(&mut self) -> Result<u32, ManifestError> {
        self.inner.u32().map_err(|e| self.short(e))
    }

    fn u64(&mut self) -> Result<u64, ManifestError> {
        self.inner.u64().map_err(|e| self.short(e))
    }
}

fn check_origin(index: usize, origin: u64, generation: u64) -> Result<(), ManifestError> {
    if origin == 0 || origin > generation {
        return Err(ManifestError::InvalidOrigin {
            index,
            origin,
            generation,
        });
    }
    Ok(())
}

/// A count or length for a field of `u32`/`u16` width. `check_limits` bounds every one
/// before a manifest is encoded (the commit path calls it first), so the conversion never
/// saturates there; if it ever did, the manifest would fail to decode, never wrap.
fn field_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn field_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 7,
            wal_lsn: 1234,
            metadata: b"meta".to_vec(),
            files: vec![
                FileEntry {
                    name: "idmap".into(),
                    codec: Codec::ZSTD,
                    raw_len_bytes: 100,
                    raw_crc32: 1,
                    stored_len_bytes: 40,
                    stored_crc32: 2,
                    origin_generation: 5,
                },
                FileEntry {
                    name: "meta.bin".into(),
                    codec: Codec::None,
                    raw_len_bytes: 10,
                    raw_crc32: 3,
                    stored_len_bytes: 10,
                    stored_crc32: 3,
                    origin_generation: 7,
                },
            ],
        }
    }

    #[test]
    fn a_manifest_round_trips_through_its_encoding() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_rejected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(Manifest::decode(&b).is_err(), "bit {i}");
        }
    }

    #[test]
    fn a_version_1_manifest_reads_with_every_file_from_its_own_generation() {
        let m = sample();
        let decoded = Manifest::decode(&m.encode_as(1)).unwrap();
        assert!(decoded.files.iter().all(|f| f.origin_generation == 7));
        assert_eq!(decoded.files[0].name, "idmap");
    }

    #[test]
    fn an_origin_after_the_manifest_generation_is_refused() {
        let mut m = sample();
        m.files[0].origin_generation = 8;
        assert!(matches!(
            m.check_limits(),
            Err(ManifestError::InvalidOrigin { origin: 8, .. })
        ));
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::InvalidOrigin { origin: 8, .. })
        ));
        m.files[0].origin_generation = 0;
        assert!(Manifest::decode(&m.encode()).is_err());
    }

    #[test]
    fn a_huge_file_count_is_refused_without_allocating() {
        let mut bytes = sample().encode();
        bytes[FILE_COUNT_OFFSET..FILE_COUNT_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let n = bytes.len() - TRAILER_BYTES;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Manifest::decode(&bytes),
            Err(ManifestError::LimitExceeded { .. })
        ));
    }
}
