//! A catalog of snapshots in one directory: create, list (newest first), get, delete,
//! retention that keeps parents, and restore by id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use vellum_fs::{DynFs, Fs};

use crate::error::{Error, Result};
use crate::format::{
    SnapshotKind, array_at, crc32, put_u16, put_u32, put_u64, u16_at, u32_at, u64_at,
};
use crate::id::SnapshotId;
use crate::import::ChunkReceiver;
use crate::reader::ArchiveInfo;
use crate::restore::{RestoreReport, restore_chain};
use crate::writer::{ExportOptions, ExportSummary, ParentState, SourceFile, export_to_file};

/// Name of the catalog index.
pub const INDEX_FILE: &str = "catalog.idx";
/// Extension of archives in the catalog.
pub const ARCHIVE_EXT: &str = "vsnap";
const INDEX_MAGIC: [u8; 8] = *b"VSCATLOG";
const INDEX_VERSION: u16 = 1;
const INDEX_HEAD_BYTES: usize = 16;
/// Bytes of one index entry.
pub const INDEX_ENTRY_BYTES: usize = 16 + 16 + 1 + 7 + 8 + 8 + 8 + 8 + 32 + 8;
const _: () = assert!(INDEX_ENTRY_BYTES == 112);

/// What the catalog knows about a snapshot without opening its archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Its id.
    pub id: SnapshotId,
    /// Full or incremental.
    pub kind: SnapshotKind,
    /// Its parent (incremental only).
    pub parent: Option<SnapshotId>,
    /// First LSN covered (exclusive).
    pub lsn_start: u64,
    /// Last LSN covered.
    pub lsn_end: u64,
    /// Creation time, ms since the epoch.
    pub created_unix_ms: u64,
    /// Archive length.
    pub archive_bytes: u64,
    /// Archive BLAKE3.
    pub archive_hash: [u8; 32],
}

impl SnapshotMeta {
    fn from_info(info: &ArchiveInfo) -> Self {
        SnapshotMeta {
            id: info.header.id,
            kind: info.header.kind,
            parent: info.header.parent,
            lsn_start: info.header.lsn_start,
            lsn_end: info.header.lsn_end,
            created_unix_ms: info.header.created_unix_ms,
            archive_bytes: info.archive_bytes,
            archive_hash: info.archive_hash,
        }
    }

    fn from_summary(s: &ExportSummary) -> Self {
        SnapshotMeta {
            id: s.header.id,
            kind: s.header.kind,
            parent: s.header.parent,
            lsn_start: s.header.lsn_start,
            lsn_end: s.header.lsn_end,
            created_unix_ms: s.header.created_unix_ms,
            archive_bytes: s.archive_bytes,
            archive_hash: s.archive_hash,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut b = [0u8; INDEX_ENTRY_BYTES];
        b[0..16].copy_from_slice(&self.id.0);
        b[16..32].copy_from_slice(&self.parent.unwrap_or(SnapshotId::NONE).0);
        b[32] = self.kind.code();
        put_u64(&mut b, 40, self.lsn_start);
        put_u64(&mut b, 48, self.lsn_end);
        put_u64(&mut b, 56, self.created_unix_ms);
        put_u64(&mut b, 64, self.archive_bytes);
        b[72..104].copy_from_slice(&self.archive_hash);
        out.extend_from_slice(&b);
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let parent = SnapshotId(array_at(b, 16));
        let kind = SnapshotKind::from_code(b[32])?;
        if b[33..40].iter().any(|&x| x != 0) || b[104..112].iter().any(|&x| x != 0) {
            return None;
        }
        let id = SnapshotId(array_at(b, 0));
        if id.is_none() || (kind == SnapshotKind::Incremental) == parent.is_none() {
            return None;
        }
        Some(SnapshotMeta {
            id,
            kind,
            parent: (!parent.is_none()).then_some(parent),
            lsn_start: u64_at(b, 40),
            lsn_end: u64_at(b, 48),
            created_unix_ms: u64_at(b, 56),
            archive_bytes: u64_at(b, 64),
            archive_hash: array_at(b, 72),
        })
    }
}

/// A directory of snapshot archives with a durable index.
pub struct Catalog {
    fs: DynFs,
    dir: PathBuf,
    entries: BTreeMap<SnapshotId, SnapshotMeta>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("dir", &self.dir)
            .field("snapshots", &self.entries.len())
            .finish()
    }
}

