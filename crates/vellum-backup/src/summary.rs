//! What a backup's archive says about itself, read by ranges from the store (its header,
//! trailer and footer: a few kilobytes, never the archive), and the chain of backups a
//! restore needs.

use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt as _};
use vellum_snapshot_format::format::{HEADER_BYTES, TRAILER_BYTES, Trailer};
use vellum_snapshot_format::{ArchiveHeader, Footer, ParentState, read_summary_with};

use crate::catalog::{BackupEntry, Catalog};
use crate::error::{Error, Result, store};
use crate::target::BackupTarget;

/// An archive object as it is in the store now, checked against its catalog entry.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveObject {
    /// The catalog entry.
    pub entry: BackupEntry,
    /// The object.
    pub path: Path,
    /// The object's version when it was checked: every later read asks for exactly it.
    pub e_tag: Option<String>,
    /// The archive's header and footer.
    pub header: ArchiveHeader,
    pub footer: Footer,
}

impl ArchiveObject {
    /// What an incremental child of this backup needs.
    pub fn as_parent(&self) -> ParentState {
        ParentState {
            id: self.header.id,
            lsn_end: self.header.lsn_end,
            state: self.footer.state.clone(),
        }
    }
}

/// The catalog's BLAKE3 of `entry`'s archive.
pub(crate) fn catalog_hash(entry: &BackupEntry) -> Result<[u8; 32]> {
    let bad = || Error::Catalog {
        object: entry.object.clone(),
        reason: format!("blake3 {:?} is not 64 hex digits", entry.blake3),
    };
    if entry.blake3.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&entry.blake3[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

async fn get_range(
    target: &BackupTarget,
    path: &Path,
    e_tag: Option<&String>,
    range: std::ops::Range<u64>,
) -> Result<bytes::Bytes> {
    let got = target
        .store
        .get_opts(
            path,
            GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                if_match: e_tag.cloned(),
                ..GetOptions::default()
            },
        )
        .await
        .map_err(store(format!("reading {path} bytes {range:?}")))?;
    let bytes = got
        .bytes()
        .await
        .map_err(store(format!("reading {path} bytes {range:?}")))?;
    if bytes.len() as u64 != range.end - range.start {
        return Err(Error::Archive(vellum_snapshot_format::Error::Truncated {
            offset: range.start + bytes.len() as u64,
            wanted: range.end - range.start - bytes.len() as u64,
        }));
    }
    Ok(bytes)
}

/// Checks `entry`'s archive object in the store against the catalog (its length, and the
/// id and whole-archive BLAKE3 its own header and trailer record) and reads its footer.
/// A replaced or truncated object is refused here, before a restore writes anything.
pub(crate) async fn open_archive(
    target: &BackupTarget,
    entry: &BackupEntry,
) -> Result<ArchiveObject> {
    let recorded_hash = catalog_hash(entry)?;
    let path = target.path(&entry.object);
    let meta = target
        .store
        .head(&path)
        .await
        .map_err(store(format!("reading {path}")))?;
    let len = meta.size;
    let damaged = |reason: String| Error::Refused(format!("{path}: {reason}"));
    if len != entry.archive_bytes {
        return Err(damaged(format!(
            "the object has {len} bytes, the catalog says the archive has {}",
            entry.archive_bytes
        )));
    }
    let min = (HEADER_BYTES + TRAILER_BYTES) as u64;
    if len < min {
        return Err(damaged(format!("{len} bytes cannot hold an archive")));
    }
    let e_tag = meta.e_tag;
    let trailer_at = len - TRAILER_BYTES as u64;
    let tail = get_range(target, &path, e_tag.as_ref(), trailer_at..len).await?;
    let trailer = Trailer::decode(
        tail.as_ref().try_into().expect("exactly TRAILER_BYTES"),
        trailer_at,
    )?;
    // The footer and trailer in one read, the header in another; the summary reader asks
    // for nothing else.
    let footer_at = trailer.footer_offset.min(trailer_at);
    let footer_and_trailer = get_range(target, &path, e_tag.as_ref(), footer_at..len).await?;
    let head = get_range(target, &path, e_tag.as_ref(), 0..HEADER_BYTES as u64).await?;
    let (header, trailer, footer) = read_summary_with(len, &mut |buf, offset| {
        let end = offset + buf.len() as u64;
        let from = if end <= HEADER_BYTES as u64 {
            &head[offset as usize..end as usize]
        } else if offset >= footer_at && end <= len {
            &footer_and_trailer[(offset - footer_at) as usize..(end - footer_at) as usize]
        } else {
            return Err(vellum_snapshot_format::Error::Corrupt {
                offset,
                what: "the trailer points outside the footer".into(),
            });
        };
        buf.copy_from_slice(from);
        Ok(())
    })?;
    if header.id.to_hex() != entry.id {
        return Err(damaged(format!(
            "the archive is snapshot {}, the catalog says {}",
            header.id, entry.id
        )));
    }
    if trailer.hash != recorded_hash {
        return Err(damaged(format!(
            "the archive's BLAKE3 is not the {} the catalog recorded (a replaced object)",
            entry.blake3
        )));
    }
    let parent_named = header.parent.map(|p| p.to_hex());
    if parent_named != entry.parent {
        return Err(damaged(format!(
            "the archive's parent is {parent_named:?}, the catalog says {:?}",
            entry.parent
        )));
    }
    Ok(ArchiveObject {
        entry: entry.clone(),
        path,
        e_tag,
        header,
        footer,
    })
}

/// Backup `id` with its parents, the full backup first.
pub(crate) fn chain(
    catalog: &Catalog,
    id: &str,
    target: &BackupTarget,
) -> Result<Vec<BackupEntry>> {
    let mut chain = Vec::new();
    let mut next = Some(id.to_owned());
    while let Some(id) = next {
        let entry = catalog
            .backups
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::NotFound {
                id: id.clone(),
                target: target.to_string(),
            })?;
        if chain.len() > catalog.backups.len() {
            return Err(Error::Catalog {
                object: target.path(crate::catalog::CATALOG_OBJECT).to_string(),
                reason: format!("the parents of backup {id} form a cycle"),
            });
        }
        next = entry.parent.clone();
        chain.push(entry.clone());
    }
    chain.reverse();
    Ok(chain)
}
