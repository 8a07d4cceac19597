//! The code plane: a compact, derived copy of every live vector (a quantized code, say),
//! kept in its own mapped files beside the segments, slot for slot.
//!
//! The store does not know what a code means: the caller attaches an encoder
//! ([`VectorStore::attach_codes`]) and from then on every vector written (upsert, replay,
//! compaction move) has its code written with it, by the store. The originals stay the
//! source of truth, so the plane needs no ordering of its own against checkpoints. Each
//! code is *bound* to the vector it was encoded from: its slot ends in a CRC-32 of the
//! code and the vector's CRC (the id map's), in files named by the plane's generation
//! (so no file ever holds codes of two generations). After a crash,
//! attaching finds every code whose binding does not match the vector the checkpoint names
//! — torn, never written, or left from a vector since replaced —
//! and encodes it again from the original. A code that matches was encoded from exactly
//! that vector under that generation. Nothing else is needed for crash safety: no
//! copy-on-write, no sync before a checkpoint publishes (the checkpoint flush still
//! writes the plane's dirty pages back, so a power cut leaves little to redo).
//!
//! A new generation (the caller retrained its quantizer) is a new set of files. Either
//! attached at once ([`VectorStore::attach_codes`], which encodes every vector under
//! `&mut self`), or *staged* ([`VectorStore::stage_codes`]) and encoded a chunk of slots at
//! a time ([`VectorStore::encode_staged`]) while the old plane stays attached and writes go
//! to both, then swapped in ([`VectorStore::commit_staged`]): the caller releases its lock
//! between chunks, so searches and writes go on through a conversion. A crash before the
//! caller's checkpoint names the new generation leaves the old one, and the new files are
//! removed at the next attach. Files `codes-<generation, 16 hex>-<segment, 8
//! digits>.vqc`, each a segment header (element `code`, "dimension" = code bytes + 4)
//! and one slot per vector slot; docs/format/vectors.md has the layout.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::segment::{ElementType, HEADER_BYTES, SegmentHeader, slot_bytes_for};
use crate::slots::Segment;
use crate::store::VectorStore;

/// Encodes one vector into its code (`out` is exactly the code length).
pub type CodeEncoder = dyn Fn(&[f32], &mut [u8]) + Send + Sync;

/// Which code plane: its generation (a new one for every retraining) and code length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeSpec {
    /// Bumped by the caller whenever codes of the same vectors would change.
    pub generation: u64,
    /// Bytes per code.
    pub code_len: u32,
}

/// What attaching a plane found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodesReport {
    /// Live slots whose code was checked.
    pub checked: u64,
    /// Of those, codes that did not match their vector and were encoded again.
    pub reencoded: u64,
}

/// A live code that does not match its vector ([`VectorStore::verify_codes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFault {
    /// The id.
    pub id: u64,
    /// The code file.
    pub path: PathBuf,
    /// Byte offset of the slot in the file.
    pub offset: u64,
    /// What is wrong: the binding, or the bytes against a fresh encoding.
    pub reason: String,
}

/// Bytes after the code in each slot: the binding CRC.
const BINDING_BYTES: usize = 4;

/// The name of a code file.
pub fn code_file_name(generation: u64, index: u32) -> String {
    format!("codes-{generation:016x}-{index:08}.vqc")
}

/// The generation and segment index in a code file name, if it is one.
pub fn parse_code_file_name(name: &str) -> Option<(u64, u32)> {
    let rest = name.strip_prefix("codes-")?.strip_suffix(".vqc")?;
    let (generation, index) = rest.split_once('-')?;
    if generation.len() != 16 || index.len() != 8 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        u64::from_str_radix(generation, 16).ok()?,
        index.parse().ok()?,
    ))
}

/// The binding of `code` to the vector whose CRC is `vector_crc`.
fn binding(code: &[u8], vector_crc: u32) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(code);
    hasher.update(&vector_crc.to_le_bytes());
    hasher.finalize()
}

