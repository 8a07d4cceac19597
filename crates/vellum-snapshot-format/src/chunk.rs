//! Chunks: how an archive travels as a stream of numbered, offset-carrying pieces.

use crate::error::{Error, Result};
use crate::format::{array_at, crc32, put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use crate::id::SnapshotId;

/// Chunk header magic.
pub const CHUNK_MAGIC: [u8; 4] = *b"VSCK";
/// Chunk wire format version.
pub const CHUNK_VERSION: u16 = 1;
/// Largest payload of one chunk.
pub const MAX_CHUNK_PAYLOAD_BYTES: u32 = 64 << 20;
/// Smallest chunk size export accepts (so chunk 0 carries the whole archive header).
pub const MIN_CHUNK_BYTES: usize = 4096;
/// Default chunk size.
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;
/// Flag bit: the last chunk.
pub const FLAG_FINAL: u16 = 1;

/// Chunk header field offsets.
pub mod chunk_layout {
    /// Magic, 4 bytes.
    pub const MAGIC: usize = 0;
    /// Version, u16.
    pub const VERSION: usize = MAGIC + 4;
    /// Flags, u16.
    pub const FLAGS: usize = VERSION + 2;
    /// Snapshot id, 16 bytes.
    pub const SNAPSHOT: usize = FLAGS + 2;
    /// Sequence number, u64.
    pub const SEQ: usize = SNAPSHOT + 16;
    /// Byte offset in the archive, u64.
    pub const OFFSET: usize = SEQ + 8;
    /// Payload length, u32.
    pub const PAYLOAD_LEN: usize = OFFSET + 8;
    /// CRC32 of the payload, u32.
    pub const PAYLOAD_CRC: usize = PAYLOAD_LEN + 4;
    /// Archive length (final chunk only), u64.
    pub const TOTAL_BYTES: usize = PAYLOAD_CRC + 4;
    /// Chunk count (final chunk only), u64.
    pub const TOTAL_CHUNKS: usize = TOTAL_BYTES + 8;
    /// Archive BLAKE3 (final chunk only), 32 bytes.
    pub const HASH: usize = TOTAL_CHUNKS + 8;
    /// CRC32 of the header bytes before it, u32.
    pub const CRC: usize = HASH + 32;
    /// Header length.
    pub const LEN: usize = CRC + 4;
}
/// Chunk header length.
pub const CHUNK_HEADER_BYTES: usize = chunk_layout::LEN;
const _: () = assert!(CHUNK_HEADER_BYTES == 100);

/// What the final chunk says about the whole archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalTotals {
    /// Archive length in bytes.
    pub total_bytes: u64,
    /// Number of chunks, `seq` 0..total_chunks.
    pub total_chunks: u64,
    /// BLAKE3 of the archive (equal to the trailer's).
    pub archive_hash: [u8; 32],
}

