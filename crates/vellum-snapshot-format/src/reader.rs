//! The streaming archive decoder: one forward pass, every check, bounded memory.

use std::collections::BTreeSet;

use vellum_fs::File;

use crate::error::{Error, Result};
use crate::format::{
    ArchiveHeader, BLOCK_FRAME_BYTES, Compression, FOOTER_HEAD_BYTES, FOOTER_MAGIC, Footer,
    HEADER_BYTES, MAX_FOOTER_BODY_BYTES, SECTION_HEAD_BYTES, SECTION_MAGIC, SECTION_TRAILER_BYTES,
    SectionEntry, SectionHead, SectionKind, SectionTotals, SnapshotKind, TRAILER_BYTES,
    TRAILER_HASHED_BYTES, Trailer, crc32, u32_at, u64_at,
};
use crate::id::hex;

/// Bytes read per file read when streaming an archive file.
const FILE_READ_BYTES: usize = 1 << 20;

/// A forward-only source of archive bytes.
pub trait ByteSource {
    /// Fills `buf` completely, or fails with [`Error::Truncated`] if the source ends first.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()>;
    /// Whether the source has no more bytes.
    fn at_end(&mut self) -> Result<bool>;
}

/// An archive held in memory.
#[derive(Debug)]
pub struct SliceSource<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        SliceSource { bytes, pos: 0 }
    }
}

impl ByteSource for SliceSource<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        let left = self.bytes.len() - self.pos;
        if buf.len() > left {
            return Err(Error::Truncated {
                offset: self.bytes.len() as u64,
                wanted: (buf.len() - left) as u64,
            });
        }
        buf.copy_from_slice(&self.bytes[self.pos..self.pos + buf.len()]);
        self.pos += buf.len();
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool> {
        Ok(self.pos == self.bytes.len())
    }
}

/// An archive file read sequentially through large positioned reads.
#[derive(Debug)]
pub struct FileSource<'f> {
    file: &'f dyn File,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_pos: usize,
}

impl<'f> FileSource<'f> {
    /// Reads `file` from its start; its length is taken now.
    pub fn new(file: &'f dyn File) -> Result<Self> {
        Ok(FileSource {
            len: file.len()?,
            file,
            pos: 0,
            buf: Vec::new(),
            buf_pos: 0,
        })
    }
}

impl ByteSource for FileSource<'_> {
    fn read_exact(&mut self, mut out: &mut [u8]) -> Result<()> {
        while !out.is_empty() {
            if self.buf_pos == self.buf.len() {
                let left = self.len - self.pos;
                if left == 0 {
                    return Err(Error::Truncated {
                        offset: self.len,
                        wanted: out.len() as u64,
                    });
                }
                let n = left.min(FILE_READ_BYTES as u64) as usize;
                self.buf.resize(n, 0);
                self.file.read_at(&mut self.buf, self.pos)?;
                self.pos += n as u64;
                self.buf_pos = 0;
            }
            let n = out.len().min(self.buf.len() - self.buf_pos);
            out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
            self.buf_pos += n;
            out = &mut out[n..];
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool> {
        Ok(self.buf_pos == self.buf.len() && self.pos == self.len)
    }
}

/// Receives the decoded content of an archive as it streams by.
pub trait SectionSink {
    /// A section starts (its name already validated and unique so far).
    fn begin_section(&mut self, head: &SectionHead) -> Result<()>;
    /// Raw bytes of the current section, in order (checked block by block).
    fn data(&mut self, raw: &[u8]) -> Result<()>;
    /// The current section ended and its totals matched.
    fn end_section(&mut self, entry: &SectionEntry) -> Result<()>;
}

/// A sink that discards everything (verification only).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl SectionSink for NullSink {
    fn begin_section(&mut self, _head: &SectionHead) -> Result<()> {
        Ok(())
    }
    fn data(&mut self, _raw: &[u8]) -> Result<()> {
        Ok(())
    }
    fn end_section(&mut self, _entry: &SectionEntry) -> Result<()> {
        Ok(())
    }
}

