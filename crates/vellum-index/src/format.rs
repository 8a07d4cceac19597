//! The graph file: layout constants, encoder, and the validating decoder.
//!
//! docs/format/index.md is the specification; this module is its implementation. All
//! integers are little-endian. Offsets are derived from each other and checked at compile
//! time so the layout cannot drift.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use std::ops::Range;

use vellum_fs::le::{u32_at, u64_at};

use crate::distance::Metric;
use crate::error::{Error, Result, corrupt};
use crate::graph::Graph;

/// File magic: identifies a Vellum HNSW graph file.
pub const MAGIC: [u8; 8] = *b"VLMHNSW\0";
/// Format version written by this build, and the only one it reads.
pub const VERSION: u32 = 1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + MAGIC.len();
const HEADER_LEN_OFFSET: usize = VERSION_OFFSET + 4;
const METRIC_OFFSET: usize = HEADER_LEN_OFFSET + 4;
const DIM_OFFSET: usize = METRIC_OFFSET + 4;
const M_OFFSET: usize = DIM_OFFSET + 4;
const M0_OFFSET: usize = M_OFFSET + 4;
const EF_CONSTRUCTION_OFFSET: usize = M0_OFFSET + 4;
const EF_SEARCH_OFFSET: usize = EF_CONSTRUCTION_OFFSET + 4;
const NODE_COUNT_OFFSET: usize = EF_SEARCH_OFFSET + 4;
const ENTRY_NODE_OFFSET: usize = NODE_COUNT_OFFSET + 4;
const MAX_LEVEL_OFFSET: usize = ENTRY_NODE_OFFSET + 4;
const FLAGS_OFFSET: usize = MAX_LEVEL_OFFSET + 4;
const SEED_OFFSET: usize = FLAGS_OFFSET + 4;
const UPPER_WORDS_OFFSET: usize = SEED_OFFSET + 8;
const SECTION_CRCS_OFFSET: usize = UPPER_WORDS_OFFSET + 8;
const SECTION_COUNT: usize = 4;
const RESERVED_OFFSET: usize = SECTION_CRCS_OFFSET + 4 * SECTION_COUNT;
const HEADER_CRC_OFFSET: usize = 124;
/// Length of the fixed header; the sections follow it.
pub const HEADER_LEN: usize = HEADER_CRC_OFFSET + 4;
/// [`HEADER_LEN`] as the header's own u32 length field stores it.
const HEADER_LEN_FIELD: u32 = 128;

const _: () = assert!(RESERVED_OFFSET <= HEADER_CRC_OFFSET);
const _: () = assert!(SEED_OFFSET.is_multiple_of(8) && UPPER_WORDS_OFFSET.is_multiple_of(8));
const _: () = assert!(HEADER_LEN == 128);
const _: () = assert!(HEADER_LEN_FIELD as usize == HEADER_LEN);
// The ids section (u64) starts right after the header and must be 8-aligned.
const _: () = assert!(HEADER_LEN.is_multiple_of(8));

/// No node has more levels than this (with M >= 2 a level above 24 has odds below 2^-24
/// per node; the cap bounds the work a corrupt file can ask for).
pub const MAX_LEVEL: usize = 24;
/// Largest M accepted (layer 0 holds 2 * M links per node).
pub const MAX_M: usize = 256;
/// Largest dimension accepted.
pub const MAX_DIM: usize = 1 << 16;

/// Section names, in file order (used in error text).
const SECTION_NAMES: [&str; SECTION_COUNT] = ["ids", "levels", "layer0", "upper"];

/// Parameters stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) metric: Metric,
    pub(crate) dim: u32,
    pub(crate) m: u32,
    pub(crate) m0: u32,
    pub(crate) ef_construction: u32,
    pub(crate) ef_search: u32,
    pub(crate) node_count: u32,
    pub(crate) entry_node: u32,
    pub(crate) max_level: u32,
    pub(crate) seed: u64,
    pub(crate) upper_words: u64,
}

/// Byte ranges of the sections of a validated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) sections: [Range<usize>; SECTION_COUNT],
}

