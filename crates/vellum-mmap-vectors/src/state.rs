//! The store's checkpointed state: the meta file (shape and the slots still protected for
//! older retained generations) and the id map (id -> slot and slot checksum). Layouts in
//! `docs/format/vectors.md`; all integers little-endian; decoders are total and allocate
//! only after checking a count against the bytes actually present.

#![deny(clippy::cast_possible_truncation)]

use vellum_fs::le::{u32_at, u64_at};

use crate::segment::{ElementType, MAX_DIMENSION, MAX_SLOTS_PER_SEGMENT};

/// Name of the meta file inside a checkpoint generation (after the caller's prefix).
pub const META_FILE: &str = "vectors.meta";
/// Name of the id map file inside a checkpoint generation (after the caller's prefix): the
/// *base*, every live id as of the generation that wrote it (later generations carry it
/// over unchanged while their delta stays small).
pub const IDMAP_FILE: &str = "vectors.idmap";
/// Name of the id map delta inside a checkpoint generation: every id changed since the base
/// was written, with its slot now or [`DELETED_SLOT`]. Absent in generations written before
/// deltas existed (the base alone is the id map then).
pub const IDMAP_DELTA_FILE: &str = "vectors.idmap-delta";
/// The slot a delta entry gives an id deleted since the base.
pub const DELETED_SLOT: u64 = u64::MAX;

/// The first eight bytes of the meta file.
pub const META_MAGIC: [u8; 8] = *b"VLMVMETA";
/// The first eight bytes of the id map file.
pub const IDMAP_MAGIC: [u8; 8] = *b"VLMVIDMP";
/// The first eight bytes of the id map delta file (same layout as the id map).
pub const IDMAP_DELTA_MAGIC: [u8; 8] = *b"VLMVIDDL";
/// The version of both files.
pub const STATE_VERSION: u32 = 1;

// Meta file layout: every offset derived from the previous one.
const META_MAGIC_OFFSET: usize = 0;
const META_VERSION_OFFSET: usize = META_MAGIC_OFFSET + META_MAGIC.len();
const META_ELEMENT_OFFSET: usize = META_VERSION_OFFSET + 4;
/// Three reserved zero bytes follow the element type.
const META_DIMENSION_OFFSET: usize = META_ELEMENT_OFFSET + 1 + 3;
const META_SLOTS_OFFSET: usize = META_DIMENSION_OFFSET + 4;
const META_SEGMENTS_OFFSET: usize = META_SLOTS_OFFSET + 4;
/// Four reserved zero bytes follow the segment count.
const META_LIVE_OFFSET: usize = META_SEGMENTS_OFFSET + 4 + 4;
const META_PENDING_COUNT_OFFSET: usize = META_LIVE_OFFSET + 8;
const META_FIXED_BYTES: usize = META_PENDING_COUNT_OFFSET + 8;
const PENDING_ENTRY_BYTES: usize = 8 + 8;
// Id map layout.
const IDMAP_MAGIC_OFFSET: usize = 0;
const IDMAP_VERSION_OFFSET: usize = IDMAP_MAGIC_OFFSET + IDMAP_MAGIC.len();
/// Four reserved zero bytes follow the version.
const IDMAP_COUNT_OFFSET: usize = IDMAP_VERSION_OFFSET + 4 + 4;
const IDMAP_FIXED_BYTES: usize = IDMAP_COUNT_OFFSET + 8;
const IDMAP_ENTRY_BYTES: usize = 8 + 8 + 4;
const TRAILER_BYTES: usize = 4;
const _: () = assert!(META_FIXED_BYTES == 48 && IDMAP_FIXED_BYTES == 24);

