//! A payload run: one file of payload records, written whole by one checkpoint and never
//! changed (docs/format/payloads.md). Records are found through the location table, and
//! each carries its own checksum, checked whenever it is read.

use std::path::Path;

use vellum_fs::le::LeReader;

use crate::error::{Error, Result};

/// The first eight bytes of a run.
pub(crate) const RUN_MAGIC: [u8; 8] = *b"VLMPRUN\x01";
/// The run format version written.
pub(crate) const RUN_VERSION: u32 = 1;
/// Header: magic, version u32, reserved u32 (zero), run sequence number u64.
pub(crate) const RUN_HEADER_BYTES: usize = super::HEADER_BYTES;
/// Bytes of a record before its payload: id u64, length u32, CRC-32 u32.
pub(crate) const RECORD_FIXED_BYTES: usize = 8 + 4 + 4;

/// A run buffer grows through ordinary allocations up to this size ...
const SMALL_RUN_BYTES: usize = 64 << 10;
/// ... and then reserves at least this much at once (above the allocator's largest
/// threshold for serving a request from its heap, 32 MiB for glibc, so it is mapped).
const LARGE_RUN_RESERVE_BYTES: usize = 64 << 20;

const _: () = assert!(RUN_HEADER_BYTES == 24);
const _: () = assert!(RECORD_FIXED_BYTES == 16);