impl Layout {
    pub(crate) fn ids(&self) -> Range<usize> {
        self.sections[0].clone()
    }
    pub(crate) fn levels(&self) -> Range<usize> {
        self.sections[1].clone()
    }
    pub(crate) fn layer0(&self) -> Range<usize> {
        self.sections[2].clone()
    }
    pub(crate) fn upper(&self) -> Range<usize> {
        self.sections[3].clone()
    }

    /// Section sizes for a header, in u64 arithmetic that cannot overflow for u32 counts.
    fn for_header(header: &Header) -> Result<(Layout, u64)> {
        let n = u64::from(header.node_count);
        let sizes = [
            n * 8,
            n * 8,
            n * (1 + u64::from(header.m0)) * 4,
            header.upper_words.checked_mul(4).ok_or_else(|| {
                corrupt(UPPER_WORDS_OFFSET as u64, "upper section length overflows")
            })?,
        ];
        let mut start = HEADER_LEN as u64;
        let mut sections: [Range<usize>; SECTION_COUNT] = Default::default();
        for (slot, size) in sections.iter_mut().zip(sizes) {
            let end = start
                .checked_add(size)
                .ok_or_else(|| corrupt(UPPER_WORDS_OFFSET as u64, "file length overflows"))?;
            let (s, e) = (usize::try_from(start), usize::try_from(end));
            let (Ok(s), Ok(e)) = (s, e) else {
                return Err(corrupt(
                    UPPER_WORDS_OFFSET as u64,
                    "file larger than address space",
                ));
            };
            *slot = s..e;
            start = end;
        }
        Ok((Layout { sections }, start))
    }
}

/// Checks the header and every section of `bytes`, which must be 8-byte aligned.
///
/// On success every neighbour id is below the node count, every link at level `l` points
/// to a node that has level `l`, ids are strictly increasing, and the entry node has the
/// top level: search can follow any link without further checks.
pub(crate) fn decode(bytes: &[u8]) -> Result<(Header, Layout)> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            0,
            format!("file is {} bytes, shorter than the header", bytes.len()),
        ));
    }
    if bytes[MAGIC_OFFSET..MAGIC_OFFSET + MAGIC.len()] != MAGIC {
        return Err(corrupt(
            MAGIC_OFFSET as u64,
            "bad magic: not a Vellum graph file",
        ));
    }
    let version = u32_at(bytes, VERSION_OFFSET);
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let stored_crc = u32_at(bytes, HEADER_CRC_OFFSET);
    if crc32fast::hash(&bytes[..HEADER_CRC_OFFSET]) != stored_crc {
        return Err(corrupt(
            HEADER_CRC_OFFSET as u64,
            "header checksum mismatch",
        ));
    }
    let header_len = u32_at(bytes, HEADER_LEN_OFFSET);
    if header_len as usize != HEADER_LEN {
        return Err(corrupt(
            HEADER_LEN_OFFSET as u64,
            format!("header length {header_len}"),
        ));
    }
    let metric_code = u32_at(bytes, METRIC_OFFSET);
    let metric = Metric::from_code(metric_code).ok_or_else(|| {
        corrupt(
            METRIC_OFFSET as u64,
            format!("unknown metric {metric_code}"),
        )
    })?;
    let header = Header {
        metric,
        dim: u32_at(bytes, DIM_OFFSET),
        m: u32_at(bytes, M_OFFSET),
        m0: u32_at(bytes, M0_OFFSET),
        ef_construction: u32_at(bytes, EF_CONSTRUCTION_OFFSET),
        ef_search: u32_at(bytes, EF_SEARCH_OFFSET),
        node_count: u32_at(bytes, NODE_COUNT_OFFSET),
        entry_node: u32_at(bytes, ENTRY_NODE_OFFSET),
        max_level: u32_at(bytes, MAX_LEVEL_OFFSET),
        seed: u64_at(bytes, SEED_OFFSET),
        upper_words: u64_at(bytes, UPPER_WORDS_OFFSET),
    };
    check_params(&header)?;
    if u32_at(bytes, FLAGS_OFFSET) != 0 {
        return Err(corrupt(FLAGS_OFFSET as u64, "unknown flags"));
    }
    if bytes[RESERVED_OFFSET..HEADER_CRC_OFFSET]
        .iter()
        .any(|b| *b != 0)
    {
        return Err(corrupt(
            RESERVED_OFFSET as u64,
            "reserved header bytes are not zero",
        ));
    }
    let (layout, total_len) = Layout::for_header(&header)?;
    if total_len != bytes.len() as u64 {
        return Err(corrupt(
            total_len.min(bytes.len() as u64),
            format!(
                "file is {} bytes, header describes {total_len}",
                bytes.len()
            ),
        ));
    }
    for (index, range) in layout.sections.iter().enumerate() {
        let stored = u32_at(bytes, SECTION_CRCS_OFFSET + 4 * index);
        if crc32fast::hash(&bytes[range.clone()]) != stored {
            return Err(corrupt(
                range.start as u64,
                format!("{} section checksum mismatch", SECTION_NAMES[index]),
            ));
        }
    }
    check_sections(bytes, &header, &layout)?;
    Ok((header, layout))
}

