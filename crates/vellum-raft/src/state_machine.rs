//! The replicated state machine: a `vellum::Database` every committed entry is applied to
//! in log order (docs/REPLICATION.md).
//!
//! Durability: the database keeps no write-ahead log of its own
//! (`DatabaseOptions::with_external_log`: the Raft log is the durable record of every
//! write). Every `PERSIST_EVERY_ENTRIES` entries, and
//! before a snapshot is built, every collection is checkpointed and then the applied log id
//! and membership are published in `sm-state`; a restart reports that id and openraft
//! applies the entries after it again. Applying a suffix again over a state that already
//! holds part of it gives the same state (upserts set, deletes and drops remove, a create
//! of an equal collection is a no-op), which is also what lets a snapshot be taken while
//! entries keep being applied.
//!
//! Locks: `SmInner::state` guards the applied id, the membership and the current snapshot;
//! it is held only to read or replace them, never across database work or file I/O.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use vellum::{Compression, Database, DatabaseOptions};
use vellum_fs::{DynFs, atomic_replace, create_dir_all_durable};

use crate::error::{Error, Result};
use crate::types::{
    Entry, LogId, NodeId, Request, Response, SnapshotFiles, StorageError, TypeConfig,
};

/// Entries applied between two checkpoints of the database (the most openraft replays
/// after a restart, on top of what it has not yet snapshotted).
pub const PERSIST_EVERY_ENTRIES: u64 = 4096;
/// The state machine's applied-state file.
pub const SM_STATE_FILE: &str = "sm-state";
/// A snapshot's manifest, written last (a snapshot directory without one is incomplete).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The marker of a snapshot install in progress (holds the snapshot's directory name).
pub const INSTALLING_FILE: &str = "installing";
const DB_DIR: &str = "db";
const SNAPSHOTS_DIR: &str = "snapshots";

type Membership = StoredMembership<NodeId, openraft::BasicNode>;
type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

/// What `sm-state` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId>,
    membership: Membership,
}

/// A snapshot's manifest: its meta and one archive per collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// openraft's meta (last log id, membership, id).
    pub meta: Meta,
    /// The collections, each with its archive's file name in the directory.
    pub collections: Vec<ManifestEntry>,
}

/// One collection of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The collection's name.
    pub name: String,
    /// Its archive's file name.
    pub file: String,
    /// The archive's length.
    pub archive_bytes: u64,
}

impl Manifest {
    /// Reads the manifest of the snapshot in `dir`.
    pub fn load(fs: &dyn vellum_fs::Fs, dir: &Path) -> Result<Manifest> {
        let bytes = read_all(fs, &dir.join(MANIFEST_FILE))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Snapshot {
            dir: dir.to_path_buf(),
            reason: format!("manifest does not parse: {e}"),
        })
    }
}

struct State {
    applied: Applied,
    /// The newest complete snapshot: its meta and directory.
    current: Option<(Meta, PathBuf)>,
    since_persist: u64,
}

struct SmInner {
    fs: DynFs,
    dir: PathBuf,
    db: Database,
    state: Mutex<State>,
}

