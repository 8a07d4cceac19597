//! The index file: layout constants, the header encoder and the validating decoder of
//! everything but the graph section (which `crate::format` decodes).
//!
//! docs/format/index-file.md is the specification; this module is its implementation. All
//! integers are little-endian. Offsets are derived from each other and checked at compile
//! time so the layout cannot drift.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use std::ops::Range;
use std::path::Path;

use vellum_fs::le::{u32_at, u64_at};

use crate::error::{Error, Result};
use crate::format::MAX_DIM;

/// File magic: identifies a Vellum index file (graph and vectors together).
pub const FILE_MAGIC: [u8; 8] = *b"VLMINDX\0";
/// Index file format version written by this build, and the only one it reads.
pub const FILE_VERSION: u32 = 1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + FILE_MAGIC.len();
const HEADER_LEN_OFFSET: usize = VERSION_OFFSET + 4;
const DIM_OFFSET: usize = HEADER_LEN_OFFSET + 4;
const FLAGS_OFFSET: usize = DIM_OFFSET + 4;
const ROW_COUNT_OFFSET: usize = FLAGS_OFFSET + 4;
const GRAPH_OFFSET_OFFSET: usize = ROW_COUNT_OFFSET + 8;
const GRAPH_LEN_OFFSET: usize = GRAPH_OFFSET_OFFSET + 8;
const VECTORS_OFFSET_OFFSET: usize = GRAPH_LEN_OFFSET + 8;
const VECTORS_LEN_OFFSET: usize = VECTORS_OFFSET_OFFSET + 8;
const VECTORS_CRC_OFFSET: usize = VECTORS_LEN_OFFSET + 8;
const RESERVED_OFFSET: usize = VECTORS_CRC_OFFSET + 4;
const HEADER_CRC_OFFSET: usize = 124;
/// Length of the index file's fixed header; the graph section follows it.
pub const FILE_HEADER_LEN: usize = HEADER_CRC_OFFSET + 4;
/// [`FILE_HEADER_LEN`] as the header's own u32 length field stores it.
const HEADER_LEN_FIELD: u32 = 128;
/// Sections start at multiples of this (the graph reads u64 words in place).
const SECTION_ALIGN: u64 = 8;

const _: () = assert!(RESERVED_OFFSET <= HEADER_CRC_OFFSET);
const _: () = assert!(FILE_HEADER_LEN == 128 && HEADER_LEN_FIELD as usize == FILE_HEADER_LEN);
// The u64 fields sit at 8-aligned offsets, and the graph section starts 8-aligned.
const _: () = assert!(ROW_COUNT_OFFSET.is_multiple_of(8) && VECTORS_LEN_OFFSET.is_multiple_of(8));
const _: () = assert!((FILE_HEADER_LEN as u64).is_multiple_of(SECTION_ALIGN));

/// Where the sections of an index file lie, and the shape of its vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileLayout {
    pub(crate) dim: usize,
    pub(crate) rows: usize,
    pub(crate) graph: Range<usize>,
    /// Zero bytes between the graph and the vectors (fewer than 8).
    pub(crate) padding: Range<usize>,
    pub(crate) vectors: Range<usize>,
}

/// The layout's numbers in u64, before they are known to fit a `usize`.
struct Numbers {
    graph_end: u64,
    vectors_offset: u64,
    vectors_len: u64,
    file_len: u64,
}

/// Offsets for `rows` vectors of `dim` floats after `graph_len` graph bytes; `None` if the
/// file would be larger than u64 can count.
fn numbers(dim: u64, rows: u64, graph_len: u64) -> Option<Numbers> {
    let graph_end = (FILE_HEADER_LEN as u64).checked_add(graph_len)?;
    let vectors_offset = graph_end.checked_next_multiple_of(SECTION_ALIGN)?;
    let vectors_len = rows.checked_mul(dim)?.checked_mul(4)?;
    let file_len = vectors_offset.checked_add(vectors_len)?;
    Some(Numbers {
        graph_end,
        vectors_offset,
        vectors_len,
        file_len,
    })
}

