//! Recovery: read the segments, classify damage per [`RecoveryMode`], report what was found.
//! The argument for each branch is in docs/format/wal.md ("Recovery").

use std::path::{Path, PathBuf};

use vellum_fs::Fs;

use crate::error::{Error, Result};
use crate::format::{
    FORMAT_VERSION, FRAME_ALIGN_BYTES, FRAME_END_MARK, FRAME_HEADER_BYTES, FRAME_KIND_OFFSET,
    FRAME_LEN_OFFSET, FrameFault, FrameHeader, KIND_BATCH, KIND_SINGLE, SEGMENT_HEADER_BYTES,
    SegmentHeader, all_zero, check_frame, decode_frame, frame_len, parse_segment_name, u32_at,
};
use crate::options::RecoveryMode;

/// What open found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// The first LSN the log holds (the next LSN to be written when it is empty).
    pub first_lsn: u64,
    /// The last LSN recovered (0 when nothing was ever written).
    pub last_lsn: u64,
    /// The segments, in LSN order.
    pub segments: Vec<SegmentInfo>,
    /// The torn tail found at the end of the last segment, if any. Under
    /// `TolerateTornTail` it was cut off (durably) before open returned.
    pub tail_cut: Option<TailCut>,
    /// Damage skipped by `RecoveryMode::Salvage` (always empty in the other modes, which
    /// refuse damage with an error instead).
    pub damage: Vec<Damage>,
    /// Leftover temporary files (segments whose creation a crash interrupted) removed.
    pub removed_tmp_files: Vec<PathBuf>,
}

/// One segment as recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// LSN of its first record.
    pub first_lsn: u64,
    /// LSN of its last record (`first_lsn - 1` when it holds none).
    pub last_lsn: u64,
    /// Bytes of header and valid frames.
    pub valid_bytes: u64,
}

/// A torn tail: where the valid frames of the last segment end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailCut {
    /// The last segment.
    pub segment: PathBuf,
    /// Offset of the first invalid byte (where appends continue).
    pub offset: u64,
    /// The LSN that comes next.
    pub lsn: u64,
    /// Why the bytes at `offset` are not a valid frame.
    pub reason: String,
    /// Valid but unacknowledged frames found after the damage and dropped with it.
    pub dropped_frames: usize,
    /// Bytes from `offset` to the last byte that is not zero: what the cut drops.
    pub bytes: u64,
}

/// Damage skipped by `RecoveryMode::Salvage`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset of the damage.
    pub offset: u64,
    /// The LSN expected there.
    pub lsn: u64,
    /// What is wrong.
    pub reason: String,
}

/// A recovered segment, as the log keeps it.
#[derive(Debug, Clone)]
pub(crate) struct SegMeta {
    pub path: PathBuf,
    pub first_lsn: u64,
    pub salt: u64,
    /// The segment's format version (its frames' shape).
    pub version: u32,
    /// End of the valid frames (where the next frame goes in the active segment).
    pub end_offset: u64,
    /// The LSN after the last frame.
    pub end_lsn: u64,
    /// The file's length as far as the log knows (reads stop there; the zero padding of
    /// the last frame may lie beyond it after a crash).
    pub file_len: u64,
    /// Salvage only: damaged regions to jump over, as (offset, resume offset).
    pub skips: Vec<(u64, u64)>,
    /// A sparse index, (LSN, offset) of a frame start about every [`MARK_EVERY_BYTES`]:
    /// a read from an LSN starts at the last mark before it instead of the segment's
    /// start (at most `segment_size_bytes / MARK_EVERY_BYTES` entries a segment).
    pub marks: Vec<(u64, u64)>,
}

/// Bytes of frames between two marks of a segment's sparse index.
pub(crate) const MARK_EVERY_BYTES: u64 = 1 << 20;

impl SegMeta {
    /// Records a frame start at `offset` holding `lsn` if it is far enough past the last
    /// mark.
    pub(crate) fn maybe_mark(&mut self, lsn: u64, offset: u64) {
        let last = self.marks.last().map_or(0, |m| m.1);
        if offset >= last + MARK_EVERY_BYTES {
            self.marks.push((lsn, offset));
        }
    }

