//! Sending a snapshot: its manifest and, for each archive it names, the archive cut into
//! `vellum-snapshot-format` chunks the receiver can take in any order ([`crate::SnapshotInbox`]
//! on the other side, or the in-process router's receivers).

use vellum_snapshot_format::{Chunk, FinalTotals, SnapshotId};

use crate::error::Result;
use crate::state_machine::{MANIFEST_FILE, Manifest, read_all};
use crate::types::SnapshotFiles;

/// One archive of a snapshot being sent, read chunk by chunk from the sender's files.
pub struct OutgoingArchive {
    /// Its file name in the snapshot directory.
    pub file: String,
    source: Box<dyn vellum_fs::File>,
    id: SnapshotId,
    total_bytes: u64,
    chunk_bytes: u64,
    hash: [u8; 32],
}

impl std::fmt::Debug for OutgoingArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingArchive")
            .field("file", &self.file)
            .field("total_bytes", &self.total_bytes)
            .finish()
    }
}

impl OutgoingArchive {
    /// Chunks it is cut into (at least one).
    pub fn chunk_count(&self) -> u64 {
        self.total_bytes.div_ceil(self.chunk_bytes).max(1)
    }

    /// Its length in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Chunk `seq` (the last one carries the totals the receiver checks the whole against).
    pub fn chunk(&self, seq: u64) -> Result<Chunk> {
        let chunks = self.chunk_count();
        let offset = seq.saturating_mul(self.chunk_bytes).min(self.total_bytes);
        let n = (self.total_bytes - offset).min(self.chunk_bytes) as usize;
        let mut payload = vec![0u8; n];
        self.source.read_at(&mut payload, offset)?;
        Ok(Chunk {
            snapshot: self.id,
            seq,
            offset,
            final_totals: (seq + 1 == chunks).then_some(FinalTotals {
                total_bytes: self.total_bytes,
                total_chunks: chunks,
                archive_hash: self.hash,
            }),
            payload,
        })
    }
}

/// The manifest (its bytes, sent last) and the archives of the snapshot in `files`, cut
/// into chunks of `chunk_bytes`.
pub fn outgoing(
    files: &SnapshotFiles,
    chunk_bytes: usize,
) -> Result<(Vec<u8>, Manifest, Vec<OutgoingArchive>)> {
    let fs = files.fs.as_ref();
    let manifest = Manifest::load(fs, &files.dir)?;
    let json = read_all(fs, &files.dir.join(MANIFEST_FILE))?;
    let mut archives = Vec::with_capacity(manifest.collections.len());
    for c in &manifest.collections {
        let source = fs.open(&files.dir.join(&c.file))?;
        let (header, trailer, _) = vellum_snapshot_format::read_summary(source.as_ref())?;
        archives.push(OutgoingArchive {
            file: c.file.clone(),
            source,
            id: header.id,
            total_bytes: trailer.archive_bytes,
            chunk_bytes: chunk_bytes.max(1) as u64,
            hash: trailer.hash,
        });
    }
    Ok((json, manifest, archives))
}
