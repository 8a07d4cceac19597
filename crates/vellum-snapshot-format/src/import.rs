//! Import: receive chunks in any order into a staging area, resumably, and publish the
//! archive only after every check passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vellum_fs::{DynFs, FailStop, File};

use crate::chunk::{Chunk, FinalTotals, MAX_CHUNK_PAYLOAD_BYTES};
use crate::error::{Error, Result};
use crate::format::{array_at, crc32, put_u32, put_u64, u32_at, u64_at};
use crate::id::{SnapshotId, hex};
use crate::reader::{ArchiveInfo, FileSource, NullSink, decode_archive, read_summary};

/// Name of the partial archive inside the staging directory.
pub const PART_FILE: &str = "archive.part";
/// Name of the durable record of received chunks.
pub const LOG_FILE: &str = "received.log";
/// Bytes of one log record.
pub const LOG_RECORD_BYTES: usize = 104;
const _: () = assert!(LOG_RECORD_BYTES == 8 + 8 + 4 + 4 + 4 + 4 + 8 + 8 + 32 + 16 + 4 + 4);

/// Import limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Largest archive accepted; chunks reaching past it are refused before anything is
    /// written (so a hostile offset cannot make a huge sparse file).
    pub max_archive_bytes: u64,
    /// Received bytes written between two syncs: once this many are pending, `receive`
    /// syncs the part file and appends their records to the log (and says
    /// [`Receipt::Durable`]). `0` syncs after every chunk. [`ChunkReceiver::sync`] and
    /// `finish` sync whatever is pending.
    pub sync_every_bytes: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            max_archive_bytes: 1 << 40,
            sync_every_bytes: 64 << 20,
        }
    }
}

/// What happened to a chunk handed to [`ChunkReceiver::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// New data, written; this chunk and every chunk accepted before it are now durable
    /// (they survive a crash and are not asked for again after a reopen).
    Durable,
    /// New data, written but not yet durable: it becomes durable at the next sync (a later
    /// [`Receipt::Durable`], [`ChunkReceiver::sync`] or `finish`). A crash before that loses
    /// it, and after a reopen it must be sent again.
    Pending,
    /// The same chunk was already received; nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Received {
    seq: u64,
    offset: u64,
    len: u32,
    crc: u32,
    final_totals: Option<FinalTotals>,
}

impl Received {
    fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }

    fn encode(&self, snapshot: SnapshotId) -> [u8; LOG_RECORD_BYTES] {
        let mut b = [0u8; LOG_RECORD_BYTES];
        put_u64(&mut b, 0, self.seq);
        put_u64(&mut b, 8, self.offset);
        put_u32(&mut b, 16, self.len);
        put_u32(&mut b, 20, self.crc);
        if let Some(t) = &self.final_totals {
            put_u32(&mut b, 24, 1);
            put_u64(&mut b, 32, t.total_bytes);
            put_u64(&mut b, 40, t.total_chunks);
            b[48..80].copy_from_slice(&t.archive_hash);
        }
        b[80..96].copy_from_slice(&snapshot.0);
        let crc = crc32(&[&b[..96]]);
        put_u32(&mut b, 96, crc);
        b
    }

    fn decode(b: &[u8]) -> Option<(Received, SnapshotId)> {
        if b.len() != LOG_RECORD_BYTES || crc32(&[&b[..96]]) != u32_at(b, 96) {
            return None;
        }
        let flags = u32_at(b, 24);
        if flags > 1 || u32_at(b, 28) != 0 || u32_at(b, 100) != 0 {
            return None;
        }
        let rec = Received {
            seq: u64_at(b, 0),
            offset: u64_at(b, 8),
            len: u32_at(b, 16),
            crc: u32_at(b, 20),
            final_totals: (flags == 1).then(|| FinalTotals {
                total_bytes: u64_at(b, 32),
                total_chunks: u64_at(b, 40),
                archive_hash: array_at(b, 48),
            }),
        };
        Some((rec, SnapshotId(array_at(b, 80))))
    }
}