    /// Where a read of `lsn` can start: (first LSN there, offset).
    pub(crate) fn start_for(&self, lsn: u64) -> Option<(u64, u64)> {
        self.marks.iter().rev().find(|m| m.0 <= lsn).copied()
    }
}

/// What [`recover`] hands to the log.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub segments: Vec<SegMeta>,
    pub next_lsn: u64,
    pub report: Recovery,
}

/// How the scan of one segment ended.
enum SegEnd {
    /// Zeros or end of file after the last valid frame.
    Clean,
    /// A torn tail (only in the last segment).
    Torn(TailCut),
}

struct SegScan {
    end_offset: u64,
    end_lsn: u64,
    skips: Vec<(u64, u64)>,
    marks: Vec<(u64, u64)>,
    end: SegEnd,
}

/// Valid frames at aligned offsets from `from` on (the search for evidence after damage).
fn later_frames(bytes: &[u8], from: usize, salt: u64, max: u64) -> Vec<(u64, FrameHeader)> {
    let mut found = Vec::new();
    let mut off = from;
    while off + FRAME_KIND_OFFSET < bytes.len() {
        let kind = bytes[off + FRAME_KIND_OFFSET];
        if kind == KIND_SINGLE || kind == KIND_BATCH {
            let rest = &bytes[off..];
            if let Ok(h) = FrameHeader::decode(rest)
                && check_frame(rest, &h, salt, max).is_ok()
            {
                found.push((off as u64, h));
            }
        }
        off += FRAME_ALIGN_BYTES;
    }
    found
}

/// The sector size of the disk model: a write torn by a crash loses whole sectors (any
/// multiple of this, aligned to file offsets), never part of one.
pub(crate) const SECTOR_BYTES: usize = 512;

/// Whether the frame starting at `pos` was written whole: the segment's frames carry an
/// end mark (version 2 on), its header's length is plausible, the frame with its end mark
/// lies inside the file, the end mark is there, and every sector's share of the frame holds
/// a byte that is not zero. Returns the frame's length.
///
/// Space after the valid frames is zero when a frame is written there (preallocation,
/// `set_len` and the tail cut all zero-fill). A write a crash tore therefore leaves the end
/// mark missing (a short write, or writeback in order, keeps a prefix), or at least one
/// sector's share of the frame all zero (sectors reach the disk in any order), or the file
/// shorter than the frame. A frame with none of these whose checksum still fails was
/// changed after it reached the disk: damage, not a crash state. A frame whose own bytes
/// hold a sector's worth of zeros gets the benefit of the doubt and is cut as torn;
/// version-1 segments, without the mark, are always given it.
fn whole_on_disk(bytes: &[u8], pos: usize, version: u32, max_record_bytes: u64) -> Option<usize> {
    if version < FORMAT_VERSION {
        return None;
    }
    let header = bytes.get(pos..pos + FRAME_HEADER_BYTES)?;
    let payload_len = u64::from(u32_at(header, FRAME_LEN_OFFSET));
    if payload_len > max_record_bytes {
        return None;
    }
    let end = pos.checked_add(usize::try_from(frame_len(payload_len, version)).ok()?)?;
    let frame = bytes.get(pos..end)?;
    if frame.last() != Some(&FRAME_END_MARK) {
        return None;
    }
    let mut at = pos;
    while at < end {
        let sector_end = (at / SECTOR_BYTES + 1) * SECTOR_BYTES;
        if all_zero(&frame[at - pos..sector_end.min(end) - pos]) {
            return None;
        }
        at = sector_end;
    }
    Some(frame.len())
}

