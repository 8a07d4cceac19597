//! A collection's files inside each checkpoint generation: the checkpoint metadata (the
//! manifest's caller metadata) and the payload file, their encoders and total decoders.
//!
//! Layouts (all integers little-endian), documented in docs/format/database.md:
//!
//! ```text
//! metadata: magic "VCOLMETA" | version u32 | collection id u64 | dim u32 | index kind u8
//!           | points u64
//! payloads: count u64 | count × (id u64 | len u32 | bytes), ids ascending
//! ```

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use std::path::Path;

use rustc_hash::FxHashMap;
use vellum_fs::le::{LeReader, u32_at};

use crate::error::{Error, Result};
use crate::options::{CollectionConfig, IndexKind};

const META_MAGIC: &[u8; 8] = b"VCOLMETA";
/// Version 2: the graph is keyed by vector-store slot. Version 1 keyed it by point id; its
/// graph is rebuilt once at open.
const META_VERSION: u32 = 2;
pub(crate) const META_VERSION_ID_KEYED: u32 = 1;

// Checkpoint metadata layout: every offset derived from the previous one.
const META_MAGIC_OFFSET: usize = 0;
const META_VERSION_OFFSET: usize = META_MAGIC_OFFSET + META_MAGIC.len();
const META_ID_OFFSET: usize = META_VERSION_OFFSET + 4;
const META_DIM_OFFSET: usize = META_ID_OFFSET + 8;
const META_INDEX_KIND_OFFSET: usize = META_DIM_OFFSET + 4;
const META_POINTS_OFFSET: usize = META_INDEX_KIND_OFFSET + 1;
/// Bytes of the checkpoint metadata.
const META_BYTES: usize = META_POINTS_OFFSET + 8;
const _: () = assert!(META_BYTES == 33);

// Payload file layout: a count, then per entry an id and a length before the bytes.
const PAYLOAD_COUNT_BYTES: usize = 8;
/// Fixed part of one payload entry: id u64, len u32.
const PAYLOAD_ENTRY_FIXED_BYTES: usize = 8 + 4;
const _: () = assert!(PAYLOAD_ENTRY_FIXED_BYTES == 12);

pub(crate) fn encode_meta(id: u64, config: &CollectionConfig, points: u64) -> Vec<u8> {
    let mut out = vec![0u8; META_BYTES];
    out[META_MAGIC_OFFSET..META_VERSION_OFFSET].copy_from_slice(META_MAGIC);
    out[META_VERSION_OFFSET..META_ID_OFFSET].copy_from_slice(&META_VERSION.to_le_bytes());
    out[META_ID_OFFSET..META_DIM_OFFSET].copy_from_slice(&id.to_le_bytes());
    // The dimension was validated (`CollectionConfig::validate`) to fit a u32.
    let dim = u32::try_from(config.dim).unwrap_or(u32::MAX);
    out[META_DIM_OFFSET..META_INDEX_KIND_OFFSET].copy_from_slice(&dim.to_le_bytes());
    out[META_INDEX_KIND_OFFSET] = match config.index {
        IndexKind::Flat => 0,
        IndexKind::Hnsw(_) => 1,
    };
    out[META_POINTS_OFFSET..META_BYTES].copy_from_slice(&points.to_le_bytes());
    out
}

