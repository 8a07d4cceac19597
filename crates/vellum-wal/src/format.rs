//! The on-disk layout (docs/format/wal.md): segment header and frames, encoders and total
//! decoders. Every offset is derived from the previous one and checked at compile time.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

pub(crate) use vellum_fs::le::{u32_at, u64_at};

/// Format version written in every new segment's header (docs/format/wal.md).
pub const FORMAT_VERSION: u32 = 2;
/// The first version: frames end with zero padding and no end mark. Still read; an active
/// segment of this version keeps getting frames of this version until it rotates.
pub const FORMAT_VERSION_NO_END_MARK: u32 = 1;

/// The last byte of every version-2 frame: not zero, so a frame whose end reached the disk
/// can be told from one a crash cut short (the space after the log is zero-filled).
pub const FRAME_END_MARK: u8 = 0xE5;

/// Segment magic: "VLMWAL", a NUL, and a byte that changes if the framing ever does.
pub const SEGMENT_MAGIC: [u8; 8] = *b"VLMWAL\x00\x01";

// Segment header layout.
pub(crate) const SEG_MAGIC_OFFSET: usize = 0;
pub(crate) const SEG_VERSION_OFFSET: usize = SEG_MAGIC_OFFSET + SEGMENT_MAGIC.len();
pub(crate) const SEG_FIRST_LSN_OFFSET: usize = SEG_VERSION_OFFSET + 4;
pub(crate) const SEG_SALT_OFFSET: usize = SEG_FIRST_LSN_OFFSET + 8;
pub(crate) const SEG_CRC_OFFSET: usize = SEG_SALT_OFFSET + 8;
/// Bytes of the segment header; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = SEG_CRC_OFFSET + 4;
const _: () = assert!(SEGMENT_HEADER_BYTES == 32);
const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(FRAME_ALIGN_BYTES));

// Frame header layout.
pub(crate) const FRAME_CRC_OFFSET: usize = 0;
pub(crate) const FRAME_KIND_OFFSET: usize = FRAME_CRC_OFFSET + 4;
pub(crate) const FRAME_RESERVED_OFFSET: usize = FRAME_KIND_OFFSET + 1;
pub(crate) const FRAME_LEN_OFFSET: usize = FRAME_RESERVED_OFFSET + 3;
pub(crate) const FRAME_COUNT_OFFSET: usize = FRAME_LEN_OFFSET + 4;
pub(crate) const FRAME_LSN_OFFSET: usize = FRAME_COUNT_OFFSET + 4;
pub(crate) const FRAME_SYNCED_LSN_OFFSET: usize = FRAME_LSN_OFFSET + 8;
/// Bytes of a frame header; the payload follows.
pub const FRAME_HEADER_BYTES: usize = FRAME_SYNCED_LSN_OFFSET + 8;
const _: () = assert!(FRAME_HEADER_BYTES == 32);
const _: () = assert!(FRAME_HEADER_BYTES.is_multiple_of(FRAME_ALIGN_BYTES));
/// Frames start at multiples of this many bytes (the payload is zero-padded).
pub const FRAME_ALIGN_BYTES: usize = 8;
/// Bytes of the length prefix of each record inside a batch frame.
pub(crate) const BATCH_LEN_BYTES: usize = 4;

/// Frame kind: one record.
pub(crate) const KIND_SINGLE: u8 = 1;
/// Frame kind: a batch of `count` length-prefixed records.
pub(crate) const KIND_BATCH: u8 = 2;

