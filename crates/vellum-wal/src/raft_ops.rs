//! The operations a consensus log needs on top of an append-only one (docs/format/wal.md,
//! "Index-addressed operations"): append at a caller-given LSN (the Raft index), with or
//! without a durability callback; cut a suffix durably; start over at any LSN after a
//! snapshot install. A prefix is dropped by [`Wal::truncate_before`] as for a checkpoint.

use std::ops::RangeInclusive;
use std::path::Path;

use parking_lot::MutexGuard;
use vellum_fs::{Fs, atomic_replace};

use crate::append::Shape;
use crate::error::{Error, Result};
use crate::flusher::DurableCallback;
use crate::format::{
    FRAME_HEADER_BYTES, FrameHeader, SEGMENT_HEADER_BYTES, segment_name, u32_at, u64_at,
};
use crate::options::WalOptions;
use crate::recovery::{SegMeta, list_segments};
use crate::wal::{Shared, State, Wal, create_segment};

/// The file that marks a reset in progress: written (atomically) before the first segment
/// is removed, removed once the new empty segment is durable. An open that finds it
/// finishes the reset, so a crash leaves the old log whole or the new one, never a part.
pub const RESET_MARKER: &str = "reset-pending";
/// Magic of the reset marker: "VLMRST", a NUL and the marker's version.
pub const RESET_MARKER_MAGIC: [u8; 8] = *b"VLMRST\x00\x01";
/// The file that marks a cut ([`Wal::truncate_after`]) in progress: it names the segment
/// (by first LSN) and the offset to cut at. Published before the cut, removed once it is
/// durable; an open that finds it cuts again before recovery reads the log. Without it, a
/// crash during the cut could leave the first cut frame's sector zeroed and a later one's
/// not, and that later frame, synced before the cut, would read as proof of damage.
pub const CUT_MARKER: &str = "cut-pending";
/// Magic of the cut marker: "VLMCUT", a NUL and the marker's version.
pub const CUT_MARKER_MAGIC: [u8; 8] = *b"VLMCUT\x00\x01";