/// An attached code plane.
pub(crate) struct CodePlane {
    spec: CodeSpec,
    encode: Arc<CodeEncoder>,
    /// Bytes per slot: code, binding, padding to `SLOT_ALIGN_BYTES`.
    slot_bytes: usize,
    /// Parallel to the store's segments (at most as many).
    pub(crate) segments: Vec<Segment>,
    /// One slot's bytes, reused by every write.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for CodePlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodePlane")
            .field("spec", &self.spec)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl CodePlane {
    fn header(&self, slots_per_segment: u32, index: u32) -> SegmentHeader {
        SegmentHeader {
            element: ElementType::Code,
            dimension: self.spec.code_len + BINDING_BYTES as u32,
            slot_bytes: self.slot_bytes as u32,
            slots_per_segment,
            segment_index: index,
        }
    }

    fn offset(&self, within: usize) -> usize {
        HEADER_BYTES + within * self.slot_bytes
    }

    /// Encodes `vector` and writes code and binding into slot `within` of segment `seg`
    /// (which must hold it).
    fn write(&mut self, seg: usize, within: usize, vector: &[f32], vector_crc: u32) {
        let len = self.spec.code_len as usize;
        let (code, tail) = self.scratch.split_at_mut(len);
        code.fill(0);
        (self.encode)(vector, code);
        let bound = binding(code, vector_crc);
        tail[..BINDING_BYTES].copy_from_slice(&bound.to_le_bytes());
        let offset = self.offset(within);
        let segment = &mut self.segments[seg];
        segment.write(offset, &self.scratch[..len + BINDING_BYTES]);
        segment.dirty = true;
    }

    /// Whether slot `within` of `seg` holds a code bound to `vector_crc`.
    fn bound(&self, seg: usize, within: usize, vector_crc: u32) -> bool {
        let Some(segment) = self.segments.get(seg) else {
            return false;
        };
        if within >= segment.capacity() {
            return false;
        }
        let len = self.spec.code_len as usize;
        let bytes = segment.bytes(self.offset(within), len + BINDING_BYTES);
        let stored = u32::from_le_bytes(bytes[len..].try_into().expect("4 bytes"));
        stored == binding(&bytes[..len], vector_crc)
    }
}

/// A plane being encoded beside the attached one: every slot below `cursor` is done, and
/// every vector written since staging has its code.
#[derive(Debug)]
pub(crate) struct Staged {
    plane: CodePlane,
    cursor: u64,
}

impl VectorStore {
    /// A new plane of `spec`, checked (no file touched).
    fn new_plane(&self, spec: CodeSpec, encode: Arc<CodeEncoder>) -> Result<CodePlane> {
        let dimension = spec.code_len.checked_add(BINDING_BYTES as u32);
        let slot_bytes = dimension.map_or(0, |d| slot_bytes_for(ElementType::Code, d));
        let plane = CodePlane {
            spec,
            encode,
            slot_bytes,
            segments: Vec::new(),
            scratch: vec![0; (spec.code_len as usize).saturating_add(BINDING_BYTES)],
        };
        let check = dimension.map(|_| plane.header(self.config.slots_per_segment, 0).check());
        if spec.code_len == 0 || !matches!(check, Some(Ok(()))) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "a code of {} bytes does not fit a code plane",
                    spec.code_len
                ),
            });
        }
        Ok(plane)
    }

    /// Starts a new plane of `spec` beside the attached one (whose generation must differ):
    /// its files are created (any left from an earlier try removed first) and from now on
    /// every vector written gets a code in both. [`VectorStore::encode_staged`] then encodes
    /// the vectors already stored, a chunk at a time, and [`VectorStore::commit_staged`]
    /// swaps it in. Replaces a plane staged before.
    pub fn stage_codes(&mut self, spec: CodeSpec, encode: Arc<CodeEncoder>) -> Result<()> {
        self.failstop.check()?;
        if self
            .codes
            .as_ref()
            .is_some_and(|p| p.spec.generation == spec.generation)
        {
            return Err(Error::InvalidConfig {
                reason: format!("code generation {} is the attached one", spec.generation),
            });
        }
        let mut plane = self.new_plane(spec, encode)?;
        self.abandon_staged()?;
        self.remove_code_files(|generation, _| generation == spec.generation)?;
        for index in 0..self.segments.len() {
            let segment = self.open_or_create_code_segment(&plane, index as u32)?;
            plane.segments.push(segment);
        }
        self.fs.sync_dir(&self.dir)?;
        self.staged = Some(Staged { plane, cursor: 0 });
        Ok(())
    }

    /// Encodes the staged plane's codes of the live vectors in the next `max_slots` slots;
    /// returns whether every slot is done (then [`VectorStore::commit_staged`]). `true`
    /// when nothing is staged.
    pub fn encode_staged(&mut self, max_slots: u64) -> Result<bool> {
        self.failstop.check()?;
        let Some(mut staged) = self.staged.take() else {
            return Ok(true);
        };
        let end = staged
            .cursor
            .saturating_add(max_slots)
            .min(self.slot_bound());
        let mut result = Ok(());
        for slot in staged.cursor..end {
            let Some(id) = self.id_at(slot) else {
                continue;
            };
            let (seg, within, _) = self.locate(slot);
            let crc = self.segments[seg].crcs[within];
            result = self.ensure_code_slot(&mut staged.plane, seg, within);
            if result.is_err() {
                break;
            }
            match self.checked_vector(id, slot) {
                Ok(vector) => staged.plane.write(seg, within, vector, crc),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            staged.cursor = end;
        }
        let done = staged.cursor >= self.slot_bound();
        self.staged = Some(staged);
        result.map(|()| done)
    }

    /// Swaps the staged plane in once every slot is encoded: it becomes the attached plane,
    /// and the files of every other generation are removed. Returns its spec; `None` when
    /// nothing is staged.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when slots are left to encode (the staged plane stays).
    pub fn commit_staged(&mut self) -> Result<Option<CodeSpec>> {
        let Some(staged) = self.staged.take() else {
            return Ok(None);
        };
        if staged.cursor < self.slot_bound() {
            let left = self.slot_bound() - staged.cursor;
            self.staged = Some(staged);
            return Err(Error::InvalidConfig {
                reason: format!("{left} slots of the staged code plane are not encoded yet"),
            });
        }
        let spec = staged.plane.spec;
        self.codes = Some(staged.plane);
        self.remove_code_files(|generation, _| generation != spec.generation)?;
        Ok(Some(spec))
    }

    /// Drops the staged plane, if any, with its files.
    pub fn abandon_staged(&mut self) -> Result<()> {
        if let Some(staged) = self.staged.take() {
            let generation = staged.plane.spec.generation;
            drop(staged);
            self.remove_code_files(|g, _| g == generation)?;
        }
        Ok(())
    }

    /// Attaches a code plane: every vector written from now on gets its code from
    /// `encode`, and [`VectorStore::code_at`] returns it. Maps the generation's files
    /// (creating those missing), checks every live slot's code against the vector the
    /// store holds there and encodes again each one that does not match (after a crash,
    /// the codes written since the last flush; after a new generation, all of them), and
    /// removes code files of other generations. Replaces an attached plane.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a code length of 0 or past the segment limits; file
    /// errors; [`Error::SlotCorrupt`] when a vector to encode fails its checksum.
    pub fn attach_codes(
        &mut self,
        spec: CodeSpec,
        encode: Arc<CodeEncoder>,
    ) -> Result<CodesReport> {
        self.failstop.check()?;
        let mut plane = self.new_plane(spec, encode)?;
        self.codes = None;
        self.staged = None;
        self.remove_code_files(|generation, index| {
            generation != spec.generation || index as usize >= self.segments.len()
        })?;
        for index in 0..self.segments.len() {
            let segment = self.open_or_create_code_segment(&plane, index as u32)?;
            plane.segments.push(segment);
        }
        self.fs.sync_dir(&self.dir)?;
        let mut report = CodesReport::default();
        let live: Vec<(u64, u64)> = self.ids.iter().map(|(&id, &slot)| (id, slot)).collect();
        for (id, slot) in live {
            let (seg, within, _) = self.locate(slot);
            let crc = self.segments[seg].crcs[within];
            report.checked += 1;
            if !plane.bound(seg, within, crc) {
                let vector = self.checked_vector(id, slot)?;
                plane.write(seg, within, vector, crc);
                report.reencoded += 1;
            }
        }
        self.codes = Some(plane);
        Ok(report)
    }

    /// Detaches the code plane (if any), drops a staged one, and removes every code file in
    /// the directory.
    pub fn detach_codes(&mut self) -> Result<()> {
        self.codes = None;
        self.staged = None;
        self.remove_code_files(|_, _| true)
    }

    /// The attached plane's generation and code length.
    pub fn code_spec(&self) -> Option<CodeSpec> {
        self.codes.as_ref().map(|plane| plane.spec)
    }

    /// The code of the live vector in `slot`, straight from the map; `None` without an
    /// attached plane or for a slot that is not live.
    #[inline]
    pub fn code_at(&self, slot: u64) -> Option<&[u8]> {
        let plane = self.codes.as_ref()?;
        let (seg, within, _) = self.locate(slot);
        if !self.segments.get(seg)?.is_live(within) {
            return None;
        }
        let bytes = plane
            .segments
            .get(seg)?
            .bytes(plane.offset(within), plane.spec.code_len as usize);
        Some(bytes)
    }

    /// Bytes of the attached plane's files (0 without one).
    pub fn code_bytes(&self) -> u64 {
        self.codes.as_ref().map_or(0, |plane| {
            plane.segments.iter().map(Segment::file_len_bytes).sum()
        })
    }

    /// Checks every live code: its binding to the vector in its slot, and its bytes
    /// against a fresh encoding of that vector (so a code damaged after it was checked, or
    /// an encoder that changed without a new generation, is found too).
    pub fn verify_codes(&self) -> Result<Vec<CodeFault>> {
        let Some(plane) = &self.codes else {
            return Ok(Vec::new());
        };
        let len = plane.spec.code_len as usize;
        let mut fresh = vec![0u8; len];
        let mut faults = Vec::new();
        let mut live: Vec<(u64, u64)> = self.ids.iter().map(|(&id, &slot)| (id, slot)).collect();
        live.sort_unstable_by_key(|&(_, slot)| slot);
        for (id, slot) in live {
            let (seg, within, _) = self.locate(slot);
            let fault = |reason: String| CodeFault {
                id,
                path: plane.segments[seg].path.clone(),
                offset: plane.offset(within) as u64,
                reason,
            };
            if !plane.bound(seg, within, self.segments[seg].crcs[within]) {
                faults.push(fault(
                    "its binding does not match the vector in its slot".into(),
                ));
                continue;
            }
            let vector = self.checked_vector(id, slot)?;
            fresh.fill(0);
            (plane.encode)(vector, &mut fresh);
            let stored = plane.segments[seg].bytes(plane.offset(within), len);
            if stored != fresh.as_slice() {
                faults.push(fault(
                    "its bytes differ from a fresh encoding of the vector".into(),
                ));
            }
        }
        Ok(faults)
    }

    /// Writes the code of `vector` (just written to `slot` with CRC `crc`), when a plane is
    /// attached, growing the plane's file to the slot.
    pub(crate) fn write_code(&mut self, slot: u64, vector: &[f32], crc: u32) -> Result<()> {
        let (seg, within, _) = self.locate(slot);
        if let Some(mut plane) = self.codes.take() {
            let result = self.ensure_code_slot(&mut plane, seg, within);
            if result.is_ok() {
                plane.write(seg, within, vector, crc);
            }
            self.codes = Some(plane);
            result?;
        }
        if let Some(mut staged) = self.staged.take() {
            let result = self.ensure_code_slot(&mut staged.plane, seg, within);
            if result.is_ok() {
                staged.plane.write(seg, within, vector, crc);
            }
            self.staged = Some(staged);
            result?;
        }
        Ok(())
    }

    /// Grows the plane to hold slot `within` of segment `seg`: missing segments created,
    /// the segment's file extended to its vector segment's capacity.
    fn ensure_code_slot(&self, plane: &mut CodePlane, seg: usize, within: usize) -> Result<()> {
        while plane.segments.len() <= seg {
            let index = plane.segments.len() as u32;
            let segment = self.open_or_create_code_segment(plane, index)?;
            plane.segments.push(segment);
            self.fs.sync_dir(&self.dir)?;
        }
        let target = self.segments[seg].capacity();
        let segment = &mut plane.segments[seg];
        if within >= segment.capacity() {
            self.failstop.run(|| segment.extend_to(target))?;
        }
        Ok(())
    }

    /// The plane's code file for segment `index`, opened if it is whole and of this
    /// plane's geometry, else created anew, at the capacity of the vector segment.
    fn open_or_create_code_segment(&self, plane: &CodePlane, index: u32) -> Result<Segment> {
        let path = self.dir.join(code_file_name(plane.spec.generation, index));
        let header = plane.header(self.config.slots_per_segment, index);
        let slots = self.segments[index as usize].capacity() as u32;
        let len = header.len_for_slots(slots);
        self.failstop
            .run(|| {
                if let Ok(file) = self.fs.open(&path) {
                    let mut page = vec![0u8; HEADER_BYTES];
                    let found = file.len()?;
                    if found >= HEADER_BYTES as u64 {
                        file.read_at(&mut page, 0)?;
                    }
                    let fits = SegmentHeader::decode(&page).is_ok_and(|h| h == header)
                        && header.slots_in_file(found).is_some();
                    if fits {
                        let target = found.max(len);
                        if target > found {
                            file.allocate(target)?;
                        }
                        let map = file.map_mut(target as usize)?;
                        return Ok(Segment::new(
                            path.clone(),
                            file,
                            map,
                            self.config.slots_per_segment,
                            plane.slot_bytes,
                        ));
                    }
                }
                // Missing, torn or of another geometry: derived data, so made anew.
                let file = self.fs.create(&path)?;
                file.set_len(0)?;
                file.allocate(len)?;
                file.write_at(&header.encode(), 0)?;
                let map = file.map_mut(len as usize)?;
                Ok(Segment::new(
                    path.clone(),
                    file,
                    map,
                    self.config.slots_per_segment,
                    plane.slot_bytes,
                ))
            })
            .map_err(Error::from)
    }

    /// Removes the code files for which `doomed(generation, segment index)` holds.
    fn remove_code_files(&self, doomed: impl Fn(u64, u32) -> bool) -> Result<()> {
        for name in self.fs.list_dir(&self.dir)? {
            if let Some((generation, index)) = parse_code_file_name(&name)
                && doomed(generation, index)
            {
                self.fs.remove_file(&self.dir.join(&name))?;
            }
        }
        Ok(())
    }

    /// Drops the plane's segments from `keep` on with their files (the store reclaimed
    /// its segments past `keep`).
    pub(crate) fn truncate_codes(&mut self, keep: usize) -> vellum_fs::Result<()> {
        let staged = self.staged.as_mut().map(|s| &mut s.plane);
        for plane in self.codes.iter_mut().chain(staged) {
            while plane.segments.len() > keep {
                let segment = plane.segments.pop().expect("len > keep");
                let path = segment.path.clone();
                drop(segment);
                self.fs.remove_file(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_file_names_round_trip_and_nothing_else_parses() {
        let name = code_file_name(0xabc, 7);
        assert_eq!(name, "codes-0000000000000abc-00000007.vqc");
        assert_eq!(parse_code_file_name(&name), Some((0xabc, 7)));
        for other in [
            "segment-00000007.vec",
            "codes-abc-00000007.vqc",
            "codes-0000000000000abc-0000007.vqc",
            "codes-0000000000000abc-00000007.vec",
            "codes-000000000000zabc-00000007.vqc",
        ] {
            assert_eq!(parse_code_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_binding_changes_with_the_code_and_the_vector() {
        let base = binding(&[1, 2, 3], 7);
        assert_ne!(base, binding(&[1, 2, 4], 7));
        assert_ne!(base, binding(&[1, 2, 3], 8));
    }
}