/// The state machine of one node. Clones share it: the node keeps one to read the database
/// (local reads) while openraft applies through another.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<SmInner>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl StateMachine {
    /// Opens the state machine in `dir` on `fs`: the database, its applied state, the newest
    /// snapshot; finishes an install a crash interrupted.
    pub fn open(fs: DynFs, dir: &Path, options: DatabaseOptions) -> Result<StateMachine> {
        create_dir_all_durable(fs.as_ref(), dir)?;
        create_dir_all_durable(fs.as_ref(), &dir.join(SNAPSHOTS_DIR))?;
        // The Raft log holds every write: the collections keep no log of their own.
        let options = options.with_external_log(true);
        let db = Database::open_with_fs(fs.clone(), dir.join(DB_DIR), options)?;
        let state_path = dir.join(SM_STATE_FILE);
        let applied: Applied = if fs.exists(&state_path)? {
            decode_sm_state(&read_all(fs.as_ref(), &state_path)?, &state_path)?
        } else {
            Applied::default()
        };
        let sm = StateMachine {
            inner: Arc::new(SmInner {
                fs: fs.clone(),
                dir: dir.to_path_buf(),
                db,
                state: Mutex::new(State {
                    applied,
                    current: None,
                    since_persist: 0,
                }),
            }),
        };
        let current = sm.newest_snapshot()?;
        sm.inner.state.lock().current = current;
        let installing = dir.join(INSTALLING_FILE);
        if fs.exists(&installing)? {
            let name = String::from_utf8_lossy(&read_all(fs.as_ref(), &installing)?).into_owned();
            let snap_dir = dir.join(SNAPSHOTS_DIR).join(name.trim());
            let manifest = Manifest::load(fs.as_ref(), &snap_dir)?;
            tracing::info!(dir = %snap_dir.display(), "finishing an interrupted snapshot install");
            sm.install_from(&snap_dir, &manifest)?;
        }
        Ok(sm)
    }

    /// The database (for local reads: possibly behind the leader, see docs/REPLICATION.md).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId> {
        self.inner.state.lock().applied.last_applied
    }

    /// The directory a snapshot with `id` is received into.
    pub fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.inner.dir.join(SNAPSHOTS_DIR).join(id)
    }

    /// Checkpoints every collection and publishes the applied id (a restart then replays
    /// nothing before it). A server calls it on a graceful shutdown.
    pub fn checkpoint(&self) -> Result<()> {
        self.persist()
    }

    /// The file system the state machine is on.
    pub fn fs(&self) -> &DynFs {
        &self.inner.fs
    }

    fn newest_snapshot(&self) -> Result<Option<(Meta, PathBuf)>> {
        let fs = self.inner.fs.as_ref();
        let root = self.inner.dir.join(SNAPSHOTS_DIR);
        let mut best: Option<(Meta, PathBuf)> = None;
        for name in fs.list_dir(&root)? {
            let dir = root.join(&name);
            if !fs.exists(&dir.join(MANIFEST_FILE))? {
                continue;
            }
            let m = Manifest::load(fs, &dir)?;
            if best
                .as_ref()
                .is_none_or(|(b, _)| b.last_log_id < m.meta.last_log_id)
            {
                best = Some((m.meta, dir));
            }
        }
        Ok(best)
    }

    /// Checkpoints every collection, then publishes the applied id and membership.
    fn persist(&self) -> Result<()> {
        self.inner.db.checkpoint_all()?;
        let applied = self.inner.state.lock().applied.clone();
        let path = self.inner.dir.join(SM_STATE_FILE);
        atomic_replace(self.inner.fs.as_ref(), &path, &encode_sm_state(&applied))?;
        self.inner.state.lock().since_persist = 0;
        Ok(())
    }

    fn apply_request(&self, req: Request) -> Result<Response> {
        crate::apply::apply(&self.inner.db, req)
    }

    /// Replaces the database's collections with those of the snapshot in `dir` (verified
    /// before anything changes), publishes the snapshot's applied id, and makes it the
    /// current snapshot. Idempotent: an open after a crash runs it again.
    fn install_from(&self, dir: &Path, manifest: &Manifest) -> Result<()> {
        let fs = self.inner.fs.as_ref();
        for c in &manifest.collections {
            let file = fs.open(&dir.join(&c.file))?;
            vellum_snapshot_format::verify_file(file.as_ref())?;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        atomic_replace(fs, &self.inner.dir.join(INSTALLING_FILE), name.as_bytes())?;
        let db = &self.inner.db;
        for (name, _) in db.list_collections() {
            db.drop_collection(&name)?;
        }
        for c in &manifest.collections {
            db.import_snapshot(&[dir.join(&c.file)], &c.name)?;
        }
        {
            let mut st = self.inner.state.lock();
            st.applied = Applied {
                last_applied: manifest.meta.last_log_id,
                membership: manifest.meta.last_membership.clone(),
            };
            st.current = Some((manifest.meta.clone(), dir.to_path_buf()));
        }
        self.persist()?;
        fs.remove_file(&self.inner.dir.join(INSTALLING_FILE))?;
        fs.sync_dir(&self.inner.dir)?;
        self.remove_other_snapshots(dir)?;
        Ok(())
    }

    /// Removes every snapshot directory but `keep` (older snapshots and abandoned
    /// receptions).
    fn remove_other_snapshots(&self, keep: &Path) -> Result<()> {
        let fs = self.inner.fs.as_ref();
        let root = self.inner.dir.join(SNAPSHOTS_DIR);
        for name in fs.list_dir(&root)? {
            let dir = root.join(&name);
            if dir != keep {
                vellum_snapshot_format::remove_tree(fs, &dir)?;
            }
        }
        fs.sync_dir(&root)?;
        Ok(())
    }
}