impl Wal {
    /// Appends `records` as one frame each, the first at LSN `first` (the next LSN, or
    /// [`Error::NotNextLsn`]: no gap, no overlap). Durable on return under
    /// `SyncPolicy::Always`, as [`Wal::append`]. A suffix of such records can be cut at
    /// any record by [`Wal::truncate_after`].
    pub fn append_at<B: AsRef<[u8]>>(
        &self,
        first: u64,
        records: &[B],
    ) -> Result<RangeInclusive<u64>> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.shared
            .append(records, Shape::FramePerRecord, Some(first), None)
    }

    /// As [`Wal::append_at`], but returns as soon as the records are written (readable by
    /// [`Wal::iter_from`]) whatever the sync policy, and calls `on_durable` from the log's
    /// flusher thread once they are durable (or with the error that stopped the log).
    /// Callbacks are called in LSN order. At most
    /// [`MAX_PENDING_CALLBACKS`](crate::MAX_PENDING_CALLBACKS) wait at once; an append
    /// beyond that blocks until a sync frees room.
    pub fn append_at_then<B: AsRef<[u8]>>(
        &self,
        first: u64,
        records: &[B],
        on_durable: DurableCallback,
    ) -> Result<RangeInclusive<u64>> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.ensure_flusher();
        self.shared.append(
            records,
            Shape::FramePerRecord,
            Some(first),
            Some(on_durable),
        )
    }

    /// Cuts every record after `lsn`, durably: on return the log ends at `lsn`, the cut
    /// frames are gone from the disk (removed segments, a shortened file, synced) and the
    /// synced-LSN watermark new frames carry is at most `lsn`, so no frame written later
    /// vouches for a record that was cut. Everything appended before is first made durable
    /// and its callbacks called. A crash before return leaves a prefix of the old log that
    /// still holds every durable record up to `lsn`. `lsn` may be the LSN before the first
    /// held (everything goes); a cut inside a batch frame is refused
    /// ([`Error::TruncateInsideBatch`]).
    pub fn truncate_after(&self, lsn: u64) -> Result<()> {
        let sh = &self.shared;
        sh.writable()?;
        let mut st = sh.settle()?;
        let first = st.segments.first().map_or(st.next_lsn, |s| s.first_lsn);
        let last = st.next_lsn - 1;
        if lsn >= last {
            return Ok(());
        }
        if lsn + 1 < first {
            return Err(Error::LsnNotAvailable {
                requested: lsn,
                first,
                last,
            });
        }
        let cut_lsn = lsn + 1;
        let idx = st
            .segments
            .iter()
            .rposition(|s| s.first_lsn <= cut_lsn)
            .expect("the first segment starts at or before first <= cut_lsn");
        // Find the cut before changing anything (a batch frame in the way refuses it).
        let offset = frame_offset(sh.fs.as_ref(), &st.segments[idx], cut_lsn)?;
        let seg_first = st.segments[idx].first_lsn;
        st.active = None;
        let file = sh.fail.run(|| {
            write_marker(
                sh.fs.as_ref(),
                &sh.dir.join(CUT_MARKER),
                &CUT_MARKER_MAGIC,
                &[seg_first, offset],
            )?;
            finish_cut(sh.fs.as_ref(), &sh.dir, seg_first, offset, &sh.opts)
        })?;
        st.segments.truncate(idx + 1);
        let file_len = if sh.opts.preallocate {
            sh.opts.allocation_for(offset)
        } else {
            offset
        };
        let seg = &mut st.segments[idx];
        seg.end_offset = offset;
        seg.end_lsn = cut_lsn;
        seg.file_len = file_len;
        seg.skips.retain(|(at, _)| *at < offset);
        seg.marks.retain(|(_, at)| *at < offset);
        st.active = Some(file);
        st.next_lsn = cut_lsn;
        st.synced_lsn = st.synced_lsn.min(lsn);
        Ok(())
    }

    /// Empties the log and starts it at `next_lsn` (any LSN from 1; after a snapshot that
    /// covers more than the log holds, the LSN after the snapshot). Everything appended
    /// before is first made durable and its callbacks called. Atomic across a crash: a
    /// marker file is published first and removed last, and an open that finds it finishes
    /// the reset.
    pub fn reset(&self, next_lsn: u64) -> Result<()> {
        let sh = &self.shared;
        sh.writable()?;
        if next_lsn == 0 {
            return Err(Error::InvalidOptions("a log cannot start at LSN 0".into()));
        }
        let mut st = sh.settle()?;
        if sh.volatile {
            st.next_lsn = next_lsn;
            st.synced_lsn = next_lsn - 1;
            return Ok(());
        }
        st.active = None;
        let (meta, file) = sh.fail.run(|| {
            write_marker(
                sh.fs.as_ref(),
                &sh.dir.join(RESET_MARKER),
                &RESET_MARKER_MAGIC,
                &[next_lsn],
            )?;
            sh.fs.fail_point(crate::fail_points::RESET_AFTER_MARKER)?;
            finish_reset(sh.fs.as_ref(), &sh.dir, next_lsn, &sh.opts)
        })?;
        st.segments = vec![meta];
        st.active = Some(file);
        st.next_lsn = next_lsn;
        st.synced_lsn = next_lsn - 1;
        Ok(())
    }
}

impl Shared {
    /// Makes everything appended durable, calls the waiting callbacks, and returns the lock
    /// with no sync running (a cut must not race a group commit leader, which would then
    /// publish a synced LSN past the cut).
    fn settle(&self) -> Result<MutexGuard<'_, State>> {
        loop {
            let mut st = self.state.lock();
            self.fail.check()?;
            let target = st.next_lsn - 1;
            if st.synced_lsn < target {
                self.wait_synced(st, target)?;
            } else if !st.pending.is_empty() {
                drop(st);
            } else if st.sync_in_progress {
                self.synced.wait(&mut st);
                continue;
            } else {
                return Ok(st);
            }
            self.fire_ready();
        }
    }
}

/// The byte offset of the frame that starts at `lsn` in `seg` (its end when `lsn` is the
/// LSN after its last frame).
fn frame_offset(fs: &dyn Fs, seg: &SegMeta, lsn: u64) -> Result<u64> {
    let file = fs.open(&seg.path)?;
    let mut off = SEGMENT_HEADER_BYTES as u64;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    while off < seg.end_offset {
        if let Some((_, resume)) = seg.skips.iter().find(|(at, _)| *at == off) {
            off = *resume;
            continue;
        }
        file.read_at(&mut header, off)?;
        let h = FrameHeader::decode(&header).map_err(|why| Error::Corruption {
            segment: seg.path.clone(),
            offset: off,
            lsn,
            reason: format!("{why} (a frame recovery accepted reads differently now)"),
        })?;
        if h.lsn == lsn {
            return Ok(off);
        }
        if h.lsn < lsn && lsn < h.next_lsn() {
            return Err(Error::TruncateInsideBatch {
                lsn: lsn - 1,
                segment: seg.path.clone(),
                offset: off,
                first: h.lsn,
                last: h.next_lsn() - 1,
            });
        }
        off += h.frame_len(seg.version);
    }
    if lsn == seg.end_lsn {
        return Ok(seg.end_offset);
    }
    Err(Error::Corruption {
        segment: seg.path.clone(),
        offset: off,
        lsn,
        reason: "no frame starts at this LSN in the segment recovery said holds it".into(),
    })
}