/// The whole frame length (header, payload, padding, and from version 2 the end mark) for a
/// payload of `payload_len` bytes in a segment of `version`.
pub(crate) fn frame_len(payload_len: u64, version: u32) -> u64 {
    let mark = u64::from(version >= FORMAT_VERSION);
    let raw = FRAME_HEADER_BYTES as u64 + payload_len + mark;
    raw.div_ceil(FRAME_ALIGN_BYTES as u64) * FRAME_ALIGN_BYTES as u64
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first_lsn: u64,
    pub salt: u64,
    /// [`FORMAT_VERSION`] or [`FORMAT_VERSION_NO_END_MARK`].
    pub version: u32,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[SEG_MAGIC_OFFSET..SEG_VERSION_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
        b[SEG_VERSION_OFFSET..SEG_FIRST_LSN_OFFSET].copy_from_slice(&self.version.to_le_bytes());
        b[SEG_FIRST_LSN_OFFSET..SEG_SALT_OFFSET].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[SEG_SALT_OFFSET..SEG_CRC_OFFSET].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32fast::hash(&b[..SEG_CRC_OFFSET]);
        b[SEG_CRC_OFFSET..SEGMENT_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a header; `Err` says what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, &'static str> {
        let Some(b) = bytes.get(..SEGMENT_HEADER_BYTES) else {
            return Err("file is shorter than a segment header");
        };
        if b[SEG_MAGIC_OFFSET..SEG_VERSION_OFFSET] != SEGMENT_MAGIC {
            return Err("bad magic");
        }
        let crc = u32_at(b, SEG_CRC_OFFSET);
        if crc != crc32fast::hash(&b[..SEG_CRC_OFFSET]) {
            return Err("header checksum mismatch");
        }
        let version = u32_at(b, SEG_VERSION_OFFSET);
        if version != FORMAT_VERSION && version != FORMAT_VERSION_NO_END_MARK {
            return Err("unsupported format version");
        }
        let first_lsn = u64_at(b, SEG_FIRST_LSN_OFFSET);
        if first_lsn == 0 {
            return Err("first LSN is zero");
        }
        Ok(SegmentHeader {
            first_lsn,
            salt: u64_at(b, SEG_SALT_OFFSET),
            version,
        })
    }
}

/// A decoded, plausible frame header (rules 1–3 of the format; length and CRC come later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub crc: u32,
    pub kind: u8,
    pub payload_len: u32,
    pub count: u32,
    pub lsn: u64,
    pub synced_lsn: u64,
}

impl FrameHeader {
    /// Decodes and checks the header fields alone.
    pub(crate) fn decode(b: &[u8]) -> Result<FrameHeader, &'static str> {
        let Some(b) = b.get(..FRAME_HEADER_BYTES) else {
            return Err("truncated frame header");
        };
        let kind = b[FRAME_KIND_OFFSET];
        if kind != KIND_SINGLE && kind != KIND_BATCH {
            return Err("invalid frame kind");
        }
        if b[FRAME_RESERVED_OFFSET..FRAME_LEN_OFFSET] != [0, 0, 0] {
            return Err("reserved bytes not zero");
        }
        let h = FrameHeader {
            crc: u32_at(b, FRAME_CRC_OFFSET),
            kind,
            payload_len: u32_at(b, FRAME_LEN_OFFSET),
            count: u32_at(b, FRAME_COUNT_OFFSET),
            lsn: u64_at(b, FRAME_LSN_OFFSET),
            synced_lsn: u64_at(b, FRAME_SYNCED_LSN_OFFSET),
        };
        if h.count == 0 {
            return Err("record count is zero");
        }
        if kind == KIND_SINGLE && h.count != 1 {
            return Err("single-record frame with count != 1");
        }
        if kind == KIND_BATCH
            && u64::from(h.count) * BATCH_LEN_BYTES as u64 > u64::from(h.payload_len)
        {
            return Err("batch count does not fit its payload");
        }
        if h.lsn == 0 || h.lsn.checked_add(u64::from(h.count)).is_none() {
            return Err("invalid LSN");
        }
        if h.synced_lsn >= h.lsn {
            return Err("synced LSN not below the frame's LSN");
        }
        Ok(h)
    }

    /// The LSN after the last record of this frame.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.lsn + u64::from(self.count)
    }

    /// Whole frame length including padding (and the end mark, from version 2).
    pub(crate) fn frame_len(&self, version: u32) -> u64 {
        frame_len(u64::from(self.payload_len), version)
    }
}

/// The checksum of a frame: the salt, then every header byte after the CRC, then the payload.
pub(crate) fn frame_crc(salt: u64, header_after_crc: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(header_after_crc);
    h.update(payload);
    h.finalize()
}

/// Why bytes at some offset are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameFault {
    /// The bytes are all zero up to the end of the data (a clean end).
    CleanEnd,
    /// Anything else, with a reason.
    Invalid(&'static str),
}