fn usize_of(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

impl FileLayout {
    /// The layout of a file holding `graph_len` graph bytes and `rows` vectors of `dim`.
    pub(crate) fn new(dim: usize, rows: usize, graph_len: usize) -> Option<FileLayout> {
        let n = numbers(dim as u64, rows as u64, graph_len as u64)?;
        FileLayout::from_numbers(dim, rows, &n)
    }

    fn from_numbers(dim: usize, rows: usize, n: &Numbers) -> Option<FileLayout> {
        let graph_end = usize_of(n.graph_end)?;
        let vectors_offset = usize_of(n.vectors_offset)?;
        Some(FileLayout {
            dim,
            rows,
            graph: FILE_HEADER_LEN..graph_end,
            padding: graph_end..vectors_offset,
            vectors: vectors_offset..usize_of(n.file_len)?,
        })
    }
}

/// The header fields of a file, in their on-disk widths.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderFields {
    dim: u32,
    rows: u64,
    graph_offset: u64,
    graph_len: u64,
    vectors_offset: u64,
    vectors_len: u64,
}

impl FileLayout {
    /// The header fields of this layout; `None` if one does not fit its field.
    pub(crate) fn fields(&self) -> Option<HeaderFields> {
        let wide = |v: usize| u64::try_from(v).ok();
        Some(HeaderFields {
            dim: u32::try_from(self.dim).ok()?,
            rows: wide(self.rows)?,
            graph_offset: wide(self.graph.start)?,
            graph_len: wide(self.graph.len())?,
            vectors_offset: wide(self.vectors.start)?,
            vectors_len: wide(self.vectors.len())?,
        })
    }
}

