//! The location table: where each point's payload lives (run, offset, length), sorted by
//! id. One file per checkpoint generation (docs/format/payloads.md); in memory, one sorted
//! array (28 bytes a point on disk, 32 in memory), whatever the payloads' size.

use std::path::Path;

use vellum_checkpoint::FileBytes;

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

/// A location table over its encoded bytes: a map of the generation's file once written
/// (file pages, not heap), or the buffer a checkpoint just built. Entries are decoded as
/// they are read.
#[derive(Clone)]
pub(crate) struct Table {
    bytes: FileBytes,
    len: usize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} entries)", self.len)
    }
}

impl Table {
    pub(crate) fn empty() -> Table {
        TableWriter::new(0).finish()
    }

    /// A table read from a file: header and length checked. Its order is checked by
    /// [`Table::check_order`] (open relies on the file's checksum for it: the file is this
    /// code's own output); reads of an unordered table give wrong answers, never a panic.
    pub(crate) fn open(bytes: FileBytes, path: &Path) -> Result<Table> {
        let len = check(bytes.as_slice(), path)?;
        Ok(Table { bytes, len })
    }

    /// Checks that the ids strictly ascend: where a table may come from elsewhere
    /// (snapshot import) and in `verify`.
    pub(crate) fn check_order(&self, path: &Path) -> Result<()> {
        check_order(self.bytes.as_slice(), self.len, path)
    }

    /// The same entries over other bytes (the file the checkpoint wrote from these).
    pub(crate) fn remapped(&self, bytes: FileBytes) -> Table {
        debug_assert_eq!(bytes.as_slice(), self.bytes.as_slice());
        Table {
            bytes,
            len: self.len,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    fn id_at(&self, i: usize) -> u64 {
        let at = LOCATIONS_HEADER_BYTES + i * LOCATION_BYTES;
        u64_at(self.bytes.as_slice(), at)
    }

    pub(crate) fn at(&self, i: usize) -> Loc {
        let b = self.bytes.as_slice();
        let at = LOCATIONS_HEADER_BYTES + i * LOCATION_BYTES;
        Loc {
            id: u64_at(b, at),
            run: u64_at(b, at + 8),
            offset: u64_at(b, at + 16),
            len: u32::from_le_bytes(b[at + 24..at + 28].try_into().expect("four bytes")),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Loc> + '_ {
        (0..self.len).map(|i| self.at(i))
    }

    /// The entry of `id`, by binary search.
    pub(crate) fn find(&self, id: u64) -> Option<Loc> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id_at(mid).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.at(mid)),
            }
        }
        None
    }

    /// The index of the first entry whose id is `>= id`.
    fn lower_bound(&self, from: usize, id: u64) -> usize {
        let (mut lo, mut hi) = (from, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.id_at(mid) < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// This table with `updates` (sorted by id, each once; `None` removes) applied.
    pub(crate) fn merged(&self, updates: &[(u64, Option<Loc>)]) -> Table {
        let mut out = TableWriter::new(self.len + updates.len());
        let mut next = 0;
        for &(id, loc) in updates {
            // Entries before this id are kept; one with this id is replaced (or removed).
            let before = self.lower_bound(next, id);
            out.extend_raw(self, next, before);
            next = before;
            if next < self.len && self.id_at(next) == id {
                next += 1;
            }
            if let Some(loc) = loc {
                out.push(loc);
            }
        }
        out.extend_raw(self, next, self.len);
        out.finish()
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// Encodes a table entry by entry.
pub(crate) struct TableWriter {
    out: Vec<u8>,
    len: usize,
}

impl TableWriter {
    pub(crate) fn new(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(LOCATIONS_HEADER_BYTES + capacity * LOCATION_BYTES);
        out.extend_from_slice(&LOCATIONS_MAGIC);
        out.extend_from_slice(&LOCATIONS_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        TableWriter { out, len: 0 }
    }

    pub(crate) fn push(&mut self, l: Loc) {
        self.out.extend_from_slice(&l.id.to_le_bytes());
        self.out.extend_from_slice(&l.run.to_le_bytes());
        self.out.extend_from_slice(&l.offset.to_le_bytes());
        self.out.extend_from_slice(&l.len.to_le_bytes());
        self.len += 1;
    }

    /// Copies entries `from..to` of `table` as they are.
    fn extend_raw(&mut self, table: &Table, from: usize, to: usize) {
        let start = LOCATIONS_HEADER_BYTES + from * LOCATION_BYTES;
        let end = LOCATIONS_HEADER_BYTES + to * LOCATION_BYTES;
        self.out.extend_from_slice(&table.bytes()[start..end]);
        self.len += to - from;
    }

    pub(crate) fn finish(mut self) -> Table {
        self.out[16..24].copy_from_slice(&(self.len as u64).to_le_bytes());
        Table {
            bytes: FileBytes::from(self.out),
            len: self.len,
        }
    }
}

/// Encodes `entries` (ids ascending) as a table file.
pub(crate) fn encode(entries: &[Loc]) -> Vec<u8> {
    let mut w = TableWriter::new(entries.len());
    for &l in entries {
        w.push(l);
    }
    w.finish().bytes().to_vec()
}

/// Decodes a table. Total: any input gives a table with ids strictly ascending or an error
/// naming the offset. Whether each entry fits its run is checked by the store, which knows
/// the runs.
pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Loc>> {
    let table = Table::open(FileBytes::from(bytes.to_vec()), path)?;
    table.check_order(path)?;
    Ok(table.iter().collect())
}

/// Checks a table's header and length; returns its entry count.
fn check(bytes: &[u8], path: &Path) -> Result<usize> {
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
    let body = &bytes[LOCATIONS_HEADER_BYTES..];
    let fits = body.len() / LOCATION_BYTES;
    if count != fits as u64 || !body.len().is_multiple_of(LOCATION_BYTES) {
        return Err(bad(format!(
            "offset 16 counts {count} entries, the file holds {} bytes of them",
            body.len()
        )));
    }
    Ok(fits)
}

/// Checks that a table's ids strictly ascend (what its binary searches need).
fn check_order(bytes: &[u8], len: usize, path: &Path) -> Result<()> {
    let mut prev = None;
    for i in 0..len {
        let at = LOCATIONS_HEADER_BYTES + i * LOCATION_BYTES;
        let id = u64_at(bytes, at);
        if let Some(prev) = prev
            && id <= prev
        {
            return Err(Error::BadDatabaseFile {
                path: path.to_path_buf(),
                reason: format!(
                    "entry {i} at offset {at}: id {id} after id {prev} (ids must ascend)"
                ),
            });
        }
        prev = Some(id);
    }
    Ok(())
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
        let t = Table::open(FileBytes::from(bytes.clone()), p).unwrap();
        assert_eq!(t.find(u64::MAX).unwrap().run, 3);
        assert!(t.find(2).is_none());
        let merged = t.merged(&[(0, Some(Loc { id: 0, ..table[0] })), (1, None)]);
        assert_eq!(
            merged.iter().map(|l| l.id).collect::<Vec<_>>(),
            vec![0, u64::MAX]
        );
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