/// The checksum of a record: over its id, its length and its payload, so a record read at
/// the wrong place (or a location naming the wrong id) fails it as well as a flipped bit.
pub(crate) fn record_crc(id: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Builds a run in memory.
pub(crate) struct RunWriter {
    bytes: Vec<u8>,
    records: u64,
}

impl RunWriter {
    pub(crate) fn new(seq: u64, capacity_bytes: usize) -> Self {
        let mut bytes = Vec::with_capacity(RUN_HEADER_BYTES + capacity_bytes);
        bytes.extend_from_slice(&RUN_MAGIC);
        bytes.extend_from_slice(&RUN_VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&seq.to_le_bytes());
        RunWriter { bytes, records: 0 }
    }

    /// Appends a record; returns its offset in the run. `payload` is at most u32::MAX bytes
    /// (every payload arrived in a WAL record, which carries its length as a u32).
    pub(crate) fn push(&mut self, id: u64, payload: &[u8]) -> u64 {
        let offset = self.bytes.len() as u64;
        let len = u32::try_from(payload.len()).expect("a payload's length fits u32: see above");
        let needed = self.bytes.len() + RECORD_FIXED_BYTES + payload.len();
        if needed > self.bytes.capacity() && needed > SMALL_RUN_BYTES {
            // Past the first few KiB, one large reservation: the allocator maps it (pages
            // cost memory only once written) and returns it whole when the run is dropped;
            // doubling through the heap's sizes would leave them fragmented behind.
            let target = needed
                .max(LARGE_RUN_RESERVE_BYTES)
                .max(self.bytes.capacity() * 2);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(&id.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes
            .extend_from_slice(&record_crc(id, payload).to_le_bytes());
        self.bytes.extend_from_slice(payload);
        self.records += 1;
        offset
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The payload of the record this writer put at `offset` (its own bytes: no check).
    pub(crate) fn payload_at(&self, offset: u64) -> &[u8] {
        let start = offset as usize;
        let len_at = start + 8;
        let len = u32::from_le_bytes(
            self.bytes[len_at..len_at + 4]
                .try_into()
                .expect("four bytes"),
        ) as usize;
        &self.bytes[start + RECORD_FIXED_BYTES..start + RECORD_FIXED_BYTES + len]
    }
}

/// Checks a run's header: the sequence number it must hold.
pub(crate) fn check_header(bytes: &[u8], seq: u64, path: &Path) -> Result<()> {
    let found = super::read_header(bytes, RUN_MAGIC, RUN_VERSION, "payload run", path)?;
    if found != seq {
        return Err(Error::BadDatabaseFile {
            path: path.to_path_buf(),
            reason: format!("offset 16 names run {found}, its file name says {seq}"),
        });
    }
    Ok(())
}

/// Reads the record at `offset`, which the location table says holds `len` payload bytes of
/// `id`, checking its header and checksum.
pub(crate) fn read_record<'a>(
    bytes: &'a [u8],
    offset: u64,
    id: u64,
    len: u32,
    path: &Path,
) -> Result<&'a [u8]> {
    let bad = |reason: String| Error::BadDatabaseFile {
        path: path.to_path_buf(),
        reason: format!("payload record of id {id} at offset {offset}: {reason}"),
    };
    let start = usize::try_from(offset).map_err(|_| bad("offset out of range".into()))?;
    let end = start
        .checked_add(RECORD_FIXED_BYTES + len as usize)
        .filter(|&e| e <= bytes.len() && start >= RUN_HEADER_BYTES)
        .ok_or_else(|| bad(format!("outside the run's {} bytes", bytes.len())))?;
    let record = &bytes[start..end];
    let mut r = LeReader::new(record);
    let (Ok(found_id), Ok(found_len), Ok(crc)) = (r.u64(), r.u32(), r.u32()) else {
        return Err(bad("short header".into()));
    };
    if found_id != id || found_len != len {
        return Err(bad(format!(
            "it holds id {found_id} with {found_len} bytes, the location table says id {id} \
             with {len}"
        )));
    }
    let payload = &record[RECORD_FIXED_BYTES..];
    let computed = record_crc(id, payload);
    if computed != crc {
        return Err(bad(format!(
            "checksum {computed:#010x}, the record says {crc:#010x}"
        )));
    }
    Ok(payload)
}

/// Walks every record of a run after its header, checking each checksum: what `verify`
/// does, and the decoder the fuzz target drives. Calls `each(offset, id, payload)`.
pub(crate) fn scan_records(
    bytes: &[u8],
    path: &Path,
    mut each: impl FnMut(u64, u64, &[u8]),
) -> Result<u64> {
    let bad = |offset: usize, reason: String| Error::BadDatabaseFile {
        path: path.to_path_buf(),
        reason: format!("payload record at offset {offset}: {reason}"),
    };
    let mut at = RUN_HEADER_BYTES.min(bytes.len());
    let mut records = 0u64;
    while at < bytes.len() {
        let mut r = LeReader::new(&bytes[at..]);
        let (Ok(id), Ok(len)) = (r.u64(), r.u32()) else {
            return Err(bad(at, "short header".into()));
        };
        let payload = read_record(bytes, at as u64, id, len, path)?;
        each(at as u64, id, payload);
        records += 1;
        at += RECORD_FIXED_BYTES + len as usize;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_every_flipped_bit_is_caught() {
        let mut w = RunWriter::new(7, 64);
        let a = w.push(3, b"{\"lang\":\"en\"}");
        let b = w.push(9, b"");
        let bytes = w.into_bytes();
        let path = Path::new("run");
        check_header(&bytes, 7, path).unwrap();
        assert!(check_header(&bytes, 8, path).is_err());
        assert_eq!(
            read_record(&bytes, a, 3, 13, path).unwrap(),
            b"{\"lang\":\"en\"}"
        );
        assert_eq!(read_record(&bytes, b, 9, 0, path).unwrap(), b"");
        assert!(read_record(&bytes, a, 4, 13, path).is_err());
        assert!(read_record(&bytes, b, 9, 1, path).is_err());
        let mut seen = Vec::new();
        scan_records(&bytes, path, |off, id, p| seen.push((off, id, p.len()))).unwrap();
        assert_eq!(seen, vec![(a, 3, 13), (b, 9, 0)]);
        for pos in RUN_HEADER_BYTES..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[pos] ^= 1 << bit;
                assert!(
                    scan_records(&bad, path, |_, _, _| ()).is_err(),
                    "{pos}.{bit}"
                );
            }
        }
    }
}