/// Receives the chunks of one archive into a staging directory.
///
/// Chunks may come in any order, repeated, across restarts: [`ChunkReceiver::open`] on the
/// same staging directory resumes from what was durably received. Nothing leaves the
/// staging directory until [`ChunkReceiver::finish`] has verified the whole archive.
pub struct ChunkReceiver {
    fs: DynFs,
    staging: PathBuf,
    opts: ImportOptions,
    part: Box<dyn File>,
    log: Box<dyn File>,
    log_len: u64,
    snapshot: Option<SnapshotId>,
    by_offset: BTreeMap<u64, Received>,
    by_seq: BTreeMap<u64, u64>,
    totals: Option<FinalTotals>,
    /// Accepted chunks whose bytes are written but not yet synced and logged.
    pending: Vec<Received>,
    pending_bytes: u64,
    /// Verifies the archive on a second thread while chunks arrive in order (an
    /// optimisation: if chunks come out of order or after a reopen, `finish` verifies the
    /// part file in one pass instead).
    verifier: Option<crate::verify_stream::StreamVerifier>,
    failstop: FailStop,
}

impl std::fmt::Debug for ChunkReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReceiver")
            .field("staging", &self.staging)
            .field("snapshot", &self.snapshot)
            .field("chunks", &self.by_offset.len())
            .field("totals", &self.totals)
            .finish()
    }
}

impl ChunkReceiver {
    /// Opens (creating if needed) the staging directory and resumes from its log. Log
    /// records after the first damaged one are dropped (a torn tail), and every logged
    /// chunk's bytes are re-checked against its CRC; chunks that fail must be resent.
    pub fn open(fs: DynFs, staging: &Path, opts: ImportOptions) -> Result<Self> {
        vellum_fs::create_dir_all_durable(fs.as_ref(), staging)?;
        let part_path = staging.join(PART_FILE);
        let log_path = staging.join(LOG_FILE);
        let part_exists = fs.exists(&part_path)?;
        let log_exists = fs.exists(&log_path)?;
        let mut records = Vec::new();
        let mut snapshot = None;
        let mut rewrite_log;
        if part_exists && log_exists {
            let log = fs.open(&log_path)?;
            let len = log.len()?;
            let whole = len - len % LOG_RECORD_BYTES as u64;
            rewrite_log = whole != len;
            let mut buf = vec![0u8; LOG_RECORD_BYTES];
            let part = fs.open(&part_path)?;
            let part_len = part.len()?;
            let mut at = 0;
            while at < whole {
                log.read_at(&mut buf, at)?;
                at += LOG_RECORD_BYTES as u64;
                let Some((rec, id)) = Received::decode(&buf) else {
                    rewrite_log = true;
                    break;
                };
                if snapshot.is_some_and(|s| s != id) {
                    rewrite_log = true;
                    break;
                }
                snapshot = Some(id);
                // Re-check the bytes this record vouches for.
                let ok = rec.end() <= part_len && {
                    let mut data = vec![0u8; rec.len as usize];
                    part.read_at(&mut data, rec.offset)?;
                    crc32(&[&data]) == rec.crc
                };
                if ok {
                    records.push(rec);
                } else {
                    rewrite_log = true;
                }
            }
        } else {
            // A fresh start (or the previous import was published and only its log is left).
            // The empty part file needs no data sync; its name is made durable below.
            fs.create(&part_path)?;
            rewrite_log = true;
        }
        if rewrite_log {
            let mut bytes = Vec::with_capacity(records.len() * LOG_RECORD_BYTES);
            if let Some(id) = snapshot {
                for r in &records {
                    bytes.extend_from_slice(&r.encode(id));
                }
            }
            // This also syncs the staging directory, making a new part file's name durable.
            vellum_fs::atomic_replace(fs.as_ref(), &log_path, &bytes)?;
        }
        let part = fs.open(&part_path)?;
        // Bytes past the last logged chunk were written by a chunk whose record never became
        // durable: cut them off (durably), so `finish` sees exactly what the log vouches for.
        let logged_end = records.iter().map(Received::end).max().unwrap_or(0);
        if part.len()? > logged_end {
            part.set_len(logged_end)?;
            part.sync_data()?;
        }
        let log = fs.open(&log_path)?;
        let log_len = log.len()?;
        let mut me = ChunkReceiver {
            fs,
            staging: staging.to_path_buf(),
            opts,
            part,
            log,
            log_len,
            snapshot: if records.is_empty() { None } else { snapshot },
            by_offset: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            totals: None,
            pending: Vec::new(),
            pending_bytes: 0,
            verifier: None,
            failstop: FailStop::new(),
        };
        for rec in records {
            // Records were checked when first accepted; a log that contradicts itself is
            // damaged beyond a torn tail.
            me.check(&rec)?;
            me.insert(rec);
        }
        if me.by_offset.is_empty() {
            me.verifier = Some(crate::verify_stream::StreamVerifier::start());
        }
        Ok(me)
    }

