//! The append path: records laid out in frames (one frame, or one per record), LSNs
//! checked and handed out, rotation when a segment is full, preallocation, the write, and
//! the wait for durability the sync policy asks for (or a queued durability callback).

use std::ops::RangeInclusive;

use crate::error::{Error, Result};
use crate::flusher::Pending;
use crate::format::{FORMAT_VERSION, SEGMENT_HEADER_BYTES, encode_frame, frame_len, payload_len};
use crate::options::SyncPolicy;
use crate::wal::Shared;

/// How an append lays its records out in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One frame: a single record, or an all-or-nothing batch.
    OneFrame { batch: bool },
    /// One single-record frame each, written together (a consensus log, whose suffix may
    /// be cut at any record).
    FramePerRecord,
}

impl Shared {
    /// Appends `records` laid out per `shape`; with `at`, only if the first gets that LSN;
    /// with `done`, returns once the frames are written (readable) and queues `done` for
    /// the flusher, which calls it once they are durable. Otherwise waits for durability
    /// as the sync policy says.
    pub(crate) fn append<B: AsRef<[u8]>>(
        &self,
        records: &[B],
        shape: Shape,
        at: Option<u64>,
        done: Option<crate::flusher::DurableCallback>,
    ) -> Result<RangeInclusive<u64>> {
        self.writable()?;
        let mut total = 0u64;
        match shape {
            Shape::OneFrame { batch } => {
                let len = payload_len(records, batch);
                self.check_record_len(len)?;
                // The longest a frame of this payload can be (the active segment may be of
                // the older version, whose frames have no end mark): enough to decide on
                // rotation.
                total = frame_len(len, FORMAT_VERSION);
            }
            Shape::FramePerRecord => {
                for r in records {
                    let len = r.as_ref().len() as u64;
                    self.check_record_len(len)?;
                    total += frame_len(len, FORMAT_VERSION);
                }
            }
        }
        let mut st = self.state.lock();
        self.fail.check()?;
        if let Some(lsn) = at
            && lsn != st.next_lsn
        {
            return Err(Error::NotNextLsn {
                given: lsn,
                next_lsn: st.next_lsn,
            });
        }
        if st.next_lsn.checked_add(records.len() as u64).is_none() {
            return Err(Error::LsnExhausted {
                next_lsn: st.next_lsn,
            });
        }
        if self.volatile {
            let lsn = st.next_lsn;
            st.next_lsn += records.len() as u64;
            st.synced_lsn = st.next_lsn - 1;
            drop(st);
            if let Some(done) = done {
                done(Ok(lsn + records.len() as u64 - 1));
            }
            return Ok(lsn..=lsn + records.len() as u64 - 1);
        }
        if done.is_some() {
            // Backpressure: at most MAX_PENDING_CALLBACKS appends wait for the flusher.
            while st.pending.len() >= crate::flusher::MAX_PENDING_CALLBACKS {
                self.synced.wait(&mut st);
                self.fail.check()?;
            }
        }
        loop {
            let end = st.segments.last().map_or(0, |s| s.end_offset);
            if end <= SEGMENT_HEADER_BYTES as u64 || end + total <= self.opts.segment_size_bytes {
                break;
            }
            if !self.await_group_sync(&mut st)? {
                self.rotate(&mut st)?;
            }
        }
        let (lsn, last) = {
            let st = &mut *st;
            let lsn = st.next_lsn;
            let count = records.len() as u64;
            let seg = st
                .segments
                .last_mut()
                .expect("a writable log has an active segment");
            let file = st
                .active
                .as_ref()
                .expect("a writable log has an active file");
            st.buf.clear();
            match shape {
                Shape::OneFrame { batch } => encode_frame(
                    &mut st.buf,
                    seg.version,
                    seg.salt,
                    lsn,
                    st.synced_lsn,
                    records,
                    batch,
                ),
                Shape::FramePerRecord => {
                    for (i, r) in records.iter().enumerate() {
                        encode_frame(
                            &mut st.buf,
                            seg.version,
                            seg.salt,
                            lsn + i as u64,
                            st.synced_lsn,
                            std::slice::from_ref(r),
                            false,
                        );
                    }
                }
            }
            let flen = st.buf.len() as u64;
            let need = seg.end_offset + flen;
            if self.opts.preallocate && need > seg.file_len {
                // The next step of space, zeros, before the frame: the sync that makes
                // the frame durable carries the new length with it.
                let len = self.opts.allocation_for(need);
                self.fail.guard(file.allocate(len))?;
                seg.file_len = len;
            }
            self.fail.guard(file.write_at(&st.buf, seg.end_offset))?;
            seg.maybe_mark(lsn, seg.end_offset);
            st.appended_bytes += flen;
            seg.end_offset += flen;
            seg.file_len = seg.file_len.max(seg.end_offset);
            seg.end_lsn = lsn + count;
            st.next_lsn = lsn + count;
            // Reuse the buffer unless one huge record would keep it big.
            if st.buf.capacity() > 1 << 20 {
                st.buf = Vec::new();
            }
            (lsn, lsn + count - 1)
        };
        if let Some(done) = done {
            st.pending.push_back(Pending { lsn: last, done });
            self.flush_cv.notify_one();
        } else if self.opts.sync_policy == SyncPolicy::Always {
            self.wait_synced(st, last)?;
        }
        Ok(lsn..=last)
    }

    fn check_record_len(&self, len: u64) -> Result<()> {
        if len > self.opts.max_record_bytes {
            return Err(Error::RecordTooLarge {
                len_bytes: len,
                max_bytes: self.opts.max_record_bytes,
            });
        }
        Ok(())
    }
}