/// One chunk of an exported archive.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The snapshot being streamed.
    pub snapshot: SnapshotId,
    /// Sequence number from 0.
    pub seq: u64,
    /// Byte offset of the payload in the archive.
    pub offset: u64,
    /// `Some` on the final chunk only.
    pub final_totals: Option<FinalTotals>,
    /// The archive bytes `offset .. offset + payload.len()`.
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("snapshot", &self.snapshot)
            .field("seq", &self.seq)
            .field("offset", &self.offset)
            .field("final_totals", &self.final_totals)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Chunk {
    /// Whether this is the final chunk.
    pub fn is_final(&self) -> bool {
        self.final_totals.is_some()
    }

    /// Encodes header and payload for transport.
    pub fn encode(&self) -> Vec<u8> {
        use chunk_layout as c;
        let mut b = vec![0u8; CHUNK_HEADER_BYTES + self.payload.len()];
        b[c::MAGIC..c::MAGIC + 4].copy_from_slice(&CHUNK_MAGIC);
        put_u16(&mut b, c::VERSION, CHUNK_VERSION);
        put_u16(
            &mut b,
            c::FLAGS,
            if self.is_final() { FLAG_FINAL } else { 0 },
        );
        b[c::SNAPSHOT..c::SNAPSHOT + 16].copy_from_slice(&self.snapshot.0);
        put_u64(&mut b, c::SEQ, self.seq);
        put_u64(&mut b, c::OFFSET, self.offset);
        put_u32(&mut b, c::PAYLOAD_LEN, self.payload.len() as u32);
        put_u32(&mut b, c::PAYLOAD_CRC, crc32(&[&self.payload]));
        if let Some(t) = &self.final_totals {
            put_u64(&mut b, c::TOTAL_BYTES, t.total_bytes);
            put_u64(&mut b, c::TOTAL_CHUNKS, t.total_chunks);
            b[c::HASH..c::HASH + 32].copy_from_slice(&t.archive_hash);
        }
        let crc = crc32(&[&b[..c::CRC]]);
        put_u32(&mut b, c::CRC, crc);
        b[CHUNK_HEADER_BYTES..].copy_from_slice(&self.payload);
        b
    }

    /// Decodes one encoded chunk from the start of `bytes`; returns it and the bytes used.
    pub fn decode(bytes: &[u8]) -> Result<(Chunk, usize)> {
        use chunk_layout as c;
        let bad = |seq, offset, reason: &str| Error::BadChunk {
            seq,
            offset,
            reason: reason.to_owned(),
        };
        if bytes.len() < CHUNK_HEADER_BYTES {
            return Err(bad(0, 0, "shorter than a chunk header"));
        }
        let seq = u64_at(bytes, c::SEQ);
        let offset = u64_at(bytes, c::OFFSET);
        if bytes[c::MAGIC..c::MAGIC + 4] != CHUNK_MAGIC {
            return Err(bad(seq, offset, "bad magic"));
        }
        if crc32(&[&bytes[..c::CRC]]) != u32_at(bytes, c::CRC) {
            return Err(bad(seq, offset, "header CRC mismatch"));
        }
        if u16_at(bytes, c::VERSION) != CHUNK_VERSION {
            return Err(bad(seq, offset, "unsupported chunk version"));
        }
        let flags = u16_at(bytes, c::FLAGS);
        if flags & !FLAG_FINAL != 0 {
            return Err(bad(seq, offset, "unknown flag bits"));
        }
        let len = u32_at(bytes, c::PAYLOAD_LEN);
        if len == 0 || len > MAX_CHUNK_PAYLOAD_BYTES {
            return Err(bad(seq, offset, "payload length outside 1..=64 MiB"));
        }
        let end = CHUNK_HEADER_BYTES + len as usize;
        if bytes.len() < end {
            return Err(bad(seq, offset, "payload truncated"));
        }
        let payload = bytes[CHUNK_HEADER_BYTES..end].to_vec();
        if crc32(&[&payload]) != u32_at(bytes, c::PAYLOAD_CRC) {
            return Err(bad(seq, offset, "payload CRC mismatch"));
        }
        let totals = FinalTotals {
            total_bytes: u64_at(bytes, c::TOTAL_BYTES),
            total_chunks: u64_at(bytes, c::TOTAL_CHUNKS),
            archive_hash: array_at(bytes, c::HASH),
        };
        let final_totals = if flags & FLAG_FINAL != 0 {
            Some(totals)
        } else {
            if totals.total_bytes != 0 || totals.total_chunks != 0 || totals.archive_hash != [0; 32]
            {
                return Err(bad(seq, offset, "totals set on a chunk that is not final"));
            }
            None
        };
        let chunk = Chunk {
            snapshot: crate::id::SnapshotId(array_at(bytes, c::SNAPSHOT)),
            seq,
            offset,
            final_totals,
            payload,
        };
        Ok((chunk, end))
    }

    /// Decodes a concatenation of encoded chunks.
    pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Chunk>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (chunk, used) = Chunk::decode(bytes)?;
            out.push(chunk);
            bytes = &bytes[used..];
        }
        Ok(out)
    }
}