/// Why a state file does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The length does not match what the header says.
    #[error("length {len} does not match the {expected:?} bytes its header implies")]
    Length {
        /// Bytes present.
        len: usize,
        /// Bytes expected (`None` when the header itself is cut off or overflows).
        expected: Option<usize>,
    },
    /// Wrong magic bytes.
    #[error("bad magic")]
    BadMagic,
    /// Unsupported version.
    #[error("unsupported version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The trailing checksum does not match.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// A field is out of range.
    #[error("invalid field {field} = {value}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// Ids are not strictly increasing.
    #[error("id {id} at entry {index} is out of order or repeated")]
    IdOrder {
        /// The entry.
        index: usize,
        /// Its id.
        id: u64,
    },
}

/// The decoded meta file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMeta {
    /// Element type.
    pub element: ElementType,
    /// Elements per vector.
    pub dimension: u32,
    /// Slots per segment file.
    pub slots_per_segment: u32,
    /// Segment files this state needs (every referenced slot lies below
    /// `segment_count * slots_per_segment`).
    pub segment_count: u32,
    /// Live vectors (entries in the id map).
    pub live_count: u64,
    /// Slots no longer live but still referenced by an older retained generation, each with
    /// the newest generation that references it; reusable once that generation is no longer
    /// retained.
    pub pending: Vec<(u64, u64)>,
}

fn check_trailer(bytes: &[u8]) -> Result<(), StateError> {
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES);
    if crc32fast::hash(body) != u32_at(trailer, 0) {
        return Err(StateError::ChecksumMismatch);
    }
    Ok(())
}

impl StoreMeta {
    /// Encodes the meta file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(META_FIXED_BYTES + self.pending.len() * PENDING_ENTRY_BYTES + 4);
        out.extend_from_slice(&META_MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        out.push(self.element.id());
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.dimension.to_le_bytes());
        out.extend_from_slice(&self.slots_per_segment.to_le_bytes());
        out.extend_from_slice(&self.segment_count.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.live_count.to_le_bytes());
        out.extend_from_slice(&(self.pending.len() as u64).to_le_bytes());
        for (slot, generation) in &self.pending {
            out.extend_from_slice(&slot.to_le_bytes());
            out.extend_from_slice(&generation.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a meta file. Total.
    pub fn decode(bytes: &[u8]) -> Result<StoreMeta, StateError> {
        if bytes.len() < META_FIXED_BYTES + TRAILER_BYTES {
            return Err(StateError::Length {
                len: bytes.len(),
                expected: None,
            });
        }
        if bytes[META_MAGIC_OFFSET..META_VERSION_OFFSET] != META_MAGIC {
            return Err(StateError::BadMagic);
        }
        let version = u32_at(bytes, META_VERSION_OFFSET);
        if version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion { version });
        }
        let pending_count = u64_at(bytes, META_PENDING_COUNT_OFFSET);
        let expected = usize::try_from(pending_count)
            .ok()
            .and_then(|n| n.checked_mul(PENDING_ENTRY_BYTES))
            .and_then(|n| n.checked_add(META_FIXED_BYTES + TRAILER_BYTES));
        if expected != Some(bytes.len()) {
            return Err(StateError::Length {
                len: bytes.len(),
                expected,
            });
        }
        check_trailer(bytes)?;
        let element_id = bytes[META_ELEMENT_OFFSET];
        let element = ElementType::from_id(element_id).ok_or(StateError::InvalidField {
            field: "element type",
            value: u64::from(element_id),
        })?;
        let dimension = u32_at(bytes, META_DIMENSION_OFFSET);
        if dimension == 0 || dimension > MAX_DIMENSION {
            return Err(StateError::InvalidField {
                field: "dimension",
                value: u64::from(dimension),
            });
        }
        let slots_per_segment = u32_at(bytes, META_SLOTS_OFFSET);
        if slots_per_segment == 0 || slots_per_segment > MAX_SLOTS_PER_SEGMENT {
            return Err(StateError::InvalidField {
                field: "slots_per_segment",
                value: u64::from(slots_per_segment),
            });
        }
        let pending = bytes[META_FIXED_BYTES..bytes.len() - TRAILER_BYTES]
            .chunks_exact(PENDING_ENTRY_BYTES)
            .map(|c| (u64_at(c, 0), u64_at(c, 8)))
            .collect();
        Ok(StoreMeta {
            element,
            dimension,
            slots_per_segment,
            segment_count: u32_at(bytes, META_SEGMENTS_OFFSET),
            live_count: u64_at(bytes, META_LIVE_OFFSET),
            pending,
        })
    }
}