fn check_params(h: &Header) -> Result<()> {
    let bad = |offset: usize, reason: String| Err(corrupt(offset as u64, reason));
    if h.dim == 0 || h.dim as usize > MAX_DIM {
        return bad(DIM_OFFSET, format!("dimension {} out of range", h.dim));
    }
    if h.m < 2 || h.m as usize > MAX_M {
        return bad(M_OFFSET, format!("M {} out of range", h.m));
    }
    if h.m0 < h.m || h.m0 as usize > 2 * MAX_M {
        return bad(M0_OFFSET, format!("M0 {} out of range", h.m0));
    }
    if h.ef_construction == 0 || h.ef_search == 0 {
        return bad(
            EF_CONSTRUCTION_OFFSET,
            "ef parameters must be positive".into(),
        );
    }
    if h.node_count == u32::MAX {
        return bad(NODE_COUNT_OFFSET, "node count out of range".into());
    }
    if h.max_level as usize > MAX_LEVEL {
        return bad(
            MAX_LEVEL_OFFSET,
            format!("max level {} out of range", h.max_level),
        );
    }
    if h.node_count == 0 && (h.entry_node != u32::MAX || h.max_level != 0) {
        return bad(ENTRY_NODE_OFFSET, "empty graph with an entry node".into());
    }
    if h.node_count > 0 && h.entry_node >= h.node_count {
        return bad(
            ENTRY_NODE_OFFSET,
            format!("entry node {} out of range", h.entry_node),
        );
    }
    Ok(())
}

/// Byte range of the ids section of a graph file with `node_count` nodes: it directly
/// follows the header (see `Layout::for_header`).
pub(crate) fn ids_section(node_count: usize) -> Range<usize> {
    HEADER_LEN..HEADER_LEN + 8 * node_count
}

/// The ids of a graph file `encode` just wrote, in node order (ascending).
pub(crate) fn encoded_ids(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let node_count = u32_at(bytes, NODE_COUNT_OFFSET) as usize;
    ids_section(node_count)
        .step_by(8)
        .map(move |at| u64_at(bytes, at))
}

/// Reinterprets an aligned little-endian section as words.
pub(crate) fn words<T: bytemuck::Pod>(bytes: &[u8], range: Range<usize>) -> Result<&[T]> {
    bytemuck::try_cast_slice(&bytes[range.clone()])
        .map_err(|_| corrupt(range.start as u64, "section is not aligned in memory"))
}

