//! Reading records back: from any LSN, across segments, every frame's checksum checked.

use vellum_fs::{DynFs, File};

use crate::error::{Error, Result};
use crate::format::{
    BATCH_LEN_BYTES, FRAME_HEADER_BYTES, FrameHeader, KIND_SINGLE, SEGMENT_HEADER_BYTES,
    check_frame, u32_at,
};
use crate::recovery::SegMeta;

/// Bytes read from a segment at a time (at least; a larger frame is read whole). Small, so
/// stepping over a frame reads little more than its header.
const READ_CHUNK_BYTES: u64 = 64 << 10;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its LSN.
    pub lsn: u64,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Records in LSN order, from [`crate::Wal::iter_from`]. [`WalIter::next_record`] lends
/// each record without copying; the `Iterator` impl copies into a [`Record`].
///
/// It reads the segments through the file system with positioned reads (never a map, so
/// appends may continue meanwhile) up to the last record appended when it was created.
/// A frame that fails its checks is an [`Error::Corruption`] (damage after open) and ends
/// the iteration.
#[derive(Debug)]
pub struct WalIter {
    fs: DynFs,
    segs: Vec<SegMeta>,
    seg_idx: usize,
    file: Option<Box<dyn File>>,
    buf: Vec<u8>,
    buf_start: u64,
    pos: u64,
    frame: Option<FrameCursor>,
    from: u64,
    last: u64,
    max_record_bytes: u64,
    salvage: bool,
    expected: Option<u64>,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
struct FrameCursor {
    single: bool,
    /// Records of the frame not yet yielded (counted, not inferred from the bytes left: an
    /// empty single record has no bytes at all).
    remaining: u32,
    /// Next record's position in `buf` and the payload's end there.
    sub: usize,
    end: usize,
    next_lsn: u64,
}

impl WalIter {
    pub(crate) fn new(
        fs: DynFs,
        segs: Vec<SegMeta>,
        from: u64,
        last: u64,
        max_record_bytes: u64,
        salvage: bool,
    ) -> WalIter {
        let seg_idx = segs.iter().rposition(|s| s.first_lsn <= from).unwrap_or(0);
        WalIter {
            fs,
            segs,
            seg_idx,
            file: None,
            buf: Vec::new(),
            buf_start: 0,
            pos: 0,
            frame: None,
            from,
            last,
            max_record_bytes,
            salvage,
            expected: None,
            done: false,
        }
    }