fn write_marker(
    fs: &dyn Fs,
    path: &Path,
    magic: &[u8; 8],
    fields: &[u64],
) -> vellum_fs::Result<()> {
    let mut b = magic.to_vec();
    for f in fields {
        b.extend_from_slice(&f.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    atomic_replace(fs, path, &b)
}

/// The fields of the marker at `path` if it exists; a damaged one is refused with what is
/// wrong (markers are published with `atomic_replace`: never torn by a crash).
fn read_marker(fs: &dyn Fs, path: &Path, magic: &[u8; 8], n: usize) -> Result<Option<Vec<u64>>> {
    if !fs.exists(path)? {
        return Ok(None);
    }
    let file = fs.open(path)?;
    let len = file.len()?;
    let want = 8 + 8 * n + 4;
    let bad = |reason: String| Error::Corruption {
        segment: path.to_path_buf(),
        offset: 0,
        lsn: 0,
        reason,
    };
    if len != want as u64 {
        return Err(bad(format!("marker is {len} bytes, not {want}")));
    }
    let mut b = vec![0u8; want];
    file.read_at(&mut b, 0)?;
    if b[..8] != magic[..] {
        return Err(bad("marker has a bad magic".into()));
    }
    if u32_at(&b, want - 4) != crc32fast::hash(&b[..want - 4]) {
        return Err(bad("marker checksum mismatch".into()));
    }
    Ok(Some((0..n).map(|k| u64_at(&b, 8 + 8 * k)).collect()))
}

/// The LSN an interrupted reset in `dir` starts the log at, if one is pending.
pub(crate) fn pending_reset(fs: &dyn Fs, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(RESET_MARKER);
    match read_marker(fs, &path, &RESET_MARKER_MAGIC, 1)? {
        Some(f) if f[0] == 0 => Err(Error::Corruption {
            segment: path,
            offset: 0,
            lsn: 0,
            reason: "reset marker names LSN 0".into(),
        }),
        Some(f) => Ok(Some(f[0])),
        None => Ok(None),
    }
}

/// An interrupted cut in `dir`, as (segment first LSN, offset), if one is pending.
pub(crate) fn pending_cut(fs: &dyn Fs, dir: &Path) -> Result<Option<(u64, u64)>> {
    Ok(read_marker(fs, &dir.join(CUT_MARKER), &CUT_MARKER_MAGIC, 2)?.map(|f| (f[0], f[1])))
}

/// Removes the segments after the one starting at `segment_first_lsn`, cuts that one at
/// `offset` (re-allocating its space), syncs, and removes the marker. Safe to run again
/// after a crash at any step.
pub(crate) fn finish_cut(
    fs: &dyn Fs,
    dir: &Path,
    segment_first_lsn: u64,
    offset: u64,
    opts: &WalOptions,
) -> vellum_fs::Result<std::sync::Arc<dyn vellum_fs::File>> {
    let (segments, _) = list_segments(fs, dir)?;
    for (first, path) in segments.iter().rev() {
        if *first > segment_first_lsn {
            fs.remove_file(path)?;
        }
    }
    fs.sync_dir(dir)?;
    let file: std::sync::Arc<dyn vellum_fs::File> =
        fs.open(&dir.join(segment_name(segment_first_lsn)))?.into();
    file.set_len(offset)?;
    if opts.preallocate {
        file.allocate(opts.allocation_for(offset))?;
    }
    fs.fail_point(crate::fail_points::TRUNCATE_AFTER_BEFORE_SYNC)?;
    file.sync_data()?;
    fs.remove_file(&dir.join(CUT_MARKER))?;
    fs.sync_dir(dir)?;
    Ok(file)
}

/// Removes every segment, creates the empty one at `next_lsn` and removes the marker;
/// safe to run again after a crash at any step (the marker is still there until the end).
pub(crate) fn finish_reset(
    fs: &dyn Fs,
    dir: &Path,
    next_lsn: u64,
    opts: &WalOptions,
) -> vellum_fs::Result<(SegMeta, std::sync::Arc<dyn vellum_fs::File>)> {
    let (segments, tmps) = list_segments(fs, dir)?;
    for (_, path) in segments.iter().rev() {
        fs.remove_file(path)?;
    }
    for path in &tmps {
        fs.remove_file(path)?;
    }
    fs.sync_dir(dir)?;
    let created = create_segment(fs, dir, next_lsn, opts)?;
    fs.remove_file(&dir.join(RESET_MARKER))?;
    fs.sync_dir(dir)?;
    Ok(created)
}