fn scan_segment(
    bytes: &[u8],
    header: SegmentHeader,
    path: &Path,
    is_last: bool,
    mode: RecoveryMode,
    max_record_bytes: u64,
    damage: &mut Vec<Damage>,
) -> Result<SegScan> {
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut lsn = header.first_lsn;
    let mut skips = Vec::new();
    let mut marks: Vec<(u64, u64)> = Vec::new();
    loop {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        let reason = match decode_frame(rest, header.salt, max_record_bytes) {
            Ok(h) if h.lsn == lsn => {
                if pos as u64 >= marks.last().map_or(0, |m| m.1) + MARK_EVERY_BYTES {
                    marks.push((lsn, pos as u64));
                }
                // The padding may lie past the end of the file (torn off): the next frame
                // still starts at the aligned offset.
                pos += h.frame_len(header.version) as usize;
                lsn = h.next_lsn();
                continue;
            }
            Ok(h) => format!("frame holds LSN {} where {lsn} was expected", h.lsn),
            Err(FrameFault::CleanEnd) => break,
            Err(FrameFault::Invalid(why)) => why.to_owned(),
        };
        // A bad frame at `pos` where `lsn` was expected: classify (docs/format/wal.md).
        let later = later_frames(
            bytes,
            pos + FRAME_ALIGN_BYTES,
            header.salt,
            max_record_bytes,
        );
        let evidence = later
            .iter()
            .find(|(_, h)| h.synced_lsn >= lsn || h.lsn < lsn);
        let corruption = if !is_last {
            Some(format!(
                "{reason}; the segment has a successor, so it was synced whole at rotation"
            ))
        } else if let Some((off, h)) = evidence {
            Some(format!(
                "{reason}; the valid frame at offset {off} (LSN {}) was written after LSN \
                 {lsn} had been synced (its synced LSN is {})",
                h.lsn, h.synced_lsn
            ))
        } else {
            whole_on_disk(bytes, pos, header.version, max_record_bytes).map(|extent| {
                format!(
                    "{reason}; all {extent} bytes of the frame reached the disk (its end mark \
                     is there and none of its {SECTOR_BYTES}-byte sectors reads as the zeros a \
                     crash leaves where a write did not arrive), so it was damaged after it was \
                     written, not torn by a crash"
                )
            })
        };
        match (corruption, mode) {
            (Some(reason), RecoveryMode::Salvage) => {
                damage.push(Damage {
                    segment: path.to_path_buf(),
                    offset: pos as u64,
                    lsn,
                    reason,
                });
                // Resume at the next valid frame that moves forward (a valid frame with an
                // older LSN is itself damage).
                match later.iter().find(|(_, h)| h.lsn >= lsn) {
                    Some((off, h)) => {
                        skips.push((pos as u64, *off));
                        pos = *off as usize;
                        lsn = h.lsn;
                        continue;
                    }
                    None => break,
                }
            }
            (Some(reason), _) => {
                return Err(Error::Corruption {
                    segment: path.to_path_buf(),
                    offset: pos as u64,
                    lsn,
                    reason,
                });
            }
            (None, RecoveryMode::AbsoluteConsistency) => {
                return Err(Error::TornTail {
                    segment: path.to_path_buf(),
                    offset: pos as u64,
                    lsn,
                });
            }
            (None, _) => {
                return Ok(SegScan {
                    end_offset: pos as u64,
                    end_lsn: lsn,
                    skips,
                    marks,
                    end: SegEnd::Torn(TailCut {
                        segment: path.to_path_buf(),
                        offset: pos as u64,
                        lsn,
                        reason,
                        dropped_frames: later.len(),
                        bytes: bytes[pos..]
                            .iter()
                            .rposition(|&b| b != 0)
                            .map_or(0, |last| last as u64 + 1),
                    }),
                });
            }
        }
    }
    Ok(SegScan {
        end_offset: pos as u64,
        end_lsn: lsn,
        skips,
        marks,
        end: SegEnd::Clean,
    })
}

/// Segment files as (first LSN from the name, path), and leftover temporary files.
type SegmentListing = (Vec<(u64, PathBuf)>, Vec<PathBuf>);

/// The segment files in `dir` as (first LSN from the name, path), in LSN order, and the
/// leftover temporary files.
pub(crate) fn list_segments(fs: &dyn Fs, dir: &Path) -> vellum_fs::Result<SegmentListing> {
    let mut segs = Vec::new();
    let mut tmps = Vec::new();
    for name in fs.list_dir(dir)? {
        if let Some(lsn) = parse_segment_name(&name) {
            segs.push((lsn, dir.join(&name)));
        } else if name
            .strip_suffix(".tmp")
            .and_then(parse_segment_name)
            .is_some()
        {
            tmps.push(dir.join(&name));
        }
    }
    segs.sort_by_key(|(lsn, _)| *lsn);
    Ok((segs, tmps))
}

