//! The location table: where each point's payload lives (run, offset, length), sorted by
//! id. One file per checkpoint generation (docs/format/payloads.md); in memory, one sorted
//! array (28 bytes a point on disk, 32 in memory), whatever the payloads' size.

use std::path::Path;

use vellum_fs::le::LeReader;

use crate::error::{Error, Result};

/// The first eight bytes of a location table.
pub(crate) const LOCATIONS_MAGIC: [u8; 8] = *b"VLMPLOC\x01";
/// The format version written.
pub(crate) const LOCATIONS_VERSION: u32 = 1;
/// Header: magic, version u32, reserved u32 (zero), entry count u64.
pub(crate) const LOCATIONS_HEADER_BYTES: usize = super::HEADER_BYTES;
/// One entry: id u64, run u64, offset u64, length u32.
pub(crate) const LOCATION_BYTES: usize = 8 + 8 + 8 + 4;

const _: () = assert!(LOCATIONS_HEADER_BYTES == 24);
const _: () = assert!(LOCATION_BYTES == 28);

/// Where one payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) id: u64,
    /// The run's sequence number.
    pub(crate) run: u64,
    /// The record's offset in the run.
    pub(crate) offset: u64,
    /// The payload's length in bytes.
    pub(crate) len: u32,
}

/// The index of `id` in a sorted table.
pub(crate) fn find(table: &[Loc], id: u64) -> Option<&Loc> {
    table
        .binary_search_by_key(&id, |l| l.id)
        .ok()
        .map(|i| &table[i])
}

pub(crate) fn encode(table: &[Loc]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOCATIONS_HEADER_BYTES + table.len() * LOCATION_BYTES);
    out.extend_from_slice(&LOCATIONS_MAGIC);
    out.extend_from_slice(&LOCATIONS_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(table.len() as u64).to_le_bytes());
    for l in table {
        out.extend_from_slice(&l.id.to_le_bytes());
        out.extend_from_slice(&l.run.to_le_bytes());
        out.extend_from_slice(&l.offset.to_le_bytes());
        out.extend_from_slice(&l.len.to_le_bytes());
    }
    out
}

/// Decodes a table. Total: any input gives a table with ids strictly ascending or an error
/// naming the offset. Whether each entry fits its run is checked by the store, which knows
/// the runs.
pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Loc>> {
    let bad = |reason: String| Error::BadDatabaseFile {
        path: path.to_path_buf(),
        reason,
    };
    let count = super::read_header(
        bytes,
        LOCATIONS_MAGIC,
        LOCATIONS_VERSION,
        "payload location table",
        path,
    )?;
    let mut r = LeReader::new(&bytes[LOCATIONS_HEADER_BYTES..]);
    let fits = r.remaining() / LOCATION_BYTES;
    if count != fits as u64 || !r.remaining().is_multiple_of(LOCATION_BYTES) {
        return Err(bad(format!(
            "offset 16 counts {count} entries, the file holds {} bytes of them",
            r.remaining()
        )));
    }
    let mut table = Vec::with_capacity(fits);
    for i in 0..fits {
        let at = LOCATIONS_HEADER_BYTES + i * LOCATION_BYTES;
        let (Ok(id), Ok(run), Ok(offset), Ok(len)) = (r.u64(), r.u64(), r.u64(), r.u32()) else {
            return Err(bad(format!("entry {i} at offset {at} ends early")));
        };
        if let Some(prev) = table.last().map(|l: &Loc| l.id)
            && id <= prev
        {
            return Err(bad(format!(
                "entry {i} at offset {at}: id {id} after id {prev} (ids must ascend)"
            )));
        }
        table.push(Loc {
            id,
            run,
            offset,
            len,
        });
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_round_trips_and_damage_is_refused() {
        let table = vec![
            Loc {
                id: 1,
                run: 2,
                offset: 24,
                len: 5,
            },
            Loc {
                id: u64::MAX,
                run: 3,
                offset: 100,
                len: 0,
            },
        ];
        let bytes = encode(&table);
        let p = Path::new("loc");
        assert_eq!(decode(&bytes, p).unwrap(), table);
        assert_eq!(find(&table, u64::MAX).unwrap().run, 3);
        assert!(find(&table, 2).is_none());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], p).is_err(), "{cut}");
        }
        let mut swapped = encode(&[table[1], table[0]]);
        assert!(
            decode(&swapped, p)
                .unwrap_err()
                .to_string()
                .contains("ascend")
        );
        swapped[0] ^= 1;
        assert!(decode(&swapped, p).is_err());
    }
}