/// Decodes the frame at the start of `buf` (which holds every byte up to the end of the
/// file): rules 1–6 of the format. Returns the header; the payload is
/// `buf[FRAME_HEADER_BYTES..][..payload_len]`.
pub(crate) fn decode_frame(
    buf: &[u8],
    salt: u64,
    max_record_bytes: u64,
) -> Result<FrameHeader, FrameFault> {
    let h = match FrameHeader::decode(buf) {
        Ok(h) => h,
        // Only now look at the rest: zeros to the end of the data are a clean end.
        Err(_) if all_zero(buf) => return Err(FrameFault::CleanEnd),
        Err(why) => return Err(FrameFault::Invalid(why)),
    };
    check_frame(buf, &h, salt, max_record_bytes).map_err(FrameFault::Invalid)?;
    Ok(h)
}

/// Whether every byte of `buf` is zero. OR-folds 4 KiB at a time (the compiler vectorises
/// a fold without an early exit; a byte-wise `all` it does not), stopping at the first
/// chunk that is not zero: the rest of a preallocated 64 MiB segment is checked at memory
/// speed on every open.
pub(crate) fn all_zero(buf: &[u8]) -> bool {
    buf.chunks(4096)
        .all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Rules 4–6 for a plausible header at the start of `buf`.
pub(crate) fn check_frame(
    buf: &[u8],
    h: &FrameHeader,
    salt: u64,
    max_record_bytes: u64,
) -> Result<(), &'static str> {
    let len = u64::from(h.payload_len);
    if len > max_record_bytes {
        return Err("payload length exceeds the maximum record size");
    }
    let end = FRAME_HEADER_BYTES as u64 + len;
    if end > buf.len() as u64 {
        return Err("frame runs past the end of the file");
    }
    // At most `buf.len()` (checked just above), so it fits; the error is the same one.
    let end = usize::try_from(end).map_err(|_| "frame runs past the end of the file")?;
    let payload = &buf[FRAME_HEADER_BYTES..end];
    if frame_crc(salt, &buf[FRAME_KIND_OFFSET..FRAME_HEADER_BYTES], payload) != h.crc {
        return Err("checksum mismatch");
    }
    if h.kind == KIND_BATCH {
        let mut rest = payload;
        for _ in 0..h.count {
            let Some(len_bytes) = rest.get(..BATCH_LEN_BYTES) else {
                return Err("batch record length runs past the payload");
            };
            let n = u32_at(len_bytes, 0) as usize;
            rest = &rest[BATCH_LEN_BYTES..];
            let Some(tail) = rest.get(n..) else {
                return Err("batch record runs past the payload");
            };
            rest = tail;
        }
        if !rest.is_empty() {
            return Err("batch records do not fill the payload");
        }
    }
    Ok(())
}