    /// The staging directory.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Number of distinct chunks received.
    pub fn received_chunks(&self) -> usize {
        self.by_offset.len()
    }

    /// The final totals, once the final chunk has been received.
    pub fn final_totals(&self) -> Option<FinalTotals> {
        self.totals
    }

    /// Sequence numbers not yet received (known only after the final chunk; capped at
    /// `limit` entries).
    pub fn missing_seqs(&self, limit: usize) -> Vec<u64> {
        match self.totals {
            None => Vec::new(),
            Some(t) => (0..t.total_chunks)
                .filter(|s| !self.by_seq.contains_key(s))
                .take(limit)
                .collect(),
        }
    }

    fn insert(&mut self, rec: Received) {
        if let Some(t) = rec.final_totals {
            self.totals = Some(t);
        }
        self.by_seq.insert(rec.seq, rec.offset);
        self.by_offset.insert(rec.offset, rec);
    }

    /// Checks a record against everything received; `Ok(true)` for an exact duplicate.
    fn check(&self, rec: &Received) -> Result<bool> {
        let conflict = |reason: String| Error::ChunkConflict {
            seq: rec.seq,
            offset: rec.offset,
            len: u64::from(rec.len),
            reason,
        };
        let end = rec.offset.checked_add(u64::from(rec.len));
        let limit = self
            .totals
            .map_or(self.opts.max_archive_bytes, |t| t.total_bytes);
        match end {
            Some(end) if end <= limit.min(self.opts.max_archive_bytes) => {}
            _ => {
                return Err(Error::ChunkOutOfRange {
                    seq: rec.seq,
                    offset: rec.offset,
                    end: end.unwrap_or(u64::MAX),
                    limit: limit.min(self.opts.max_archive_bytes),
                });
            }
        }
        let end = rec.end();
        if let Some(t) = &rec.final_totals {
            if t.total_chunks == 0 || rec.seq != t.total_chunks - 1 || end != t.total_bytes {
                return Err(conflict(format!(
                    "a final chunk must be the last: seq {} of {} chunks, ends at {end} of {}",
                    rec.seq, t.total_chunks, t.total_bytes
                )));
            }
            if let Some(known) = &self.totals
                && known != t
            {
                return Err(conflict(
                    "two final chunks disagree about the totals".into(),
                ));
            }
            if let Some((_, last)) = self.by_offset.iter().next_back()
                && last.end() > t.total_bytes
                && last.offset != rec.offset
            {
                return Err(conflict(format!(
                    "chunk {} already received ends at {}, past the final total {}",
                    last.seq,
                    last.end(),
                    t.total_bytes
                )));
            }
            if let Some((&max_seq, _)) = self.by_seq.iter().next_back()
                && max_seq >= t.total_chunks
            {
                return Err(conflict(format!(
                    "chunk {max_seq} already received, but the final chunk says there are {}",
                    t.total_chunks
                )));
            }
        } else if let Some(t) = &self.totals
            && rec.seq >= t.total_chunks
        {
            return Err(conflict(format!(
                "sequence number beyond the final chunk's count {}",
                t.total_chunks
            )));
        }
        if let Some(&offset) = self.by_seq.get(&rec.seq) {
            let known = &self.by_offset[&offset];
            if known == rec {
                return Ok(true);
            }
            return Err(conflict(format!(
                "sequence number already received with other content (offset {}, {} bytes)",
                known.offset, known.len
            )));
        }
        if let Some((_, before)) = self.by_offset.range(..=rec.offset).next_back()
            && before.end() > rec.offset
        {
            return Err(conflict(format!(
                "overlaps chunk {} at {}..{}",
                before.seq,
                before.offset,
                before.end()
            )));
        }
        if let Some((_, after)) = self.by_offset.range(rec.offset..).next()
            && after.offset < end
        {
            return Err(conflict(format!(
                "overlaps chunk {} at {}..{}",
                after.seq,
                after.offset,
                after.end()
            )));
        }
        if rec.seq == 0 && rec.offset != 0 {
            return Err(conflict("chunk 0 must start at offset 0".into()));
        }
        Ok(false)
    }

