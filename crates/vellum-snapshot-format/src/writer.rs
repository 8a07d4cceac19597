//! Export: the streaming archive writer, and exporting a generation as a file or as chunks.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vellum_fs::{File, Fs};

use crate::chunk::{
    Chunk, DEFAULT_CHUNK_BYTES, FinalTotals, MAX_CHUNK_PAYLOAD_BYTES, MIN_CHUNK_BYTES,
};
use crate::error::{Error, Result};
use crate::format::{
    ArchiveHeader, BLOCK_FRAME_BYTES, Compression, DEFAULT_BLOCK_BYTES, Footer, SectionEntry,
    SectionHead, SectionKind, SectionTotals, SnapshotKind, StateEntry, TRAILER_BYTES, Trailer,
    block_frame, check_names,
};
use crate::id::SnapshotId;

/// Where archive bytes go, in order.
pub trait ByteSink {
    /// Appends `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> Result<()>;
}

impl ByteSink for Vec<u8> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Writes archive bytes sequentially into a file through a buffer of large writes.
#[derive(Debug)]
pub struct FileSink<'f> {
    file: &'f dyn File,
    offset: u64,
    buf: Vec<u8>,
}

/// Bytes buffered before a file write.
const FILE_WRITE_BYTES: usize = 1 << 20;

impl<'f> FileSink<'f> {
    /// Writes from offset 0 of `file`.
    pub fn new(file: &'f dyn File) -> Self {
        FileSink {
            file,
            offset: 0,
            buf: Vec::with_capacity(FILE_WRITE_BYTES),
        }
    }

    /// Writes out what is buffered (does not sync).
    pub fn flush(&mut self) -> vellum_fs::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_at(&self.buf, self.offset)?;
            self.offset += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

impl ByteSink for FileSink<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > FILE_WRITE_BYTES {
            self.flush()?;
        }
        if bytes.len() >= FILE_WRITE_BYTES {
            self.file.write_at(bytes, self.offset)?;
            self.offset += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// The result of writing an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The header written.
    pub header: ArchiveHeader,
    /// The footer written.
    pub footer: Footer,
    /// Archive length.
    pub archive_bytes: u64,
    /// BLAKE3 of the archive.
    pub archive_hash: [u8; 32],
}

impl ExportSummary {
    /// What an incremental child needs to know about this snapshot.
    pub fn as_parent(&self) -> ParentState {
        ParentState {
            id: self.header.id,
            lsn_end: self.header.lsn_end,
            state: self.footer.state.clone(),
        }
    }
}

impl crate::reader::ArchiveInfo {
    /// What an incremental child needs to know about this snapshot.
    pub fn as_parent(&self) -> ParentState {
        ParentState {
            id: self.header.id,
            lsn_end: self.header.lsn_end,
            state: self.footer.state.clone(),
        }
    }
}

struct OpenSection {
    head: SectionHead,
    offset: u64,
    totals: SectionTotals,
    content: blake3::Hasher,
}

/// Writes an archive in one forward pass: header, sections (buffered into blocks, each
/// CRC'd and optionally zstd-compressed), footer, trailer with the BLAKE3 of everything.
pub struct ArchiveWriter<'s> {
    sink: &'s mut dyn ByteSink,
    header: ArchiveHeader,
    pos: u64,
    hasher: blake3::Hasher,
    sections: Vec<SectionEntry>,
    open: Option<OpenSection>,
    block: Vec<u8>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    compressed: Vec<u8>,
}

impl std::fmt::Debug for ArchiveWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("header", &self.header)
            .field("pos", &self.pos)
            .field("sections", &self.sections.len())
            .finish()
    }
}