/// Encodes the id map from `(id, slot, crc)` entries sorted by id (column layout: all ids,
/// then all slots, then all CRCs, which compresses well).
pub fn encode_idmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
    encode_columns(IDMAP_MAGIC, entries)
}

/// Encodes an id map delta from `(id, slot, crc)` entries sorted by id, a deleted id with
/// slot [`DELETED_SLOT`] and CRC 0. Same layout as the id map, another magic.
pub fn encode_idmap_delta(entries: &[(u64, u64, u32)]) -> Vec<u8> {
    encode_columns(IDMAP_DELTA_MAGIC, entries)
}

fn encode_columns(magic: [u8; 8], entries: &[(u64, u64, u32)]) -> Vec<u8> {
    let n = entries.len();
    let mut out = Vec::with_capacity(IDMAP_FIXED_BYTES + n * IDMAP_ENTRY_BYTES + TRAILER_BYTES);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&STATE_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.0.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.1.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.2.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A checked view of an encoded id map.
#[derive(Debug, Clone, Copy)]
pub struct IdMapView<'a> {
    ids: &'a [u8],
    slots: &'a [u8],
    crcs: &'a [u8],
}

impl<'a> IdMapView<'a> {
    /// Checks an encoded id map (length, magic, version, checksum, ids strictly increasing).
    /// Total.
    pub fn decode(bytes: &'a [u8]) -> Result<IdMapView<'a>, StateError> {
        IdMapView::decode_columns(bytes, IDMAP_MAGIC)
    }

    /// Checks an encoded id map delta like [`IdMapView::decode`]; a deleted id's CRC must
    /// be 0. Total.
    pub fn decode_delta(bytes: &'a [u8]) -> Result<IdMapView<'a>, StateError> {
        let view = IdMapView::decode_columns(bytes, IDMAP_DELTA_MAGIC)?;
        if let Some((_, _, crc)) = view.iter().find(|e| e.1 == DELETED_SLOT && e.2 != 0) {
            return Err(StateError::InvalidField {
                field: "crc of a deleted id",
                value: u64::from(crc),
            });
        }
        Ok(view)
    }

    fn decode_columns(bytes: &'a [u8], magic: [u8; 8]) -> Result<IdMapView<'a>, StateError> {
        if bytes.len() < IDMAP_FIXED_BYTES + TRAILER_BYTES {
            return Err(StateError::Length {
                len: bytes.len(),
                expected: None,
            });
        }
        if bytes[IDMAP_MAGIC_OFFSET..IDMAP_VERSION_OFFSET] != magic {
            return Err(StateError::BadMagic);
        }
        let version = u32_at(bytes, IDMAP_VERSION_OFFSET);
        if version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion { version });
        }
        let count = u64_at(bytes, IDMAP_COUNT_OFFSET);
        let expected = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(IDMAP_ENTRY_BYTES))
            .and_then(|n| n.checked_add(IDMAP_FIXED_BYTES + TRAILER_BYTES));
        if expected != Some(bytes.len()) {
            return Err(StateError::Length {
                len: bytes.len(),
                expected,
            });
        }
        check_trailer(bytes)?;
        // The entries fill the file exactly (checked above): the count fits in memory.
        let n = (bytes.len() - IDMAP_FIXED_BYTES - TRAILER_BYTES) / IDMAP_ENTRY_BYTES;
        let body = &bytes[IDMAP_FIXED_BYTES..bytes.len() - TRAILER_BYTES];
        let (ids, rest) = body.split_at(n * 8);
        let (slots, crcs) = rest.split_at(n * 8);
        let view = IdMapView { ids, slots, crcs };
        let mut prev: Option<u64> = None;
        for (index, (id, _, _)) in view.iter().enumerate() {
            if prev.is_some_and(|p| p >= id) {
                return Err(StateError::IdOrder { index, id });
            }
            prev = Some(id);
        }
        Ok(view)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.ids.len() / 8
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `(id, slot, crc)` in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, u32)> + use<'a> {
        let (ids, slots, crcs) = (self.ids, self.slots, self.crcs);
        ids.chunks_exact(8)
            .zip(slots.chunks_exact(8))
            .zip(crcs.chunks_exact(4))
            .map(|((i, s), c)| (u64_at(i, 0), u64_at(s, 0), u32_at(c, 0)))
    }
}