/// Encodes one frame (header, payload, padding, end mark) into `out`, as a segment of
/// `version` holds it.
///
/// The caller has checked [`payload_len`] of `records` against `max_record_bytes`, which
/// `WalOptions::validate` caps at `u32::MAX` (`Shared::append` does both before it calls
/// this): every length below then fits its 32-bit field.
pub(crate) fn encode_frame<B: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    version: u32,
    salt: u64,
    lsn: u64,
    synced_lsn: u64,
    records: &[B],
    batch: bool,
) {
    let start = out.len();
    out.resize(start + FRAME_HEADER_BYTES, 0);
    // A batch spends BATCH_LEN_BYTES of its (at most u32::MAX byte) payload on each record;
    // a single-record frame holds one.
    let count = u32::try_from(records.len())
        .expect("record count fits u32: bounded by the payload length the caller validated");
    if batch {
        for r in records {
            let r = r.as_ref();
            let len = u32::try_from(r.len())
                .expect("record length fits u32: bounded by the validated payload length");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(r);
        }
    } else {
        out.extend_from_slice(records[0].as_ref());
    }
    let payload_len = u32::try_from(out.len() - start - FRAME_HEADER_BYTES)
        .expect("payload length fits u32: the caller validated it against max_record_bytes");
    let h = &mut out[start..start + FRAME_HEADER_BYTES];
    h[FRAME_KIND_OFFSET] = if batch { KIND_BATCH } else { KIND_SINGLE };
    h[FRAME_LEN_OFFSET..FRAME_COUNT_OFFSET].copy_from_slice(&payload_len.to_le_bytes());
    h[FRAME_COUNT_OFFSET..FRAME_LSN_OFFSET].copy_from_slice(&count.to_le_bytes());
    h[FRAME_LSN_OFFSET..FRAME_SYNCED_LSN_OFFSET].copy_from_slice(&lsn.to_le_bytes());
    h[FRAME_SYNCED_LSN_OFFSET..FRAME_HEADER_BYTES].copy_from_slice(&synced_lsn.to_le_bytes());
    let crc = frame_crc(
        salt,
        &out[start + FRAME_KIND_OFFSET..start + FRAME_HEADER_BYTES],
        &out[start + FRAME_HEADER_BYTES..],
    );
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    // The header and payload are already in `out`; padding and end mark add at most
    // FRAME_ALIGN_BYTES more, so the padded length is an in-memory length too.
    let padded = usize::try_from(start as u64 + frame_len(u64::from(payload_len), version))
        .expect("padded frame length fits usize: the unpadded frame is already in memory");
    out.resize(padded, 0);
    if version >= FORMAT_VERSION {
        *out.last_mut().expect("a frame is not empty") = FRAME_END_MARK;
    }
}

/// The payload length a frame for `records` would have.
pub(crate) fn payload_len<B: AsRef<[u8]>>(records: &[B], batch: bool) -> u64 {
    if batch {
        records
            .iter()
            .map(|r| BATCH_LEN_BYTES as u64 + r.as_ref().len() as u64)
            .sum()
    } else {
        records.first().map_or(0, |r| r.as_ref().len() as u64)
    }
}

/// The file name of the segment whose first LSN is `first_lsn`.
pub(crate) fn segment_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.seg")
}

/// The first LSN named by a segment file name, if `name` is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A fresh random salt for a new segment, from the operating system's random source.
pub(crate) fn fresh_salt() -> u64 {
    vellum_fs::rng::random_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_any_flipped_bit_is_rejected() {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            FORMAT_VERSION,
            77,
            5,
            3,
            &[b"hello".as_slice(), b"w"],
            true,
        );
        assert_eq!(out.len() % FRAME_ALIGN_BYTES, 0);
        let h = decode_frame(&out, 77, 1024).expect("valid");
        assert_eq!((h.lsn, h.count, h.synced_lsn), (5, 2, 3));
        assert_eq!(h.payload_len, 4 + 5 + 4 + 1);
        assert!(
            decode_frame(&out, 78, 1024).is_err(),
            "another salt must not validate"
        );
        let covered = FRAME_HEADER_BYTES + h.payload_len as usize;
        for bit in 0..covered * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_frame(&bad, 77, 1024).is_err(),
                "bit {bit} flip accepted"
            );
        }
    }

    #[test]
    fn all_zero_bytes_are_never_a_frame() {
        assert_eq!(decode_frame(&[0u8; 64], 0, 1024), Err(FrameFault::CleanEnd));
        assert!(FrameHeader::decode(&[0u8; 32]).is_err());
    }

    #[test]
    fn one_set_byte_anywhere_in_a_long_zero_run_is_not_a_clean_end() {
        let mut buf = vec![0u8; 3 * 4096 + 100];
        assert!(all_zero(&buf));
        for at in [0, 1, 4095, 4096, 8191, 3 * 4096 + 99] {
            buf[at] = 0x10;
            assert!(!all_zero(&buf), "byte {at}");
            assert_ne!(decode_frame(&buf, 0, 1024), Err(FrameFault::CleanEnd));
            buf[at] = 0;
        }
    }

    #[test]
    fn a_segment_header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            first_lsn: 42,
            salt: 9,
            version: FORMAT_VERSION,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "byte {i}");
        }
        assert!(SegmentHeader::decode(&b[..31]).is_err());
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(1)), Some(1));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("wal-1.seg"), None);
        assert_eq!(parse_segment_name("wal-00000000000000000001.seg.tmp"), None);
    }
}