impl<'s> ArchiveWriter<'s> {
    /// Starts an archive: validates and writes the header.
    pub fn new(sink: &'s mut dyn ByteSink, header: ArchiveHeader, zstd_level: i32) -> Result<Self> {
        header.validate().map_err(|e| Error::InvalidInput {
            reason: e.to_string(),
        })?;
        let compressor =
            zstd::bulk::Compressor::new(zstd_level).map_err(|e| Error::InvalidInput {
                reason: format!("zstd level {zstd_level}: {e}"),
            })?;
        let mut w = ArchiveWriter {
            sink,
            header,
            pos: 0,
            hasher: blake3::Hasher::new(),
            sections: Vec::new(),
            open: None,
            block: Vec::with_capacity(header.block_bytes as usize),
            compressor: Some(compressor),
            compressed: Vec::new(),
        };
        w.emit(&header.encode())?;
        Ok(w)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.pos += bytes.len() as u64;
        self.sink.write_all(bytes)
    }

    /// Starts a section. Names must be valid; uniqueness is checked at [`Self::finish`].
    pub fn begin_section(
        &mut self,
        kind: SectionKind,
        compression: Compression,
        name: &str,
    ) -> Result<()> {
        if self.open.is_some() {
            return Err(Error::InvalidInput {
                reason: "begin_section while a section is open".into(),
            });
        }
        crate::format::validate_name(name)?;
        // Sections are numbered in a u32 field.
        let index = u32::try_from(self.sections.len()).map_err(|_| {
            Error::limit(
                "archive sections",
                self.sections.len() as u64,
                u64::from(u32::MAX),
            )
        })?;
        let head = SectionHead {
            kind,
            compression: if kind == SectionKind::Removed {
                Compression::None
            } else {
                compression
            },
            index,
            name: name.to_owned(),
        };
        let offset = self.pos;
        self.emit(&head.encode())?;
        self.open = Some(OpenSection {
            head,
            offset,
            totals: SectionTotals::default(),
            content: blake3::Hasher::new(),
        });
        Ok(())
    }

    /// Appends raw bytes to the open file section.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        match &self.open {
            Some(s) if s.head.kind == SectionKind::File => {}
            _ => {
                return Err(Error::InvalidInput {
                    reason: "write outside an open file section".into(),
                });
            }
        }
        let block_bytes = self.header.block_bytes as usize;
        while !data.is_empty() {
            let n = (block_bytes - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.block.len() == block_bytes {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        // `write` fills a block to `header.block_bytes`, a u32, and no further.
        let raw_len = u32::try_from(self.block.len())
            .expect("a block holds at most header.block_bytes (a u32) bytes");
        let mut use_compressed = false;
        if open.head.compression == Compression::Zstd
            && let Some(c) = self.compressor.as_mut()
        {
            self.compressed.clear();
            self.compressed
                .reserve(zstd::zstd_safe::compress_bound(self.block.len()));
            c.compress_to_buffer(&self.block, &mut self.compressed)
                .map_err(|e| Error::InvalidInput {
                    reason: format!("zstd compression failed: {e}"),
                })?;
            use_compressed =
                !self.compressed.is_empty() && self.compressed.len() < self.block.len();
        }
        let stored: &[u8] = if use_compressed {
            &self.compressed
        } else {
            &self.block
        };
        let frame = block_frame(raw_len, stored);
        open.totals.raw_bytes += u64::from(raw_len);
        open.totals.stored_bytes += stored.len() as u64;
        open.totals.block_count += 1;
        // The frame, then the stored bytes go into the archive hash; the raw bytes into the
        // content hash, on another thread.
        self.hasher.update(&frame);
        crate::format::hash_both(&mut self.hasher, stored, &mut open.content, &self.block);
        self.pos += (frame.len() + stored.len()) as u64;
        self.sink.write_all(&frame)?;
        self.sink.write_all(stored)?;
        self.block.clear();
        Ok(())
    }

    /// Ends the open section: last block, end frame, trailer. Returns its entry.
    pub fn end_section(&mut self) -> Result<SectionEntry> {
        self.flush_block()?;
        let Some(mut open) = self.open.take() else {
            return Err(Error::InvalidInput {
                reason: "end_section without an open section".into(),
            });
        };
        open.totals.content_hash = *open.content.finalize().as_bytes();
        let end = block_frame(0, &[]);
        debug_assert_eq!(end.len(), BLOCK_FRAME_BYTES);
        self.emit(&end)?;
        self.emit(&open.totals.encode_trailer())?;
        let entry = SectionEntry {
            kind: open.head.kind,
            compression: open.head.compression,
            name: open.head.name,
            header_offset: open.offset,
            totals: open.totals,
        };
        self.sections.push(entry.clone());
        Ok(entry)
    }

    /// Writes the footer (with `state` and `metadata`) and the trailer.
    pub fn finish(
        mut self,
        mut state: Vec<StateEntry>,
        metadata: Vec<(String, Vec<u8>)>,
    ) -> Result<ExportSummary> {
        if self.open.is_some() {
            return Err(Error::InvalidInput {
                reason: "finish with a section still open".into(),
            });
        }
        state.sort();
        let footer = Footer {
            sections: std::mem::take(&mut self.sections),
            state,
            metadata,
        };
        footer.validate(self.pos)?;
        let footer_offset = self.pos;
        let bytes = footer.encode();
        self.emit(&bytes)?;
        let mut trailer = Trailer {
            footer_offset,
            footer_len: bytes.len() as u64,
            archive_bytes: self.pos + TRAILER_BYTES as u64,
            hash: [0; 32],
        };
        self.emit(&trailer.encode_hashed_part())?;
        trailer.hash = *self.hasher.finalize().as_bytes();
        self.sink.write_all(&trailer.hash)?;
        Ok(ExportSummary {
            header: self.header,
            footer,
            archive_bytes: trailer.archive_bytes,
            archive_hash: trailer.hash,
        })
    }
}

/// One file of the generation to export: its name inside the archive and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative name inside the archive (and under the restore target).
    pub name: String,
    /// Where to read it.
    pub path: PathBuf,
}