    /// Accepts one chunk: validates it against everything received, writes its payload at
    /// its offset, syncs, and records it durably in the log. A refused chunk changes nothing.
    /// After an I/O error the receiver refuses further work (reopen to resume).
    pub fn receive(&mut self, chunk: &Chunk) -> Result<Receipt> {
        self.failstop.check()?;
        let len = chunk.payload.len();
        if len == 0 || len > MAX_CHUNK_PAYLOAD_BYTES as usize {
            return Err(Error::BadChunk {
                seq: chunk.seq,
                offset: chunk.offset,
                reason: format!("payload of {len} bytes outside 1..=64 MiB"),
            });
        }
        if chunk.snapshot.is_none() {
            return Err(Error::BadChunk {
                seq: chunk.seq,
                offset: chunk.offset,
                reason: "snapshot id is zero".into(),
            });
        }
        if let Some(expected) = self.snapshot
            && expected != chunk.snapshot
        {
            return Err(Error::WrongSnapshot {
                seq: chunk.seq,
                expected,
                found: chunk.snapshot,
            });
        }
        let rec = Received {
            seq: chunk.seq,
            offset: chunk.offset,
            len: len as u32,
            crc: crc32(&[&chunk.payload]),
            final_totals: chunk.final_totals,
        };
        if self.check(&rec)? {
            // Same header and CRC: make sure the bytes are the same too.
            let mut on_disk = vec![0u8; len];
            self.failstop
                .guard(self.part.read_at(&mut on_disk, rec.offset))?;
            if on_disk != chunk.payload {
                return Err(Error::ChunkConflict {
                    seq: rec.seq,
                    offset: rec.offset,
                    len: len as u64,
                    reason: "same sequence number and CRC, different bytes".into(),
                });
            }
            return Ok(Receipt::Duplicate);
        }
        let snapshot = chunk.snapshot;
        let part = &self.part;
        self.failstop
            .guard(part.write_at(&chunk.payload, rec.offset))?;
        self.snapshot = Some(snapshot);
        self.insert(rec);
        self.pending.push(rec);
        self.pending_bytes += len as u64;
        // Feed the background verifier while the stream is in order; otherwise drop it.
        if let Some(v) = self.verifier.as_mut()
            && !v.feed(rec.offset, &chunk.payload)
        {
            self.verifier = None;
        }
        if self.pending_bytes >= self.opts.sync_every_bytes {
            self.sync()?;
            return Ok(Receipt::Durable);
        }
        Ok(Receipt::Pending)
    }