    /// The next record as (LSN, bytes borrowed from the reader's buffer), or `None` at the
    /// end.
    pub fn next_record(&mut self) -> Option<Result<(u64, &[u8])>> {
        match self.advance() {
            Ok(Some((lsn, a, b))) => Some(Ok((lsn, &self.buf[a..b]))),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn corruption(&self, lsn: u64, reason: impl Into<String>) -> Error {
        Error::Corruption {
            segment: self.segs[self.seg_idx].path.clone(),
            offset: self.pos,
            lsn,
            reason: reason.into(),
        }
    }

    /// Makes `buf` hold file bytes `pos..pos + n` (the caller checked they are inside the
    /// segment's valid end).
    fn ensure(&mut self, n: u64) -> Result<()> {
        let have_end = self.buf_start + self.buf.len() as u64;
        if self.pos >= self.buf_start && self.pos + n <= have_end {
            return Ok(());
        }
        let seg = &self.segs[self.seg_idx];
        let readable_end = seg.end_offset.min(seg.file_len).max(self.pos + n);
        let len = n.max(READ_CHUNK_BYTES).min(readable_end - self.pos);
        self.buf.resize(len as usize, 0);
        let file = self.file.as_ref().expect("segment opened before reading");
        file.read_at(&mut self.buf, self.pos)?;
        self.buf_start = self.pos;
        Ok(())
    }

    /// Moves to the next record to yield: (LSN, start, end in `buf`).
    fn advance(&mut self) -> Result<Option<(u64, usize, usize)>> {
        if self.done {
            return Ok(None);
        }
        loop {
            if let Some(fc) = &mut self.frame {
                if fc.remaining > 0 {
                    fc.remaining -= 1;
                    let (a, b) = if fc.single {
                        (fc.sub, fc.end)
                    } else {
                        let n = u32_at(&self.buf, fc.sub) as usize;
                        (fc.sub + BATCH_LEN_BYTES, fc.sub + BATCH_LEN_BYTES + n)
                    };
                    fc.sub = b;
                    let lsn = fc.next_lsn;
                    fc.next_lsn += 1;
                    if lsn > self.last {
                        return Ok(None);
                    }
                    if lsn >= self.from {
                        return Ok(Some((lsn, a, b)));
                    }
                    continue;
                }
                self.frame = None;
            }
            let Some(seg) = self.segs.get(self.seg_idx) else {
                return Ok(None);
            };
            if self.file.is_none() {
                self.file = Some(self.fs.open(&seg.path)?);
                self.pos = SEGMENT_HEADER_BYTES as u64;
                self.buf.clear();
                self.buf_start = 0;
                if self.salvage || self.expected.is_none() {
                    self.expected = Some(seg.first_lsn);
                }
                // Start at the sparse index's last mark before `from` (a frame start the
                // log wrote or recovery read there), not at the segment's first frame.
                if !self.salvage
                    && seg.skips.is_empty()
                    && let Some((lsn, offset)) = seg.start_for(self.from)
                {
                    self.pos = offset;
                    self.expected = Some(lsn);
                }
            }
            if let Some(&(_, resume)) = seg.skips.iter().find(|(at, _)| *at == self.pos) {
                self.pos = resume;
                self.expected = None;
            }
            let (seg_end, salt, version) = (seg.end_offset, seg.salt, seg.version);
            if self.pos >= seg_end {
                self.seg_idx += 1;
                self.file = None;
                continue;
            }
            let expected = self.expected.unwrap_or(0);
            if seg_end - self.pos < FRAME_HEADER_BYTES as u64 {
                return Err(self.corruption(expected, "frame header runs past the segment's end"));
            }
            self.ensure(FRAME_HEADER_BYTES as u64)?;
            let at = (self.pos - self.buf_start) as usize;
            let h = FrameHeader::decode(&self.buf[at..])
                .map_err(|why| self.corruption(expected, why))?;
            let whole = FRAME_HEADER_BYTES as u64 + u64::from(h.payload_len);
            if u64::from(h.payload_len) > self.max_record_bytes || whole > seg_end - self.pos {
                return Err(
                    self.corruption(expected, "frame length exceeds the segment's valid end")
                );
            }
            if self.expected.is_some_and(|e| e != h.lsn) {
                return Err(self.corruption(
                    expected,
                    format!("frame holds LSN {} where {expected} was expected", h.lsn),
                ));
            }
            if h.next_lsn() <= self.from {
                // Wholly before the first LSN asked for: none of its bytes are returned, and
                // recovery checked the frame at open, so step over it unread (a reopen
                // after a checkpoint skips the covered part of the log without copying it).
                self.expected = Some(h.next_lsn());
                self.pos = (self.pos + h.frame_len(version)).min(seg_end);
                continue;
            }
            self.ensure(whole)?;
            let at = (self.pos - self.buf_start) as usize;
            check_frame(
                &self.buf[at..at + whole as usize],
                &h,
                salt,
                self.max_record_bytes,
            )
            .map_err(|why| self.corruption(expected, why))?;
            self.expected = Some(h.next_lsn());
            self.pos = (self.pos + h.frame_len(version)).min(seg_end);
            self.frame = Some(FrameCursor {
                single: h.kind == KIND_SINGLE,
                remaining: h.count,
                sub: at + FRAME_HEADER_BYTES,
                end: at + whole as usize,
                next_lsn: h.lsn,
            });
        }
    }
}

impl Iterator for WalIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        self.next_record().map(|r| {
            r.map(|(lsn, data)| Record {
                lsn,
                data: data.to_vec(),
            })
        })
    }
}