/// Lists every file under `dir` (recursively) as sources named by their relative path.
pub fn list_generation(fs: &dyn Fs, dir: &Path) -> Result<Vec<SourceFile>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        for name in fs.list_dir(&path)? {
            let child = path.join(&name);
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if fs.is_dir(&child)? {
                stack.push((child, rel));
            } else {
                out.push(SourceFile {
                    name: rel,
                    path: child,
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What an incremental export needs to know about its parent: id, last LSN and the state
/// table (from [`ExportSummary::as_parent`], [`crate::ArchiveInfo::as_parent`] or the
/// catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentState {
    /// The parent snapshot.
    pub id: SnapshotId,
    /// Its last LSN (the child's range starts here).
    pub lsn_end: u64,
    /// Its complete file set.
    pub state: Vec<StateEntry>,
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The new snapshot's id.
    pub id: SnapshotId,
    /// Last LSN the generation covers.
    pub lsn_end: u64,
    /// Creation time (ms since the epoch).
    pub created_unix_ms: u64,
    /// Raw bytes per checksummed block.
    pub block_bytes: u32,
    /// Storage of file sections.
    pub compression: Compression,
    /// zstd level when compressing.
    pub zstd_level: i32,
    /// `Some` for an incremental snapshot.
    pub parent: Option<ParentState>,
    /// Caller key/value metadata.
    pub metadata: Vec<(String, Vec<u8>)>,
}

impl ExportOptions {
    /// A full snapshot with default settings (creation time now).
    pub fn full(id: SnapshotId, lsn_end: u64) -> Self {
        ExportOptions {
            id,
            lsn_end,
            created_unix_ms: now_ms(),
            block_bytes: DEFAULT_BLOCK_BYTES,
            compression: Compression::None,
            zstd_level: 3,
            parent: None,
            metadata: Vec::new(),
        }
    }

    /// An incremental snapshot over `parent`.
    pub fn incremental(id: SnapshotId, lsn_end: u64, parent: ParentState) -> Self {
        ExportOptions {
            parent: Some(parent),
            ..ExportOptions::full(id, lsn_end)
        }
    }

    fn header(&self) -> ArchiveHeader {
        ArchiveHeader {
            kind: if self.parent.is_some() {
                SnapshotKind::Incremental
            } else {
                SnapshotKind::Full
            },
            block_bytes: self.block_bytes,
            id: self.id,
            parent: self.parent.as_ref().map(|p| p.id),
            lsn_start: self.parent.as_ref().map_or(0, |p| p.lsn_end),
            lsn_end: self.lsn_end,
            created_unix_ms: self.created_unix_ms,
        }
    }
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn hash_file(fs: &dyn Fs, path: &Path, buf: &mut [u8]) -> Result<(u64, [u8; 32])> {
    let file = fs.open(path)?;
    let len = file.len()?;
    let mut hasher = blake3::Hasher::new();
    let mut at = 0;
    while at < len {
        let n = usize::try_from(len - at).map_or(buf.len(), |rest| rest.min(buf.len()));
        file.read_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok((len, *hasher.finalize().as_bytes()))
}

/// Writes an archive of `files` to `sink`. The caller keeps the generation pinned (no file
/// changes or disappears) until this returns. For an incremental, only files whose length
/// or BLAKE3 differ from the parent's state (or that are new) are carried, plus a removed
/// section for each file of the parent's state that is gone.
pub fn export_archive(
    fs: &dyn Fs,
    files: &[SourceFile],
    opts: &ExportOptions,
    sink: &mut dyn ByteSink,
) -> Result<ExportSummary> {
    check_names(files.iter().map(|f| f.name.as_str()), "source file")?;
    let mut files: Vec<&SourceFile> = files.iter().collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let header = opts.header();
    let mut buf = vec![0u8; (header.block_bytes as usize).max(1 << 20)];

    // Decide what to carry before writing anything.
    let mut carry: Vec<&SourceFile> = Vec::new();
    let mut state: BTreeMap<String, StateEntry> = BTreeMap::new();
    let mut removed: Vec<String> = Vec::new();
    match &opts.parent {
        None => carry = files.clone(),
        Some(parent) => {
            let before: BTreeMap<&str, &StateEntry> =
                parent.state.iter().map(|e| (e.name.as_str(), e)).collect();
            for f in &files {
                let (len, hash) = hash_file(fs, &f.path, &mut buf)?;
                match before.get(f.name.as_str()) {
                    Some(e) if e.len == len && e.hash == hash => {
                        state.insert(f.name.clone(), (*e).clone());
                    }
                    _ => carry.push(f),
                }
            }
            let now: std::collections::BTreeSet<&str> =
                files.iter().map(|f| f.name.as_str()).collect();
            removed = parent
                .state
                .iter()
                .filter(|e| !now.contains(e.name.as_str()))
                .map(|e| e.name.clone())
                .collect();
        }
    }

    let mut w = ArchiveWriter::new(sink, header, opts.zstd_level)?;
    for f in carry {
        let file = fs.open(&f.path)?;
        let len = file.len()?;
        w.begin_section(SectionKind::File, opts.compression, &f.name)?;
        let mut at = 0;
        while at < len {
            let n = usize::try_from(len - at).map_or(buf.len(), |rest| rest.min(buf.len()));
            file.read_at(&mut buf[..n], at)?;
            w.write(&buf[..n])?;
            at += n as u64;
        }
        let entry = w.end_section()?;
        state.insert(
            f.name.clone(),
            StateEntry {
                name: f.name.clone(),
                len: entry.totals.raw_bytes,
                hash: entry.totals.content_hash,
            },
        );
    }
    for name in removed {
        w.begin_section(SectionKind::Removed, Compression::None, &name)?;
        w.end_section()?;
    }
    w.finish(state.into_values().collect(), opts.metadata.clone())
}

/// Exports into an archive file at `path`, atomically and durably (temporary file, sync,
/// rename, directory sync): after a crash `path` is absent/old or the complete archive.
pub fn export_to_file(
    fs: &dyn Fs,
    files: &[SourceFile],
    opts: &ExportOptions,
    path: &Path,
) -> Result<ExportSummary> {
    let mut outcome: Option<Result<ExportSummary>> = None;
    let replaced = vellum_fs::atomic_replace_with(fs, path, |file| {
        let mut sink = FileSink::new(file);
        let result = export_archive(fs, files, opts, &mut sink);
        match result {
            Ok(summary) => {
                sink.flush()?;
                outcome = Some(Ok(summary));
                Ok(())
            }
            Err(Error::Fs(e)) => Err(e),
            Err(other) => {
                outcome = Some(Err(other));
                Err(vellum_fs::Error::Contract {
                    path: path.to_path_buf(),
                    rule: "export failed; see the snapshot error",
                })
            }
        }
    });
    match (replaced, outcome) {
        (Ok(()), Some(Ok(summary))) => Ok(summary),
        (_, Some(Err(e))) => Err(e),
        (Err(e), _) => Err(Error::Fs(e)),
        (Ok(()), _) => Err(Error::InvalidInput {
            reason: "export produced no summary".into(),
        }),
    }
}

/// Cuts archive bytes into chunks. A chunk is emitted only once more bytes arrive after it,
/// so at the end there is always a non-empty remainder to become the final chunk.
struct ChunkingSink<'e> {
    snapshot: SnapshotId,
    chunk_bytes: usize,
    buf: Vec<u8>,
    seq: u64,
    offset: u64,
    emit: &'e mut dyn FnMut(Chunk) -> Result<()>,
}

impl ByteSink for ChunkingSink<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        while self.buf.len() > self.chunk_bytes {
            let rest = self.buf.split_off(self.chunk_bytes);
            let payload = std::mem::replace(&mut self.buf, rest);
            let len = payload.len() as u64;
            (self.emit)(Chunk {
                snapshot: self.snapshot,
                seq: self.seq,
                offset: self.offset,
                final_totals: None,
                payload,
            })?;
            self.seq += 1;
            self.offset += len;
        }
        Ok(())
    }
}

/// Exports `files` as a stream of chunks of `chunk_bytes` (4096 ..= 64 MiB; the last may be
/// shorter) handed to `emit` in order; the first carries the header, the last is final and
/// carries the archive length, the chunk count and the archive BLAKE3.
pub fn export_chunks(
    fs: &dyn Fs,
    files: &[SourceFile],
    opts: &ExportOptions,
    chunk_bytes: usize,
    emit: &mut dyn FnMut(Chunk) -> Result<()>,
) -> Result<ExportSummary> {
    if !(MIN_CHUNK_BYTES..=MAX_CHUNK_PAYLOAD_BYTES as usize).contains(&chunk_bytes) {
        return Err(Error::InvalidInput {
            reason: format!(
                "chunk size {chunk_bytes} outside {MIN_CHUNK_BYTES}..={MAX_CHUNK_PAYLOAD_BYTES}"
            ),
        });
    }
    let mut sink = ChunkingSink {
        snapshot: opts.id,
        chunk_bytes,
        buf: Vec::with_capacity(chunk_bytes * 2),
        seq: 0,
        offset: 0,
        emit,
    };
    let summary = export_archive(fs, files, opts, &mut sink)?;
    let payload = std::mem::take(&mut sink.buf);
    let totals = FinalTotals {
        total_bytes: summary.archive_bytes,
        total_chunks: sink.seq + 1,
        archive_hash: summary.archive_hash,
    };
    (sink.emit)(Chunk {
        snapshot: opts.id,
        seq: sink.seq,
        offset: sink.offset,
        final_totals: Some(totals),
        payload,
    })?;
    Ok(summary)
}

/// The default chunk size, for callers that have no preference.
pub const fn default_chunk_bytes() -> usize {
    DEFAULT_CHUNK_BYTES
}