    /// Makes every accepted chunk durable: syncs the part file, then appends their records
    /// to the log and syncs it (a logged chunk's bytes are always durable).
    pub fn sync(&mut self) -> Result<()> {
        self.failstop.check()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(snapshot) = self.snapshot else {
            return Ok(());
        };
        let mut records = Vec::with_capacity(self.pending.len() * LOG_RECORD_BYTES);
        for rec in &self.pending {
            records.extend_from_slice(&rec.encode(snapshot));
        }
        let fs = self.fs.clone();
        let part = &self.part;
        let log = &self.log;
        let log_len = self.log_len;
        self.failstop.run(|| {
            part.sync_data()?;
            fs.fail_point(crate::fail_points::IMPORT_AFTER_PAYLOAD_SYNC)?;
            log.write_at(&records, log_len)?;
            log.sync_data()
        })?;
        self.log_len += records.len() as u64;
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Checks that every chunk arrived, verifies the whole archive (every block CRC, the
    /// section totals, the footer, the BLAKE3 equal to the final chunk's), and only then
    /// renames it to `dest` and syncs `dest`'s directory; finally removes the staging
    /// directory. On any error nothing is published and the staging area stays for a retry.
    pub fn finish(mut self, dest: &Path) -> Result<ArchiveInfo> {
        self.sync()?;
        let incomplete = |reason: String| Error::Incomplete {
            staging: self.staging.clone(),
            reason,
        };
        let Some(totals) = self.totals else {
            return Err(incomplete("the final chunk has not been received".into()));
        };
        let mut cursor = 0u64;
        for rec in self.by_offset.values() {
            if rec.offset != cursor {
                return Err(incomplete(format!(
                    "bytes {cursor}..{} have not been received",
                    rec.offset
                )));
            }
            cursor = rec.end();
        }
        if cursor != totals.total_bytes {
            return Err(incomplete(format!(
                "bytes {cursor}..{} have not been received",
                totals.total_bytes
            )));
        }
        if self.by_seq.len() as u64 != totals.total_chunks {
            return Err(Error::TotalsMismatch {
                what: "chunk count".into(),
                recorded: totals.total_chunks,
                found: self.by_seq.len() as u64,
            });
        }
        let part_len = self.part.len()?;
        if part_len != totals.total_bytes {
            return Err(Error::TotalsMismatch {
                what: format!("length of {}", self.staging.join(PART_FILE).display()),
                recorded: totals.total_bytes,
                found: part_len,
            });
        }
        let (_, _, footer) = read_summary(self.part.as_ref())?;
        // The bytes verified on the fly are the ones written to the part file; if the
        // stream was not verified that way (out of order, resumed), verify the file now.
        let streamed = match self.verifier.take() {
            Some(v) if v.fed_bytes() == totals.total_bytes => v.finish(),
            _ => None,
        };
        let info = match streamed {
            Some(result) => {
                let info = result?;
                if info.footer != footer {
                    return Err(Error::corrupt(
                        info.archive_bytes,
                        "the footer on disk differs from the one verified while receiving",
                    ));
                }
                info
            }
            None => {
                let mut src = FileSource::new(self.part.as_ref())?;
                decode_archive(&mut src, Some(&footer), &mut NullSink)?
            }
        };
        if info.archive_hash != totals.archive_hash {
            return Err(Error::HashMismatch {
                what: "archive vs final chunk".into(),
                expected: hex(&totals.archive_hash),
                actual: hex(&info.archive_hash),
            });
        }
        if Some(info.header.id) != self.snapshot {
            return Err(Error::WrongSnapshot {
                seq: 0,
                expected: self.snapshot.unwrap_or(SnapshotId::NONE),
                found: info.header.id,
            });
        }
        let fs = self.fs.as_ref();
        let from = self.staging.join(PART_FILE);
        // (The part file was synced by `sync` above: its bytes are durable before the rename.)
        fs.fail_point(crate::fail_points::IMPORT_BEFORE_PUBLISH)?;
        // The part file's bytes were synced chunk by chunk.
        crate::restore::rename_same_fs(fs, &from, dest)?;
        // One sync makes the rename durable (it names both directories' entries).
        fs.sync_dir(vellum_fs::parent_dir(dest))?;
        drop(self.part);
        drop(self.log);
        // The staging directory goes as a whole: its entries need no sync of their own.
        fs.remove_file(&self.staging.join(LOG_FILE))?;
        fs.remove_dir(&self.staging)?;
        fs.sync_dir(vellum_fs::parent_dir(&self.staging))?;
        Ok(info)
    }

    /// Gives up: removes the staging directory and everything in it.
    pub fn abort(self) -> Result<()> {
        let fs = self.fs.clone();
        let staging = self.staging.clone();
        drop(self);
        crate::restore::remove_tree(fs.as_ref(), &staging)?;
        fs.sync_dir(vellum_fs::parent_dir(&staging))?;
        Ok(())
    }
}