/// Reads and classifies every segment. Writes nothing: the caller repairs (cuts the tail,
/// removes temporary files) according to the report.
pub(crate) fn recover(
    fs: &dyn Fs,
    dir: &Path,
    mode: RecoveryMode,
    max_record_bytes: u64,
) -> Result<Recovered> {
    let (segs, tmps) = list_segments(fs, dir)?;
    let mut report = Recovery {
        removed_tmp_files: tmps,
        ..Recovery::default()
    };
    let mut metas: Vec<SegMeta> = Vec::new();
    let mut expected: Option<(u64, PathBuf)> = None;
    let count = segs.len();
    for (i, (name_lsn, path)) in segs.into_iter().enumerate() {
        let is_last = i + 1 == count;
        // Mapped, not read: a preallocated segment is mostly zeros, and copying all of it
        // into a buffer dominated open time (143 ms for one 64 MiB segment). The map lives
        // for this iteration only; nothing writes the file until recovery returns.
        let file = fs.open(&path)?;
        let map = file.map_read()?;
        let bytes: &[u8] = &map;
        let header = match SegmentHeader::decode(bytes) {
            Ok(h) if h.first_lsn == name_lsn => h,
            Ok(h) => Err(format!(
                "header says first LSN {} but the name says {name_lsn}",
                h.first_lsn
            ))
            .or_else(|reason| skip_bad_header(mode, &path, name_lsn, reason, &mut report))?,
            Err(why) => skip_bad_header(mode, &path, name_lsn, why.to_owned(), &mut report)?,
        };
        if header.first_lsn == 0 {
            continue; // skipped by Salvage
        }
        if let Some((exp, before)) = &expected
            && header.first_lsn != *exp
        {
            let err = if header.first_lsn > *exp {
                Error::Hole {
                    before: before.clone(),
                    after: path.clone(),
                    expected_lsn: *exp,
                    found_lsn: header.first_lsn,
                }
            } else {
                Error::Corruption {
                    segment: path.clone(),
                    offset: 0,
                    lsn: header.first_lsn,
                    reason: format!(
                        "segment starts at LSN {} but its predecessor already reaches LSN {}",
                        header.first_lsn,
                        exp - 1
                    ),
                }
            };
            if mode != RecoveryMode::Salvage {
                return Err(err);
            }
            report.damage.push(Damage {
                segment: path.clone(),
                offset: 0,
                lsn: *exp,
                reason: err.to_string(),
            });
            if header.first_lsn < *exp {
                continue;
            }
        }
        let scan = scan_segment(
            bytes,
            header,
            &path,
            is_last,
            mode,
            max_record_bytes,
            &mut report.damage,
        )?;
        if let SegEnd::Torn(cut) = scan.end {
            report.tail_cut = Some(cut);
        }
        expected = Some((scan.end_lsn, path.clone()));
        metas.push(SegMeta {
            path,
            first_lsn: header.first_lsn,
            salt: header.salt,
            version: header.version,
            end_offset: scan.end_offset,
            end_lsn: scan.end_lsn,
            file_len: bytes.len() as u64,
            skips: scan.skips,
            marks: scan.marks,
        });
    }
    let next_lsn = metas.last().map_or(1, |m| m.end_lsn);
    report.first_lsn = metas.first().map_or(next_lsn, |m| m.first_lsn);
    report.last_lsn = next_lsn - 1;
    report.segments = metas
        .iter()
        .map(|m| SegmentInfo {
            path: m.path.clone(),
            first_lsn: m.first_lsn,
            last_lsn: m.end_lsn - 1,
            valid_bytes: m.end_offset,
        })
        .collect();
    Ok(Recovered {
        segments: metas,
        next_lsn,
        report,
    })
}

/// A segment header is bad: an error, or (Salvage) a damage report and a header with LSN 0
/// that tells the caller to skip the segment.
fn skip_bad_header(
    mode: RecoveryMode,
    path: &Path,
    name_lsn: u64,
    reason: String,
    report: &mut Recovery,
) -> Result<SegmentHeader> {
    if mode != RecoveryMode::Salvage {
        return Err(Error::BadSegmentHeader {
            segment: path.to_path_buf(),
            reason,
        });
    }
    report.damage.push(Damage {
        segment: path.to_path_buf(),
        offset: 0,
        lsn: name_lsn,
        reason,
    });
    Ok(SegmentHeader {
        first_lsn: 0,
        salt: 0,
        version: FORMAT_VERSION,
    })
}
