//! Segment files and slots: a segment's expected header, opening one, creating one (small,
//! `FIRST_SEGMENT_BYTES` of slots), extending one as slots fill, and handing out the lowest
//! free slot. The store's own operations are in `store.rs`.

use std::cmp::Reverse;

use crate::error::{Error, Result};
use crate::segment::{HEADER_BYTES, SegmentHeader, segment_file_name};
use crate::slots::Segment;
use crate::store::{FIRST_SEGMENT_BYTES, VectorStore};

impl VectorStore {
    pub(crate) fn expected_header(&self, index: u32) -> SegmentHeader {
        SegmentHeader {
            element: self.config.element,
            dimension: self.config.dimension,
            slot_bytes: self.slot_bytes as u32,
            slots_per_segment: self.config.slots_per_segment,
            segment_index: index,
        }
    }

    pub(crate) fn open_segment(&self, index: u32) -> Result<Segment> {
        let path = self.dir.join(segment_file_name(index));
        let file = match self.fs.open(&path) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Err(Error::SegmentMissing { path }),
            Err(e) => return Err(e.into()),
        };
        let expected = self.expected_header(index);
        let len = file.len()?;
        if expected.slots_in_file(len).is_none() {
            return Err(Error::SegmentSize {
                path,
                expected: expected.file_len_bytes(),
                found: len,
            });
        }
        let mut page = vec![0u8; HEADER_BYTES];
        file.read_at(&mut page, 0)?;
        let header = SegmentHeader::decode(&page).map_err(|detail| Error::SegmentHeader {
            path: path.clone(),
            detail,
        })?;
        if header != expected {
            let (field, stored, configured) = if header.dimension != expected.dimension {
                ("dimension", header.dimension, expected.dimension)
            } else if header.slots_per_segment != expected.slots_per_segment {
                (
                    "slots per segment",
                    header.slots_per_segment,
                    expected.slots_per_segment,
                )
            } else {
                ("segment index", header.segment_index, index)
            };
            return Err(Error::ConfigMismatch {
                path,
                field,
                stored: stored.to_string(),
                configured: configured.to_string(),
            });
        }
        let map = file.map_mut(len as usize)?;
        Ok(Segment::new(
            path,
            file,
            map,
            self.config.slots_per_segment,
            self.slot_bytes,
        ))
    }

    /// Slots a new segment file starts with: about [`FIRST_SEGMENT_BYTES`] worth and at
    /// most a quarter of the segment (so small test geometries grow too), at least one.
    pub(crate) fn first_segment_slots(&self) -> u32 {
        let by_bytes = (FIRST_SEGMENT_BYTES / self.slot_bytes.max(1)) as u64;
        let quarter = u64::from(self.config.slots_per_segment / 4);
        by_bytes.min(quarter).max(1) as u32
    }

    /// Adds a segment: created with its header and its first slots (it grows as they fill,
    /// `allocate_slot`), its name synced, then mapped. All its slots join the free list.
    pub(crate) fn grow(&mut self) -> Result<()> {
        let index = self.segments.len() as u32;
        let path = self.dir.join(segment_file_name(index));
        let header = self.expected_header(index);
        let first_len = header.len_for_slots(self.first_segment_slots());
        let seg = self.failstop.run(|| {
            let file = self.fs.create(&path)?;
            file.allocate(first_len)?;
            file.write_at(&header.encode(), 0)?;
            // No `sync_data` here: a new segment always has a slot written into it, so it is
            // dirty at the next checkpoint, whose flush of the whole map (`msync`, which
            // syncs the file's range and its size) makes header, length and slots durable
            // before the id map naming them is published. Until then nothing durable
            // references the segment. The name, though, needs its directory synced (a
            // checkpoint naming its slots must find the file).
            self.fs.sync_dir(&self.dir)?;
            let map = file.map_mut(first_len as usize)?;
            Ok(Segment::new(
                path.clone(),
                file,
                map,
                self.config.slots_per_segment,
                self.slot_bytes,
            ))
        })?;
        self.segments.push(seg);
        Ok(())
    }

    /// The lowest free slot, its segment file extended to hold it if needed (doubling, up
    /// to the whole segment), so the files grow with the data.
    pub(crate) fn allocate_slot(&mut self) -> Result<u64> {
        let sps = u64::from(self.config.slots_per_segment);
        let slot = match self.free.pop() {
            Some(Reverse(slot)) => slot,
            None => {
                if self.fresh >= self.segments.len() as u64 * sps {
                    self.grow()?;
                }
                self.fresh += 1;
                self.fresh - 1
            }
        };
        let (seg_index, within, _) = self.locate(slot);
        let seg = &mut self.segments[seg_index];
        if within >= seg.capacity() {
            let slots = (seg.capacity() * 2).max(within + 1).min(sps as usize);
            if let Err(e) = self.failstop.run(|| seg.extend_to(slots)) {
                self.give_back(slot);
                return Err(e.into());
            }
        }
        Ok(slot)
    }

    /// Returns a slot `allocate_slot` handed out and nothing used.
    pub(crate) fn give_back(&mut self, slot: u64) {
        if slot + 1 == self.fresh {
            self.fresh = slot;
        } else {
            self.free.push(Reverse(slot));
        }
    }
}