impl HeaderFields {
    /// The header, with CRC-32 `vectors_crc` of the vectors section.
    pub(crate) fn encode(&self, vectors_crc: u32) -> [u8; FILE_HEADER_LEN] {
        let mut out = [0u8; FILE_HEADER_LEN];
        let mut put =
            |offset: usize, value: &[u8]| out[offset..offset + value.len()].copy_from_slice(value);
        put(MAGIC_OFFSET, &FILE_MAGIC);
        put(VERSION_OFFSET, &FILE_VERSION.to_le_bytes());
        put(HEADER_LEN_OFFSET, &HEADER_LEN_FIELD.to_le_bytes());
        put(DIM_OFFSET, &self.dim.to_le_bytes());
        put(FLAGS_OFFSET, &0u32.to_le_bytes());
        put(ROW_COUNT_OFFSET, &self.rows.to_le_bytes());
        put(GRAPH_OFFSET_OFFSET, &self.graph_offset.to_le_bytes());
        put(GRAPH_LEN_OFFSET, &self.graph_len.to_le_bytes());
        put(VECTORS_OFFSET_OFFSET, &self.vectors_offset.to_le_bytes());
        put(VECTORS_LEN_OFFSET, &self.vectors_len.to_le_bytes());
        put(VECTORS_CRC_OFFSET, &vectors_crc.to_le_bytes());
        let crc = crc32fast::hash(&out[..HEADER_CRC_OFFSET]);
        out[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// Builds the errors of one file.
pub(crate) struct Damage<'a> {
    pub(crate) path: &'a Path,
}

impl Damage<'_> {
    pub(crate) fn at(&self, offset: u64, field: &'static str, reason: impl Into<String>) -> Error {
        Error::CorruptFile {
            path: self.path.to_path_buf(),
            offset,
            field,
            reason: reason.into(),
        }
    }

    fn field(&self, offset: usize, field: &'static str, reason: impl Into<String>) -> Error {
        self.at(offset as u64, field, reason)
    }

    /// The error for a header whose `row_count` or `dim` disagrees with its graph.
    pub(crate) fn row_count(&self, reason: impl Into<String>) -> Error {
        self.field(ROW_COUNT_OFFSET, "row_count", reason)
    }

    pub(crate) fn dim(&self, reason: impl Into<String>) -> Error {
        self.field(DIM_OFFSET, "dim", reason)
    }
}

/// Checks everything of an index file but its graph section: header, lengths, padding and
/// the vectors' checksum. The caller decodes the graph and compares it with the header.
///
/// Nothing is allocated from a field: every length is computed in checked u64 arithmetic and
/// compared with the file's actual length before anything is sliced.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<FileLayout> {
    let damage = Damage { path };
    if bytes.len() < FILE_HEADER_LEN {
        return Err(damage.field(
            0,
            "header",
            format!(
                "file is {} bytes, shorter than the {FILE_HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    let magic = &bytes[MAGIC_OFFSET..MAGIC_OFFSET + FILE_MAGIC.len()];
    if magic != FILE_MAGIC {
        let reason = if magic == crate::format::MAGIC {
            "a graph file, not an index file (it opens with Hnsw::open)"
        } else {
            "not a Vellum index file"
        };
        return Err(damage.field(MAGIC_OFFSET, "magic", reason));
    }
    let version = u32_at(bytes, VERSION_OFFSET);
    if version != FILE_VERSION {
        return Err(Error::UnsupportedFileVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FILE_VERSION,
        });
    }
    if crc32fast::hash(&bytes[..HEADER_CRC_OFFSET]) != u32_at(bytes, HEADER_CRC_OFFSET) {
        return Err(damage.field(HEADER_CRC_OFFSET, "header_crc", "checksum mismatch"));
    }
    let header_len = u32_at(bytes, HEADER_LEN_OFFSET);
    if header_len != HEADER_LEN_FIELD {
        return Err(damage.field(
            HEADER_LEN_OFFSET,
            "header_len",
            format!("{header_len}, expected {HEADER_LEN_FIELD}"),
        ));
    }
    let flags = u32_at(bytes, FLAGS_OFFSET);
    if flags != 0 {
        return Err(damage.field(FLAGS_OFFSET, "flags", format!("unknown flags {flags:#x}")));
    }
    if bytes[RESERVED_OFFSET..HEADER_CRC_OFFSET]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(damage.field(RESERVED_OFFSET, "reserved", "not zero"));
    }
    let dim = u32_at(bytes, DIM_OFFSET);
    if dim == 0 || dim as usize > MAX_DIM {
        return Err(damage.dim(format!("{dim} is outside 1..={MAX_DIM}")));
    }
    let graph_offset = u64_at(bytes, GRAPH_OFFSET_OFFSET);
    if graph_offset != FILE_HEADER_LEN as u64 {
        return Err(damage.field(
            GRAPH_OFFSET_OFFSET,
            "graph_offset",
            format!("{graph_offset}, expected {FILE_HEADER_LEN} (right after the header)"),
        ));
    }
    let rows = u64_at(bytes, ROW_COUNT_OFFSET);
    let graph_len = u64_at(bytes, GRAPH_LEN_OFFSET);
    let Some(n) = numbers(u64::from(dim), rows, graph_len) else {
        return Err(damage.row_count(format!(
            "{rows} rows of {dim} floats after {graph_len} graph bytes overflow a file length"
        )));
    };
    let vectors_offset = u64_at(bytes, VECTORS_OFFSET_OFFSET);
    if vectors_offset != n.vectors_offset {
        return Err(damage.field(
            VECTORS_OFFSET_OFFSET,
            "vectors_offset",
            format!(
                "{vectors_offset}, expected {} (the graph's end rounded up to 8)",
                n.vectors_offset
            ),
        ));
    }
    let vectors_len = u64_at(bytes, VECTORS_LEN_OFFSET);
    if vectors_len != n.vectors_len {
        return Err(damage.field(
            VECTORS_LEN_OFFSET,
            "vectors_len",
            format!(
                "{vectors_len}, expected {} ({rows} rows of {dim} f32)",
                n.vectors_len
            ),
        ));
    }
    if n.file_len != bytes.len() as u64 {
        return Err(damage.at(
            n.file_len.min(bytes.len() as u64),
            "length",
            format!(
                "file is {} bytes, its header describes {}",
                bytes.len(),
                n.file_len
            ),
        ));
    }
    // The whole file is in memory, so every offset up to its length fits a usize.
    let rows = usize_of(rows).ok_or_else(|| damage.row_count("larger than the address space"))?;
    let layout = FileLayout::from_numbers(dim as usize, rows, &n)
        .ok_or_else(|| damage.row_count("larger than the address space"))?;
    if let Some(i) = bytes[layout.padding.clone()].iter().position(|&b| b != 0) {
        return Err(damage.field(layout.padding.start + i, "padding", "not zero"));
    }
    let stored_crc = u32_at(bytes, VECTORS_CRC_OFFSET);
    if crc32fast::hash(&bytes[layout.vectors.clone()]) != stored_crc {
        return Err(damage.field(
            layout.vectors.start,
            "vectors",
            "checksum mismatch (header field vectors_crc)",
        ));
    }
    Ok(layout)
}