fn check_sections(bytes: &[u8], h: &Header, layout: &Layout) -> Result<()> {
    let n = h.node_count as usize;
    let (m, m0) = (h.m as usize, h.m0 as usize);
    let ids: &[u64] = words(bytes, layout.ids())?;
    if let Some(i) = ids.windows(2).position(|w| w[0] >= w[1]) {
        let offset = layout.ids().start + 8 * (i + 1);
        return Err(corrupt(offset as u64, "ids are not strictly increasing"));
    }
    let levels: &[u32] = words(bytes, layout.levels())?;
    let mut expected_offset = 0u64;
    for node in 0..n {
        let level = levels[2 * node];
        let field = (layout.levels().start + 8 * node) as u64;
        if level > h.max_level {
            return Err(corrupt(
                field,
                format!("node {node} has level {level} above the top"),
            ));
        }
        if u64::from(levels[2 * node + 1]) != expected_offset {
            return Err(corrupt(
                field + 4,
                format!("node {node} has a wrong upper offset"),
            ));
        }
        expected_offset += u64::from(level) * (1 + m as u64);
    }
    if expected_offset != h.upper_words {
        return Err(corrupt(
            UPPER_WORDS_OFFSET as u64,
            "upper section length disagrees with levels",
        ));
    }
    if n > 0 && levels[2 * h.entry_node as usize] != h.max_level {
        return Err(corrupt(
            ENTRY_NODE_OFFSET as u64,
            "entry node is not on the top level",
        ));
    }
    let check_list = |list: &[u32], level: u32, cap: usize, offset: usize| -> Result<()> {
        let count = list[0] as usize;
        if count > cap {
            return Err(corrupt(
                offset as u64,
                format!("{count} links, more than {cap}"),
            ));
        }
        let links = &list[1..=count];
        // Fast path: one sequential pass; the per-link error is located only on failure.
        // Every node has level 0, so only upper levels look up the neighbour's level.
        let bad = links.iter().any(|&neighbour| {
            neighbour as usize >= n || (level > 0 && levels[2 * neighbour as usize] < level)
        });
        if !bad {
            return Ok(());
        }
        for (i, &neighbour) in links.iter().enumerate() {
            let at = (offset + 4 * (i + 1)) as u64;
            if neighbour as usize >= n {
                return Err(corrupt(at, format!("neighbour {neighbour} out of range")));
            }
            if levels[2 * neighbour as usize] < level {
                return Err(corrupt(
                    at,
                    format!("neighbour {neighbour} has no level {level}"),
                ));
            }
        }
        Ok(())
    };
    let layer0: &[u32] = words(bytes, layout.layer0())?;
    for (node, list) in layer0.chunks_exact(1 + m0).enumerate() {
        check_list(list, 0, m0, layout.layer0().start + 4 * node * (1 + m0))?;
    }
    let upper: &[u32] = words(bytes, layout.upper())?;
    for node in 0..n {
        let start = levels[2 * node + 1] as usize;
        for level in 1..=levels[2 * node] {
            let list_start = start + (level as usize - 1) * (1 + m);
            let list = &upper[list_start..list_start + 1 + m];
            check_list(list, level, m, layout.upper().start + 4 * list_start)?;
        }
    }
    Ok(())
}

/// Parameters the encoder writes into the header.
pub(crate) struct EncodeParams {
    pub(crate) metric: Metric,
    pub(crate) dim: u32,
    pub(crate) m: u32,
    pub(crate) m0: u32,
    pub(crate) ef_construction: u32,
    pub(crate) ef_search: u32,
    pub(crate) seed: u64,
}