/// What a fully verified archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// The header.
    pub header: ArchiveHeader,
    /// The footer (section table, state table, metadata).
    pub footer: Footer,
    /// Archive length in bytes.
    pub archive_bytes: u64,
    /// BLAKE3 of the archive (as in the trailer).
    pub archive_hash: [u8; 32],
}

impl ArchiveInfo {
    /// Sum of the raw bytes of the file sections.
    pub fn raw_bytes(&self) -> u64 {
        self.footer
            .sections
            .iter()
            .map(|s| s.totals.raw_bytes)
            .sum()
    }
}

struct Decoder<'a> {
    src: &'a mut dyn ByteSource,
    pos: u64,
    hasher: blake3::Hasher,
}

impl Decoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        self.src.read_exact(buf).map_err(|e| match e {
            Error::Truncated { wanted, .. } => Error::Truncated {
                offset: self.pos,
                wanted: wanted.max(1),
            },
            other => other,
        })?;
        self.hasher.update(buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads without updating the archive hash (the caller hashes the bytes itself).
    fn read_unhashed(&mut self, buf: &mut [u8]) -> Result<()> {
        self.src.read_exact(buf).map_err(|e| match e {
            Error::Truncated { wanted, .. } => Error::Truncated {
                offset: self.pos,
                wanted: wanted.max(1),
            },
            other => other,
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.read(&mut b)?;
        Ok(b)
    }
}

/// Decodes and verifies a whole archive from `src`, handing section contents to `sink`.
///
/// Checks, in stream order: the header (magic, CRC, version, rules); each section header
/// (CRC, name valid and unique, index); each block (length bounds, within the section's
/// size in `expected_footer` when given, CRC, zstd output exactly the recorded size); each section trailer (CRC and totals equal to what was read, BLAKE3 of
/// the raw bytes); the footer (CRC, tables, agreement with the sections seen, and with
/// `expected_footer` when the caller read it first); the trailer (offsets and the BLAKE3 of
/// everything before it); and that nothing follows. Memory use is bounded by the block size
/// and the footer size, never by the archive size.
pub fn decode_archive(
    src: &mut dyn ByteSource,
    expected_footer: Option<&Footer>,
    sink: &mut dyn SectionSink,
) -> Result<ArchiveInfo> {
    let mut d = Decoder {
        src,
        pos: 0,
        hasher: blake3::Hasher::new(),
    };
    let header = ArchiveHeader::decode(&d.read_array::<HEADER_BYTES>()?)?;
    let block_bytes = header.block_bytes;
    let mut seen: Vec<SectionEntry> = Vec::new();
    let mut names = BTreeSet::new();
    let mut stored = Vec::new();
    let mut raw = Vec::new();
    let mut zstd = zstd::bulk::Decompressor::new().map_err(|e| Error::Decompress {
        name: String::new(),
        offset: 0,
        reason: e.to_string(),
    })?;
    let footer_offset;
    loop {
        let at = d.pos;
        let magic = d.read_array::<4>()?;
        if magic == FOOTER_MAGIC {
            footer_offset = at;
            break;
        }
        if magic != SECTION_MAGIC {
            return Err(Error::corrupt(at, "expected a section or the footer"));
        }
        let mut fixed = [0u8; SECTION_HEAD_BYTES];
        fixed[..4].copy_from_slice(&magic);
        d.read(&mut fixed[4..])?;
        let (kind, compression, name_len, index) = SectionHead::decode_fixed(&fixed, at)?;
        let mut name_bytes = vec![0u8; name_len];
        d.read(&mut name_bytes)?;
        let crc = u32::from_le_bytes(d.read_array::<4>()?);
        if crc32(&[&fixed, &name_bytes]) != crc {
            return Err(Error::ChecksumMismatch {
                what: "section header".into(),
                offset: at,
            });
        }
        let name = String::from_utf8(name_bytes).map_err(|e| Error::InvalidName {
            name: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            reason: "not UTF-8",
        })?;
        crate::format::validate_name(&name)?;
        if index as usize != seen.len() {
            return Err(Error::corrupt(
                at,
                format!(
                    "section {name:?} has index {index}, expected {}",
                    seen.len()
                ),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(Error::DuplicateName {
                name,
                detail: "two sections".into(),
            });
        }
        if kind == SectionKind::Removed && header.kind == SnapshotKind::Full {
            return Err(Error::corrupt(at, "a full snapshot has a removed section"));
        }
        if let Some(expected) = expected_footer.and_then(|f| f.sections.get(seen.len()))
            && (expected.name != name || expected.header_offset != at)
        {
            return Err(Error::corrupt(
                at,
                format!("section {name:?} is not where the footer puts it"),
            ));
        }
        let head = SectionHead {
            kind,
            compression,
            index,
            name,
        };
        sink.begin_section(&head)?;
        let mut totals = SectionTotals::default();
        let mut content = blake3::Hasher::new();
        let mut last_block_short = false;
        loop {
            let frame_at = d.pos;
            let frame = d.read_array::<BLOCK_FRAME_BYTES>()?;
            let raw_len = u32_at(&frame, 0);
            let stored_len = u32_at(&frame, 4);
            if raw_len == 0 {
                if stored_len != 0 || crc32(&[&frame[..8]]) != u32_at(&frame, 8) {
                    return Err(Error::ChecksumMismatch {
                        what: format!("end frame of section {:?}", head.name),
                        offset: frame_at,
                    });
                }
                break;
            }
            if kind == SectionKind::Removed {
                return Err(Error::corrupt(frame_at, "a removed section has blocks"));
            }
            if last_block_short {
                return Err(Error::corrupt(
                    frame_at,
                    format!(
                        "section {:?}: a short block is followed by another",
                        head.name
                    ),
                ));
            }
            if raw_len > block_bytes || stored_len > raw_len || stored_len == 0 {
                return Err(Error::corrupt(
                    frame_at,
                    format!(
                        "section {:?}: block lengths raw {raw_len} stored {stored_len} invalid \
                         for block size {block_bytes}",
                        head.name
                    ),
                ));
            }
            last_block_short = raw_len < block_bytes;
            // Hold the section to the size the footer read first declares, before its bytes
            // are even read: a section that would grow past it is refused here, not after
            // the excess was decompressed and handed to the sink.
            if let Some(expected) = expected_footer.and_then(|f| f.sections.get(seen.len()))
                && totals.raw_bytes + u64::from(raw_len) > expected.totals.raw_bytes
            {
                return Err(Error::SectionOverrun {
                    name: head.name.clone(),
                    declared: expected.totals.raw_bytes,
                    offset: frame_at,
                });
            }
            stored.resize(stored_len as usize, 0);
            d.read_unhashed(&mut stored)?;
            if crc32(&[&frame[..8], &stored]) != u32_at(&frame, 8) {
                return Err(Error::ChecksumMismatch {
                    what: format!("block of section {:?}", head.name),
                    offset: frame_at,
                });
            }
            let out: &[u8] = if stored_len == raw_len {
                &stored
            } else {
                if compression != Compression::Zstd {
                    return Err(Error::corrupt(
                        frame_at,
                        format!(
                            "section {:?}: compressed block in a stored section",
                            head.name
                        ),
                    ));
                }
                raw.clear();
                raw.reserve(raw_len as usize);
                let n = zstd.decompress_to_buffer(&stored, &mut raw).map_err(|e| {
                    Error::Decompress {
                        name: head.name.clone(),
                        offset: frame_at,
                        reason: e.to_string(),
                    }
                })?;
                if n != raw_len as usize || raw.len() != raw_len as usize {
                    return Err(Error::Decompress {
                        name: head.name.clone(),
                        offset: frame_at,
                        reason: format!("decompressed to {n} bytes, recorded {raw_len}"),
                    });
                }
                &raw
            };
            crate::format::hash_both(&mut d.hasher, &stored, &mut content, out);
            sink.data(out)?;
            totals.raw_bytes += u64::from(raw_len);
            totals.stored_bytes += u64::from(stored_len);
            totals.block_count += 1;
        }
        totals.content_hash = *content.finalize().as_bytes();
        let trailer_at = d.pos;
        let recorded =
            SectionTotals::decode_trailer(&d.read_array::<SECTION_TRAILER_BYTES>()?, trailer_at)?;
        check_totals(&head.name, &recorded, &totals)?;
        let entry = SectionEntry {
            kind,
            compression,
            name: head.name,
            header_offset: at,
            totals,
        };
        if let Some(expected) = expected_footer.and_then(|f| f.sections.get(seen.len()))
            && *expected != entry
        {
            return Err(Error::corrupt(
                at,
                format!("section {:?} disagrees with the footer", entry.name),
            ));
        }
        sink.end_section(&entry)?;
        seen.push(entry);
    }

    // Footer.
    let mut head = [0u8; FOOTER_HEAD_BYTES];
    head[..4].copy_from_slice(&FOOTER_MAGIC);
    d.read(&mut head[4..])?;
    let body_len = u64_at(&head, 16);
    if body_len > MAX_FOOTER_BODY_BYTES {
        return Err(Error::limit(
            "footer body bytes",
            body_len,
            MAX_FOOTER_BODY_BYTES,
        ));
    }
    // Read the body in pieces so a hostile length costs only the bytes actually present.
    let mut body = Vec::new();
    let mut left = body_len;
    let mut piece = vec![0u8; 64 << 10];
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        d.read(&mut piece[..n])?;
        body.extend_from_slice(&piece[..n]);
        left -= n as u64;
    }
    let crc = u32::from_le_bytes(d.read_array::<4>()?);
    let footer = Footer::decode(&head, &body, crc, footer_offset)?;
    if footer.sections != seen {
        return Err(Error::TotalsMismatch {
            what: "footer section table vs sections in the archive".into(),
            recorded: footer.sections.len() as u64,
            found: seen.len() as u64,
        });
    }
    if let Some(expected) = expected_footer
        && *expected != footer
    {
        return Err(Error::corrupt(
            footer_offset,
            "footer differs from the one read first",
        ));
    }
    if header.kind == SnapshotKind::Full && footer.state.len() != footer.sections.len() {
        return Err(Error::TotalsMismatch {
            what: "full snapshot: state entries vs file sections".into(),
            recorded: footer.state.len() as u64,
            found: footer.sections.len() as u64,
        });
    }
    let footer_len = d.pos - footer_offset;

    // Trailer.
    let trailer_at = d.pos;
    let mut hashed = [0u8; TRAILER_HASHED_BYTES];
    d.read(&mut hashed)?;
    let computed = *d.hasher.finalize().as_bytes();
    let mut tail = [0u8; TRAILER_BYTES];
    tail[..TRAILER_HASHED_BYTES].copy_from_slice(&hashed);
    d.src
        .read_exact(&mut tail[TRAILER_HASHED_BYTES..])
        .map_err(|e| match e {
            Error::Truncated { wanted, .. } => Error::Truncated {
                offset: d.pos,
                wanted,
            },
            other => other,
        })?;
    let trailer = Trailer::decode(&tail, trailer_at)?;
    let archive_bytes = trailer_at + TRAILER_BYTES as u64;
    if trailer.footer_offset != footer_offset
        || trailer.footer_len != footer_len
        || trailer.archive_bytes != archive_bytes
    {
        return Err(Error::corrupt(
            trailer_at,
            "trailer does not describe this archive's footer and length",
        ));
    }
    if trailer.hash != computed {
        return Err(Error::HashMismatch {
            what: "archive".into(),
            expected: hex(&trailer.hash),
            actual: hex(&computed),
        });
    }
    if !d.src.at_end()? {
        return Err(Error::TrailingBytes {
            offset: archive_bytes,
        });
    }
    Ok(ArchiveInfo {
        header,
        footer,
        archive_bytes,
        archive_hash: computed,
    })
}

fn check_totals(name: &str, recorded: &SectionTotals, found: &SectionTotals) -> Result<()> {
    let pairs = [
        ("raw bytes", recorded.raw_bytes, found.raw_bytes),
        ("stored bytes", recorded.stored_bytes, found.stored_bytes),
        ("blocks", recorded.block_count, found.block_count),
    ];
    for (what, r, f) in pairs {
        if r != f {
            return Err(Error::TotalsMismatch {
                what: format!("section {name:?} {what}"),
                recorded: r,
                found: f,
            });
        }
    }
    if recorded.content_hash != found.content_hash {
        return Err(Error::HashMismatch {
            what: format!("content of {name:?}"),
            expected: hex(&recorded.content_hash),
            actual: hex(&found.content_hash),
        });
    }
    Ok(())
}

/// Reads the header, trailer and footer of an archive file without streaming its sections,
/// so names and the chain can be checked before anything is written. The footer's own CRC
/// and rules are checked; the archive hash is checked later by [`decode_archive`].
pub fn read_summary(file: &dyn File) -> Result<(ArchiveHeader, Trailer, Footer)> {
    let len = file.len()?;
    read_summary_with(len, &mut |buf, offset| Ok(file.read_at(buf, offset)?))
}

/// [`read_summary`] of an archive of `len` bytes held anywhere: `read_at(buf, offset)` fills
/// `buf` from the archive at `offset` (an object in a store read by ranges, say). It reads
/// the header, the trailer and the footer, nothing else.
pub fn read_summary_with(
    len: u64,
    read_at: &mut dyn FnMut(&mut [u8], u64) -> Result<()>,
) -> Result<(ArchiveHeader, Trailer, Footer)> {
    if len < crate::format::MIN_ARCHIVE_BYTES {
        return Err(Error::Truncated {
            offset: len,
            wanted: crate::format::MIN_ARCHIVE_BYTES - len,
        });
    }
    let mut h = [0u8; HEADER_BYTES];
    read_at(&mut h, 0)?;
    let header = ArchiveHeader::decode(&h)?;
    let trailer_at = len - TRAILER_BYTES as u64;
    let mut t = [0u8; TRAILER_BYTES];
    read_at(&mut t, trailer_at)?;
    let trailer = Trailer::decode(&t, trailer_at)?;
    if trailer.archive_bytes != len {
        return Err(Error::TotalsMismatch {
            what: "archive length in the trailer".into(),
            recorded: trailer.archive_bytes,
            found: len,
        });
    }
    let min_footer = (FOOTER_HEAD_BYTES + 4) as u64;
    if trailer.footer_len < min_footer || trailer.footer_len - min_footer > MAX_FOOTER_BODY_BYTES {
        return Err(Error::limit(
            "footer bytes",
            trailer.footer_len,
            MAX_FOOTER_BODY_BYTES + min_footer,
        ));
    }
    let mut head = [0u8; FOOTER_HEAD_BYTES];
    read_at(&mut head, trailer.footer_offset)?;
    let mut body = vec![0u8; (trailer.footer_len - min_footer) as usize];
    read_at(&mut body, trailer.footer_offset + FOOTER_HEAD_BYTES as u64)?;
    let mut crc = [0u8; 4];
    read_at(&mut crc, trailer.footer_offset + trailer.footer_len - 4)?;
    let footer = Footer::decode(&head, &body, u32::from_le_bytes(crc), trailer.footer_offset)?;
    Ok((header, trailer, footer))
}

/// Verifies a whole archive file (every check of [`decode_archive`]) and returns its info.
pub fn verify_file(file: &dyn File) -> Result<ArchiveInfo> {
    let (_, _, footer) = read_summary(file)?;
    let mut src = FileSource::new(file)?;
    decode_archive(&mut src, Some(&footer), &mut NullSink)
}