/// Checks the checkpoint metadata; returns its version.
pub(crate) fn check_meta(
    bytes: &[u8],
    id: u64,
    config: &CollectionConfig,
    path: &Path,
) -> Result<u32> {
    let bad = |reason: String| Error::BadDatabaseFile {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() != META_BYTES || &bytes[META_MAGIC_OFFSET..META_VERSION_OFFSET] != META_MAGIC {
        return Err(bad(
            "checkpoint metadata is not a Vellum collection's".into()
        ));
    }
    let version = u32_at(bytes, META_VERSION_OFFSET);
    if version != META_VERSION && version != META_VERSION_ID_KEYED {
        return Err(bad(format!(
            "checkpoint metadata version {version} is not supported"
        )));
    }
    // The collection id recorded at checkpoint time is informational: a collection restored
    // from a snapshot gets a new id in its new database.
    let _ = id;
    let dim = u32_at(bytes, META_DIM_OFFSET) as usize;
    if dim != config.dim {
        return Err(bad(format!(
            "checkpoint holds {dim}-dimensional vectors, the catalog says {}",
            config.dim
        )));
    }
    Ok(version)
}

/// Payload file: count u64 | count × (id u64 | len u32 | bytes), ids ascending.
pub(crate) fn encode_payloads(payloads: &FxHashMap<u64, Vec<u8>>) -> Vec<u8> {
    let mut ids: Vec<u64> = payloads.keys().copied().collect();
    ids.sort_unstable();
    let total: usize = payloads
        .values()
        .map(|p| p.len() + PAYLOAD_ENTRY_FIXED_BYTES)
        .sum();
    let mut out = Vec::with_capacity(PAYLOAD_COUNT_BYTES + total);
    out.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for id in ids {
        let p = &payloads[&id];
        // Every payload arrived in a WAL record (`record::encode_upsert` refuses one longer
        // than u32::MAX) or a payload file, both of which carry its length as a u32.
        let len = u32::try_from(p.len()).expect("a payload's length fits u32: see above");
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

pub(crate) fn decode_payloads(bytes: &[u8], path: &Path) -> Result<FxHashMap<u64, Vec<u8>>> {
    let bad = |reason: String| Error::BadDatabaseFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut r = LeReader::new(bytes);
    let count = r
        .u64()
        .map_err(|_| bad("payload file shorter than its count".into()))?;
    // Each entry takes at least 12 bytes: bound the count before allocating.
    let does_not_fit = || bad(format!("payload count {count} does not fit the file"));
    if count > (r.remaining() / PAYLOAD_ENTRY_FIXED_BYTES) as u64 {
        return Err(does_not_fit());
    }
    // Below the remaining length (just checked), so it fits a usize.
    let capacity = usize::try_from(count).map_err(|_| does_not_fit())?;
    let mut map = FxHashMap::with_capacity_and_hasher(capacity, Default::default());
    for i in 0..count {
        let at = r.offset();
        let (Ok(id), Ok(len)) = (r.u64(), r.u32()) else {
            return Err(bad(format!("payload {i} ends early at offset {at}")));
        };
        let at = r.offset();
        let payload = r
            .take(len as usize)
            .map_err(|_| bad(format!("payload of id {id} ends early at offset {at}")))?;
        if map.insert(id, payload.to_vec()).is_some() {
            return Err(bad(format!("id {id} has two payloads")));
        }
    }
    if r.remaining() != 0 {
        return Err(bad(format!(
            "{} bytes after the last payload",
            r.remaining()
        )));
    }
    Ok(map)
}

/// Encodes the pending-tail file (docs/format/pending.md): a u64 count, then that many
/// u64 slots, ascending, little-endian.
pub(crate) fn encode_pending(slots: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 8 * slots.len());
    out.extend_from_slice(&(slots.len() as u64).to_le_bytes());
    for slot in slots {
        out.extend_from_slice(&slot.to_le_bytes());
    }
    out
}

/// Decodes the pending-tail file; refuses a count that does not match the length, and
/// slots that are not strictly ascending, naming the offset.
pub(crate) fn decode_pending(bytes: &[u8], path: &Path) -> Result<Vec<u64>> {
    let bad = |reason: String| Error::BadDatabaseFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut r = LeReader::new(bytes);
    let count = r
        .u64()
        .map_err(|_| bad("pending file shorter than its count".into()))?;
    if count != (r.remaining() / 8) as u64 || !r.remaining().is_multiple_of(8) {
        return Err(bad(format!(
            "pending count {count} does not match the {} bytes that follow it",
            r.remaining()
        )));
    }
    let mut slots = Vec::with_capacity(r.remaining() / 8);
    while r.remaining() > 0 {
        let at = r.offset();
        let slot = r
            .u64()
            .map_err(|_| bad(format!("slot ends early at offset {at}")))?;
        if slots.last().is_some_and(|&last| last >= slot) {
            return Err(bad(format!("slot {slot} at offset {at} is not ascending")));
        }
        slots.push(slot);
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pending_file_round_trips_and_refuses_a_wrong_count_or_order() {
        let path = std::path::Path::new("pending");
        let bytes = super::encode_pending(&[3, 9, 12]);
        assert_eq!(super::decode_pending(&bytes, path).unwrap(), vec![3, 9, 12]);
        assert!(super::decode_pending(&bytes[..20], path).is_err());
        let unsorted = super::encode_pending(&[9, 3]);
        let e = super::decode_pending(&unsorted, path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("offset 16"), "{e}");
        assert!(
            super::decode_pending(&super::encode_pending(&[]), path)
                .unwrap()
                .is_empty()
        );
    }
    use super::*;

    #[test]
    fn payload_files_round_trip_and_reject_damage() {
        let mut m = FxHashMap::default();
        m.insert(5u64, b"five".to_vec());
        m.insert(1u64, Vec::new());
        let bytes = encode_payloads(&m);
        assert_eq!(decode_payloads(&bytes, Path::new("p")).unwrap(), m);
        for cut in 0..bytes.len() {
            assert!(decode_payloads(&bytes[..cut], Path::new("p")).is_err());
        }
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_payloads(&huge, Path::new("p")).is_err());
    }
}