/// Whether a database error is a refusal of the request (the same on every node), not a
/// failure of this node.
const SM_STATE_MAGIC: [u8; 8] = *b"VLMSMST1";

fn encode_sm_state(a: &Applied) -> Vec<u8> {
    let body = serde_json::to_vec(a).expect("the applied state serialises");
    let mut b = SM_STATE_MAGIC.to_vec();
    b.extend_from_slice(&(body.len() as u64).to_le_bytes());
    b.extend_from_slice(&body);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_sm_state(b: &[u8], path: &Path) -> Result<Applied> {
    let bad = |offset: u64, reason: String| Error::StateFile {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if b.len() < 20 || b[..8] != SM_STATE_MAGIC {
        return Err(bad(0, "not a state machine state file (magic)".into()));
    }
    let crc_at = b.len() - 4;
    let crc = u32::from_le_bytes(b[crc_at..].try_into().expect("4 bytes"));
    if crc != crc32fast::hash(&b[..crc_at]) {
        return Err(bad(crc_at as u64, "checksum mismatch".into()));
    }
    let len = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    if len != (crc_at - 16) as u64 {
        return Err(bad(8, format!("body length {len} does not match the file")));
    }
    serde_json::from_slice(&b[16..crc_at]).map_err(|e| bad(16, format!("body: {e}")))
}

/// Copies the snapshot `src` into `dest` on `fs`: the archives first (each synced), the
/// manifest last (atomically), so `dest` is complete only once it has a manifest.
fn copy_snapshot(src: &SnapshotFiles, fs: &dyn vellum_fs::Fs, dest: &Path) -> Result<()> {
    let manifest = Manifest::load(src.fs.as_ref(), &src.dir)?;
    create_dir_all_durable(fs, dest)?;
    let mut buf = vec![0u8; 1 << 20];
    for c in &manifest.collections {
        let from = src.fs.open(&src.dir.join(&c.file))?;
        let len = from.len()?;
        let to = fs.create(&dest.join(&c.file))?;
        let mut at = 0;
        while at < len {
            let n = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
            from.read_at(&mut buf[..n], at)?;
            to.write_at(&buf[..n], at)?;
            at += n as u64;
        }
        to.sync_data()?;
    }
    fs.sync_dir(dest)?;
    let json = read_all(src.fs.as_ref(), &src.dir.join(MANIFEST_FILE))?;
    atomic_replace(fs, &dest.join(MANIFEST_FILE), &json)?;
    Ok(())
}

/// `decode_sm_state` for the fuzz target.
pub(crate) fn decode_sm_state_for_fuzzing(b: &[u8]) -> bool {
    decode_sm_state(b, Path::new("fuzz")).is_ok()
}

/// The bytes of an `sm-state` file (for the fuzz corpus).
#[doc(hidden)]
pub fn sm_state_bytes_for_corpus(last_applied: Option<LogId>) -> Vec<u8> {
    encode_sm_state(&Applied {
        last_applied,
        membership: Membership::default(),
    })
}

pub(crate) fn read_all(fs: &dyn vellum_fs::Fs, path: &Path) -> Result<Vec<u8>> {
    let file = fs.open(path)?;
    let len = usize::try_from(file.len()?).map_err(|_| Error::Snapshot {
        dir: path.to_path_buf(),
        reason: "file too large to read".into(),
    })?;
    let mut b = vec![0u8; len];
    file.read_at(&mut b, 0)?;
    Ok(b)
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

/// Builds a snapshot: the database is checkpointed and the applied id published when the
/// builder is made (on the apply path); the archives are then exported while entries keep
/// being applied.
#[derive(Debug)]
pub struct SnapshotBuilder {
    sm: StateMachine,
    meta: Meta,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let sm = self.sm.clone();
        let meta = self.meta.clone();
        let dir = sm.snapshot_dir(&meta.snapshot_id);
        let fs = sm.inner.fs.clone();
        create_dir_all_durable(fs.as_ref(), &dir).map_err(sm_err)?;
        let mut collections = Vec::new();
        for (i, (name, _)) in sm.inner.db.list_collections().into_iter().enumerate() {
            let file = format!("c{i}.vsnap");
            let summary = sm
                .inner
                .db
                .export_snapshot(&name, dir.join(&file), Compression::None)
                .map_err(sm_err)?;
            collections.push(ManifestEntry {
                name,
                file,
                archive_bytes: summary.archive_bytes,
            });
        }
        let manifest = Manifest {
            meta: meta.clone(),
            collections,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(sm_err)?;
        atomic_replace(fs.as_ref(), &dir.join(MANIFEST_FILE), &json).map_err(sm_err)?;
        {
            let mut st = sm.inner.state.lock();
            if st
                .current
                .as_ref()
                .is_none_or(|(m, _)| m.last_log_id <= meta.last_log_id)
            {
                st.current = Some((meta.clone(), dir.clone()));
            }
        }
        sm.remove_other_snapshots(&dir).map_err(sm_err)?;
        tracing::info!(id = %meta.snapshot_id, "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFiles { fs, dir }),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let st = self.inner.state.lock();
        Ok((st.applied.last_applied, st.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let response = match entry.payload {
                EntryPayload::Blank => Response::Applied { points: 0 },
                EntryPayload::Normal(req) => self.apply_request(req).map_err(|e| {
                    StorageError::from(StorageIOError::apply(
                        log_id,
                        AnyError::error(e.to_string()),
                    ))
                })?,
                EntryPayload::Membership(m) => {
                    self.inner.state.lock().applied.membership =
                        StoredMembership::new(Some(log_id), m);
                    Response::Applied { points: 0 }
                }
            };
            let due = {
                let mut st = self.inner.state.lock();
                st.applied.last_applied = Some(log_id);
                st.since_persist += 1;
                st.since_persist >= PERSIST_EVERY_ENTRIES
            };
            if due {
                self.persist().map_err(sm_err)?;
            }
            out.push(response);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // Made durable here, on the apply path: a snapshot never covers more than the
        // applied state a restart reports (the log it lets openraft purge is not needed).
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "checkpoint before a snapshot failed");
        }
        let (applied, membership) = {
            let st = self.inner.state.lock();
            (st.applied.last_applied, st.applied.membership.clone())
        };
        let id = format!(
            "{}-{}-{:016x}",
            applied.map_or(0, |l| l.leader_id.term),
            applied.map_or(0, |l| l.index),
            vellum_fs::rng::random_u64()
        );
        SnapshotBuilder {
            sm: self.clone(),
            meta: SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id: id,
            },
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFiles>, StorageError> {
        let id = format!("incoming-{:016x}", vellum_fs::rng::random_u64());
        let dir = self.snapshot_dir(&id);
        create_dir_all_durable(self.inner.fs.as_ref(), &dir).map_err(sm_err)?;
        Ok(Box::new(SnapshotFiles {
            fs: self.inner.fs.clone(),
            dir,
        }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<SnapshotFiles>,
    ) -> Result<(), StorageError> {
        let local = std::ptr::eq(
            Arc::as_ptr(&snapshot.fs).cast::<()>(),
            Arc::as_ptr(&self.inner.fs).cast::<()>(),
        ) && snapshot.dir.starts_with(self.inner.dir.join(SNAPSHOTS_DIR));
        let snapshot = if local {
            snapshot
        } else {
            // A snapshot on another file system (handed over in-process): copy it in first.
            let dir = self.snapshot_dir(&meta.snapshot_id);
            copy_snapshot(&snapshot, self.inner.fs.as_ref(), &dir).map_err(sm_err)?;
            Box::new(SnapshotFiles {
                fs: self.inner.fs.clone(),
                dir,
            })
        };
        let manifest = Manifest::load(self.inner.fs.as_ref(), &snapshot.dir).map_err(sm_err)?;
        if manifest.meta.last_log_id != meta.last_log_id {
            return Err(sm_err(format!(
                "snapshot {} holds {:?}, not {:?}",
                snapshot.dir.display(),
                manifest.meta.last_log_id,
                meta.last_log_id
            )));
        }
        self.install_from(&snapshot.dir, &manifest)
            .map_err(sm_err)?;
        tracing::info!(id = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.inner.state.lock().current.clone();
        Ok(current.map(|(meta, dir)| Snapshot {
            meta,
            snapshot: Box::new(SnapshotFiles {
                fs: self.inner.fs.clone(),
                dir,
            }),
        }))
    }
}