/// Writes a complete graph file holding the live nodes of `graph`, in id order.
///
/// Deleted nodes are dropped and links to them removed (their neighbours were repaired when
/// they were deleted), so a saved file never carries tombstones.
pub(crate) fn encode<G: Graph>(graph: &G, p: &EncodeParams) -> Result<Vec<u8>> {
    let (m, m0) = (p.m as usize, p.m0 as usize);
    // Nodes are numbered in u32, so a graph never has more (`push_node` refuses them).
    let node_count = u32::try_from(graph.node_count()).map_err(|_| Error::Full {
        limit: u64::from(u32::MAX - 1),
    })?;
    let mut order: Vec<u32> = (0..node_count).filter(|&v| !graph.is_deleted(v)).collect();
    order.sort_unstable_by_key(|&v| graph.id(v));
    let mut remap = vec![u32::MAX; graph.node_count()];
    for (new, &old) in (0u32..).zip(&order) {
        remap[old as usize] = new;
    }
    let n = order.len();
    // Entry: the current one when live, else the first live node on the highest level.
    let max_level = order.iter().map(|&v| graph.level(v)).max().unwrap_or(0);
    let entry = match graph.entry() {
        Some((e, level)) if !graph.is_deleted(e) && level == max_level => remap[e as usize],
        _ => (0u32..)
            .zip(&order)
            .find(|&(_, &v)| graph.level(v) == max_level)
            .map_or(u32::MAX, |(i, _)| i),
    };
    let upper_words: u64 = order
        .iter()
        .map(|&v| graph.level(v) as u64 * (1 + m as u64))
        .sum();
    let header = Header {
        metric: p.metric,
        dim: p.dim,
        m: p.m,
        m0: p.m0,
        ef_construction: p.ef_construction,
        ef_search: p.ef_search,
        node_count: u32::try_from(n).map_err(|_| Error::Full {
            limit: u64::from(u32::MAX - 1),
        })?,
        entry_node: entry,
        max_level: level_field(max_level),
        seed: p.seed,
        upper_words,
    };
    let (layout, total_len) = Layout::for_header(&header)?;
    // The file ends where its last section does (`for_header` sized them in usize).
    let mut out = Vec::with_capacity(layout.upper().end);
    out.resize(HEADER_LEN, 0);
    for &v in &order {
        out.extend_from_slice(&graph.id(v).to_le_bytes());
    }
    let mut upper_offset = 0u32;
    for &v in &order {
        let level = level_field(graph.level(v));
        out.extend_from_slice(&level.to_le_bytes());
        out.extend_from_slice(&upper_offset.to_le_bytes());
        upper_offset += level * (1 + p.m);
    }
    let mut list = Vec::with_capacity(m0 + 1);
    let mut write_list = |out: &mut Vec<u8>, v: u32, level: usize, cap: usize| {
        list.clear();
        graph.for_each_neighbour(v, level, |u| {
            let mapped = remap[u as usize];
            if mapped != u32::MAX && list.len() < cap {
                list.push(mapped);
            }
        });
        // At most `cap` links, and `cap` is M or M0, both u32.
        let count = u32::try_from(list.len()).expect("a link list holds at most M0 (a u32)");
        out.extend_from_slice(&count.to_le_bytes());
        for slot in 0..cap {
            out.extend_from_slice(&list.get(slot).copied().unwrap_or(0).to_le_bytes());
        }
    };
    for &v in &order {
        write_list(&mut out, v, 0, m0);
    }
    for &v in &order {
        for level in 1..=graph.level(v) {
            write_list(&mut out, v, level, m);
        }
    }
    debug_assert_eq!(out.len() as u64, total_len);
    out[MAGIC_OFFSET..MAGIC_OFFSET + MAGIC.len()].copy_from_slice(&MAGIC);
    let mut put =
        |offset: usize, value: &[u8]| out[offset..offset + value.len()].copy_from_slice(value);
    put(VERSION_OFFSET, &VERSION.to_le_bytes());
    put(HEADER_LEN_OFFSET, &HEADER_LEN_FIELD.to_le_bytes());
    put(METRIC_OFFSET, &header.metric.code().to_le_bytes());
    put(DIM_OFFSET, &header.dim.to_le_bytes());
    put(M_OFFSET, &header.m.to_le_bytes());
    put(M0_OFFSET, &header.m0.to_le_bytes());
    put(
        EF_CONSTRUCTION_OFFSET,
        &header.ef_construction.to_le_bytes(),
    );
    put(EF_SEARCH_OFFSET, &header.ef_search.to_le_bytes());
    put(NODE_COUNT_OFFSET, &header.node_count.to_le_bytes());
    put(ENTRY_NODE_OFFSET, &header.entry_node.to_le_bytes());
    put(MAX_LEVEL_OFFSET, &header.max_level.to_le_bytes());
    put(FLAGS_OFFSET, &0u32.to_le_bytes());
    put(SEED_OFFSET, &header.seed.to_le_bytes());
    put(UPPER_WORDS_OFFSET, &header.upper_words.to_le_bytes());
    for (index, range) in layout.sections.iter().enumerate() {
        let crc = crc32fast::hash(&out[range.clone()]);
        out[SECTION_CRCS_OFFSET + 4 * index..SECTION_CRCS_OFFSET + 4 * index + 4]
            .copy_from_slice(&crc.to_le_bytes());
    }
    let header_crc = crc32fast::hash(&out[..HEADER_CRC_OFFSET]);
    out[HEADER_CRC_OFFSET..HEADER_LEN].copy_from_slice(&header_crc.to_le_bytes());
    Ok(out)
}

/// A node's level for a u32 field. Every [`Graph`] keeps levels in u32 (a file's levels
/// section) or u8 (the mutable graph) words, and both are capped at [`MAX_LEVEL`].
fn level_field(level: usize) -> u32 {
    u32::try_from(level)
        .expect("levels are at most MAX_LEVEL: every Graph stores them in u32 or u8")
}
