//! Receiving a snapshot from another process, one chunk at a time (the server's transport;
//! docs/REPLICATION.md, "Snapshots").
//!
//! The sender streams each archive of the snapshot's manifest as `vellum-snapshot-format`
//! chunks (self-checked, placed by offset, any order, resumable), then the manifest. The
//! inbox writes each archive through a [`ChunkReceiver`] in the node's snapshot directory,
//! answers with the chunks still missing, and hands the finished directory to openraft's
//! install, which verifies every archive again before anything is replaced.
//!
//! Bounds: one archive is open at a time (a new one closes the previous; its staging log
//! lets it resume later). Names are checked: a snapshot id and a file name are single path
//! components of `[A-Za-z0-9._-]`, never `.` or `..`.
//!
//! Lock: `open` guards the receiver of the archive being received; it is held across one
//! chunk's write and sync (the only caller is the one leader sending to this node).

use std::path::PathBuf;

use parking_lot::Mutex;
use vellum_fs::{atomic_replace, create_dir_all_durable};
use vellum_snapshot_format::{Chunk, ChunkReceiver, ImportOptions};

use crate::error::{Error, Result};
use crate::state_machine::{MANIFEST_FILE, Manifest, StateMachine};
use crate::types::SnapshotFiles;

/// What the receiver still needs of one archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Whether the final chunk (the totals) has arrived.
    pub totals_known: bool,
    /// Sequence numbers not yet received (up to [`MAX_MISSING_LISTED`]).
    pub missing: Vec<u64>,
}

/// The most missing chunks one answer lists.
pub const MAX_MISSING_LISTED: usize = 65_536;

struct Open {
    snapshot_id: String,
    file: String,
    rx: ChunkReceiver,
}

/// Snapshot receptions of one node.
pub struct SnapshotInbox {
    sm: StateMachine,
    open: Mutex<Option<Open>>,
}

impl std::fmt::Debug for SnapshotInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotInbox").finish()
    }
}

/// Refuses anything but one plain path component.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Snapshot {
            dir: PathBuf::new(),
            reason: format!("{what} {name:?} is not a plain name of [A-Za-z0-9._-]"),
        })
    }
}

impl SnapshotInbox {
    /// An inbox receiving into `sm`'s snapshot directory.
    pub fn new(sm: StateMachine) -> SnapshotInbox {
        SnapshotInbox {
            sm,
            open: Mutex::new(None),
        }
    }

    /// Accepts one chunk of archive `file` of snapshot `snapshot_id`.
    pub fn receive(&self, snapshot_id: &str, file: &str, chunk: &Chunk) -> Result<Progress> {
        check_name("snapshot id", snapshot_id)?;
        check_name("file", file)?;
        let mut open = self.open.lock();
        if open
            .as_ref()
            .is_none_or(|o| o.snapshot_id != snapshot_id || o.file != file)
        {
            *open = None;
            let dir = self.sm.snapshot_dir(snapshot_id);
            let fs = self.sm.fs().clone();
            create_dir_all_durable(fs.as_ref(), &dir)?;
            let staging = dir.join(format!("{file}.staging"));
            let rx = ChunkReceiver::open(fs, &staging, ImportOptions::default())?;
            *open = Some(Open {
                snapshot_id: snapshot_id.to_owned(),
                file: file.to_owned(),
                rx,
            });
        }
        let o = open.as_mut().expect("opened above");
        if let Err(e) = o.rx.receive(chunk) {
            // A refused chunk changes nothing, but after an I/O error the receiver must be
            // reopened: drop it either way.
            *open = None;
            return Err(e.into());
        }
        Ok(Progress {
            totals_known: o.rx.final_totals().is_some(),
            missing: o.rx.missing_seqs(MAX_MISSING_LISTED),
        })
    }

    /// Verifies the whole of archive `file` and moves it into the snapshot directory.
    pub fn finish_file(&self, snapshot_id: &str, file: &str) -> Result<()> {
        check_name("snapshot id", snapshot_id)?;
        check_name("file", file)?;
        let mut open = self.open.lock();
        let o = match open.take() {
            Some(o) if o.snapshot_id == snapshot_id && o.file == file => o,
            other => {
                *open = other;
                return Err(Error::Snapshot {
                    dir: self.sm.snapshot_dir(snapshot_id),
                    reason: format!("{file}: no chunks were received"),
                });
            }
        };
        o.rx.finish(&self.sm.snapshot_dir(snapshot_id).join(file))?;
        Ok(())
    }

    /// Writes the manifest last (a directory without one is incomplete) and returns the
    /// snapshot to hand to openraft's install. Every archive the manifest names must be
    /// there.
    pub fn finish(
        &self,
        snapshot_id: &str,
        manifest_json: &[u8],
    ) -> Result<(Manifest, SnapshotFiles)> {
        check_name("snapshot id", snapshot_id)?;
        let dir = self.sm.snapshot_dir(snapshot_id);
        let manifest: Manifest =
            serde_json::from_slice(manifest_json).map_err(|e| Error::Snapshot {
                dir: dir.clone(),
                reason: format!("manifest does not parse: {e}"),
            })?;
        let fs = self.sm.fs().clone();
        create_dir_all_durable(fs.as_ref(), &dir)?;
        for c in &manifest.collections {
            check_name("file", &c.file)?;
            if !fs.exists(&dir.join(&c.file))? {
                return Err(Error::Snapshot {
                    dir: dir.clone(),
                    reason: format!("{}: archive of {:?} not received", c.file, c.name),
                });
            }
        }
        atomic_replace(fs.as_ref(), &dir.join(MANIFEST_FILE), manifest_json)?;
        Ok((manifest, SnapshotFiles { fs, dir }))
    }
}