impl Catalog {
    /// Opens (creating if needed) the catalog in `dir`. Archives the index does not name
    /// (left by a crash between writing an archive and publishing the index) and temporary
    /// files are removed.
    pub fn open(fs: DynFs, dir: &Path) -> Result<Self> {
        vellum_fs::create_dir_all_durable(fs.as_ref(), dir)?;
        let index_path = dir.join(INDEX_FILE);
        let entries = if fs.exists(&index_path)? {
            decode_index(&index_path, &read_all(fs.as_ref(), &index_path)?)?
        } else {
            BTreeMap::new()
        };
        let cat = Catalog {
            fs,
            dir: dir.to_path_buf(),
            entries,
        };
        let mut removed_any = false;
        for name in cat.fs.list_dir(dir)? {
            let keep = name == INDEX_FILE
                || name
                    .strip_suffix(&format!(".{ARCHIVE_EXT}"))
                    .and_then(SnapshotId::from_hex)
                    .is_some_and(|id| cat.entries.contains_key(&id));
            if !keep && !cat.fs.is_dir(&dir.join(&name))? {
                cat.fs.remove_file(&dir.join(&name))?;
                removed_any = true;
            }
        }
        if removed_any {
            cat.fs.sync_dir(dir)?;
        }
        for meta in cat.entries.values() {
            if !cat.fs.exists(&cat.archive_path(meta.id))? {
                return Err(Error::CatalogCorrupt {
                    path: index_path,
                    reason: format!("snapshot {} is indexed but its archive is missing", meta.id),
                });
            }
        }
        Ok(cat)
    }

    /// The catalog directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the archive of `id` lives.
    pub fn archive_path(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(format!("{}.{ARCHIVE_EXT}", id.to_hex()))
    }

    /// Every snapshot, newest first (creation time, then last LSN, then id).
    pub fn list(&self) -> Vec<SnapshotMeta> {
        let mut all: Vec<SnapshotMeta> = self.entries.values().cloned().collect();
        all.sort_by(|a, b| {
            (b.created_unix_ms, b.lsn_end, b.id).cmp(&(a.created_unix_ms, a.lsn_end, a.id))
        });
        all
    }

    /// The metadata of one snapshot.
    pub fn get(&self, id: SnapshotId) -> Result<&SnapshotMeta> {
        self.entries.get(&id).ok_or(Error::NotFound { id })
    }

    /// The chain from the full snapshot to `id`, full first.
    pub fn chain(&self, id: SnapshotId) -> Result<Vec<SnapshotMeta>> {
        let mut chain = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            let meta = self.get(c)?.clone();
            if chain.len() > self.entries.len() {
                return Err(Error::BrokenChain {
                    position: chain.len(),
                    id: c,
                    reason: "the parent links form a cycle".into(),
                });
            }
            cur = meta.parent;
            chain.push(meta);
        }
        chain.reverse();
        Ok(chain)
    }

    /// What an incremental child of `id` needs (reads the archive's footer).
    pub fn parent_state(&self, id: SnapshotId) -> Result<ParentState> {
        let file = self.fs.open(&self.archive_path(id))?;
        let (header, _, footer) = crate::reader::read_summary(file.as_ref())?;
        Ok(ParentState {
            id: header.id,
            lsn_end: header.lsn_end,
            state: footer.state,
        })
    }

    fn publish(&self, entries: &BTreeMap<SnapshotId, SnapshotMeta>) -> Result<()> {
        let bytes = encode_index(entries);
        vellum_fs::atomic_replace(self.fs.as_ref(), &self.dir.join(INDEX_FILE), &bytes)?;
        Ok(())
    }

    fn check_parent(&self, parent: Option<SnapshotId>) -> Result<()> {
        if let Some(p) = parent
            && !self.entries.contains_key(&p)
        {
            return Err(Error::NotFound { id: p });
        }
        Ok(())
    }

    /// Exports `files` into the catalog as a new snapshot (full, or incremental when
    /// `opts.parent` is set; the parent must be in the catalog).
    pub fn create(&mut self, files: &[SourceFile], opts: &ExportOptions) -> Result<SnapshotMeta> {
        self.check_parent(opts.parent.as_ref().map(|p| p.id))?;
        if self.entries.contains_key(&opts.id) {
            return Err(Error::InvalidInput {
                reason: format!("snapshot {} is already in the catalog", opts.id),
            });
        }
        let summary = export_to_file(self.fs.as_ref(), files, opts, &self.archive_path(opts.id))?;
        let meta = SnapshotMeta::from_summary(&summary);
        self.add(meta.clone())?;
        Ok(meta)
    }

    /// Finishes a chunk import straight into the catalog (verified before it is visible).
    pub fn import(&mut self, receiver: ChunkReceiver) -> Result<SnapshotMeta> {
        // The destination name depends on the id, known from the received chunks; publish
        // under a temporary name first, then rename once the header has been verified.
        let tmp = self.dir.join(format!("import.{ARCHIVE_EXT}.tmp"));
        let info = receiver.finish(&tmp)?;
        let meta = SnapshotMeta::from_info(&info);
        if self.entries.contains_key(&meta.id) {
            // Not durable on purpose: a temporary file left by a crash is removed at open.
            self.fs.remove_file(&tmp)?;
            return Err(Error::InvalidInput {
                reason: format!("snapshot {} is already in the catalog", meta.id),
            });
        }
        if let Err(e) = self.check_parent(meta.parent) {
            // Not durable on purpose: a temporary file left by a crash is removed at open.
            self.fs.remove_file(&tmp)?;
            return Err(e);
        }
        crate::restore::rename_same_fs(self.fs.as_ref(), &tmp, &self.archive_path(meta.id))?;
        // Publishing the index syncs this directory, which makes the rename durable too.
        self.add(meta.clone())?;
        Ok(meta)
    }

    fn add(&mut self, meta: SnapshotMeta) -> Result<()> {
        let mut next = self.entries.clone();
        next.insert(meta.id, meta);
        self.publish(&next)?;
        self.entries = next;
        Ok(())
    }

    /// Deletes a snapshot that no other snapshot names as parent.
    pub fn delete(&mut self, id: SnapshotId) -> Result<()> {
        self.get(id)?;
        if let Some(child) = self.entries.values().find(|m| m.parent == Some(id)) {
            return Err(Error::HasChildren {
                id,
                child: child.id,
            });
        }
        self.delete_many(&[id])
    }

    fn delete_many(&mut self, ids: &[SnapshotId]) -> Result<()> {
        let mut next = self.entries.clone();
        for id in ids {
            next.remove(id);
        }
        // Unpublish first: a crash after this leaves only unindexed files, removed at open.
        self.publish(&next)?;
        self.entries = next;
        for id in ids {
            self.fs.remove_file(&self.archive_path(*id))?;
        }
        self.fs.sync_dir(&self.dir)?;
        Ok(())
    }

    /// Keeps the `keep` newest snapshots and every ancestor of a kept one; deletes the rest.
    /// Returns the deleted ids.
    pub fn retain(&mut self, keep: usize) -> Result<Vec<SnapshotId>> {
        let mut kept = BTreeSet::new();
        for meta in self.list().into_iter().take(keep) {
            for m in self.chain(meta.id)? {
                kept.insert(m.id);
            }
        }
        let doomed: Vec<SnapshotId> = self
            .entries
            .keys()
            .filter(|id| !kept.contains(*id))
            .copied()
            .collect();
        if !doomed.is_empty() {
            self.delete_many(&doomed)?;
        }
        Ok(doomed)
    }

    /// Restores snapshot `id` (its whole chain) into `target` atomically.
    pub fn restore(&self, id: SnapshotId, target: &Path) -> Result<RestoreReport> {
        let chain: Vec<PathBuf> = self
            .chain(id)?
            .iter()
            .map(|m| self.archive_path(m.id))
            .collect();
        restore_chain(self.fs.as_ref(), &chain, target)
    }
}