/// The id map a base and its delta describe, `(id, slot, crc)` in id order: a delta entry
/// replaces the base's entry for its id (or removes it, at [`DELETED_SLOT`]); a deletion of
/// an id the base lacks (added and deleted since) removes nothing. One merge of the two
/// sorted lists, into one vector the caller walks as often as it needs.
pub(crate) fn merged(base: IdMapView<'_>, delta: Option<IdMapView<'_>>) -> Vec<(u64, u64, u32)> {
    let Some(delta) = delta else {
        return base.iter().collect();
    };
    let mut out = Vec::with_capacity(base.len() + delta.len());
    let mut changes = delta.iter().peekable();
    for entry in base.iter() {
        // Changes to ids below this one: ids the base lacks.
        while let Some(d) = changes.next_if(|d| d.0 < entry.0) {
            if d.1 != DELETED_SLOT {
                out.push(d);
            }
        }
        match changes.next_if(|d| d.0 == entry.0) {
            Some(d) if d.1 == DELETED_SLOT => {}
            Some(d) => out.push(d),
            None => out.push(entry),
        }
    }
    out.extend(changes.filter(|d| d.1 != DELETED_SLOT));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_and_idmap_round_trip_and_reject_every_bit_flip() {
        let meta = StoreMeta {
            element: ElementType::F32,
            dimension: 8,
            slots_per_segment: 16,
            segment_count: 2,
            live_count: 3,
            pending: vec![(5, 1), (9, 2)],
        };
        let bytes = meta.encode();
        assert_eq!(StoreMeta::decode(&bytes).unwrap(), meta);
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(StoreMeta::decode(&b).is_err(), "meta bit {bit}");
        }
        let entries = vec![(1, 4, 0xdead), (7, 0, 1), (9, 2, 2)];
        let bytes = encode_idmap(&entries);
        let view = IdMapView::decode(&bytes).unwrap();
        assert_eq!(view.iter().collect::<Vec<_>>(), entries);
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(IdMapView::decode(&b).is_err(), "idmap bit {bit}");
        }
        // A delta is not a base, nor the other way round.
        let delta = encode_idmap_delta(&entries);
        assert!(IdMapView::decode(&delta).is_err());
        assert!(IdMapView::decode_delta(&bytes).is_err());
        assert_eq!(
            IdMapView::decode_delta(&delta)
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            entries
        );
    }

    #[test]
    fn a_delta_replaces_adds_and_deletes_entries_of_its_base() {
        let base = encode_idmap(&[(1, 10, 1), (3, 30, 3), (5, 50, 5), (9, 90, 9)]);
        let delta = encode_idmap_delta(&[
            (0, 5, 0),
            (3, DELETED_SLOT, 0),
            (4, DELETED_SLOT, 0),
            (5, 55, 55),
            (12, 120, 12),
        ]);
        let base = IdMapView::decode(&base).unwrap();
        let delta = IdMapView::decode_delta(&delta).unwrap();
        assert_eq!(
            merged(base, Some(delta)),
            [
                (0, 5, 0),
                (1, 10, 1),
                (5, 55, 55),
                (9, 90, 9),
                (12, 120, 12)
            ]
        );
        assert_eq!(merged(base, None).len(), 4);
        let bad = encode_idmap_delta(&[(3, DELETED_SLOT, 7)]);
        assert!(IdMapView::decode_delta(&bad).is_err());
    }
}