fn read_all(fs: &dyn Fs, path: &Path) -> Result<Vec<u8>> {
    let file = fs.open(path)?;
    let len = file.len()?;
    let max = (INDEX_HEAD_BYTES + 4) as u64 + (u64::from(u32::MAX)) * INDEX_ENTRY_BYTES as u64;
    if len > max {
        return Err(Error::limit("catalog index bytes", len, max));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_at(&mut buf, 0)?;
    Ok(buf)
}

fn encode_index(entries: &BTreeMap<SnapshotId, SnapshotMeta>) -> Vec<u8> {
    let mut out = vec![0u8; INDEX_HEAD_BYTES];
    out[..8].copy_from_slice(&INDEX_MAGIC);
    put_u16(&mut out, 8, INDEX_VERSION);
    put_u32(&mut out, 12, entries.len() as u32);
    for meta in entries.values() {
        meta.encode(&mut out);
    }
    let crc = crc32(&[&out]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_index(path: &Path, b: &[u8]) -> Result<BTreeMap<SnapshotId, SnapshotMeta>> {
    let bad = |reason: &str| Error::CatalogCorrupt {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    if b.len() < INDEX_HEAD_BYTES + 4 || b[..8] != INDEX_MAGIC {
        return Err(bad("bad magic or too short"));
    }
    if u16_at(b, 8) != INDEX_VERSION {
        return Err(bad("unsupported version"));
    }
    let count = u32_at(b, 12) as usize;
    let body = b.len() - INDEX_HEAD_BYTES - 4;
    if !body.is_multiple_of(INDEX_ENTRY_BYTES) || body / INDEX_ENTRY_BYTES != count {
        return Err(bad("entry count does not match the length"));
    }
    if crc32(&[&b[..b.len() - 4]]) != u32_at(b, b.len() - 4) {
        return Err(bad("CRC mismatch"));
    }
    let mut entries = BTreeMap::new();
    for i in 0..count {
        let at = INDEX_HEAD_BYTES + i * INDEX_ENTRY_BYTES;
        let meta = SnapshotMeta::decode(&b[at..at + INDEX_ENTRY_BYTES])
            .ok_or_else(|| bad("invalid entry"))?;
        if entries.insert(meta.id, meta).is_some() {
            return Err(bad("duplicate id"));
        }
    }
    Ok(entries)
}
