//! The simulator's state: inodes (files with live, durable and pending bytes; directories
//! with live and durable entries), the directory operations not yet synced, and path lookup.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path};
use std::sync::Weak;

use super::failpoints::FailPointState;
use super::fault::FaultRule;
use super::sim_fs::SimStats;
use crate::error::{Error, OpKind, Result};

pub(crate) type Ino = u64;
pub(super) const ROOT: Ino = 0;

/// A change to a file made since its last sync.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
pub(crate) struct FileNode {
    pub(crate) live: Vec<u8>,
    pub(crate) durable: Vec<u8>,
    pub(crate) pending: Vec<Pending>,
    pub(super) maps: Vec<Weak<memmap2::MmapRaw>>,
    pub(super) read_maps: usize,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct DirNode {
    pub(crate) live: BTreeMap<String, Ino>,
    pub(crate) durable: BTreeMap<String, Ino>,
}

#[derive(Debug)]
pub(crate) enum Inode {
    File(FileNode),
    Dir(DirNode),
}

/// A directory operation not yet covered by a directory sync.
#[derive(Debug, Clone)]
pub(crate) enum DirOp {
    Link {
        dir: Ino,
        name: String,
        ino: Ino,
    },
    Unlink {
        dir: Ino,
        name: String,
        ino: Ino,
    },
    Rename {
        from_dir: Ino,
        from_name: String,
        to_dir: Ino,
        to_name: String,
        ino: Ino,
    },
}

impl DirOp {
    pub(super) fn touches(&self, d: Ino) -> bool {
        match self {
            DirOp::Link { dir, .. } | DirOp::Unlink { dir, .. } => *dir == d,
            DirOp::Rename {
                from_dir, to_dir, ..
            } => *from_dir == d || *to_dir == d,
        }
    }

    /// Applies the operation to durable entries if its precondition holds there.
    pub(crate) fn apply_durable(&self, dirs: &mut BTreeMap<Ino, DirNode>) {
        match self {
            DirOp::Link { dir, name, ino } => {
                if let Some(d) = dirs.get_mut(dir) {
                    d.durable.insert(name.clone(), *ino);
                }
            }
            DirOp::Unlink { dir, name, ino } => {
                if let Some(d) = dirs.get_mut(dir)
                    && d.durable.get(name) == Some(ino)
                {
                    d.durable.remove(name);
                }
            }
            DirOp::Rename {
                from_dir,
                from_name,
                to_dir,
                to_name,
                ino,
            } => {
                let present = dirs
                    .get(from_dir)
                    .is_some_and(|d| d.durable.get(from_name) == Some(ino));
                if present && dirs.contains_key(to_dir) {
                    if let Some(d) = dirs.get_mut(from_dir) {
                        d.durable.remove(from_name);
                    }
                    if let Some(d) = dirs.get_mut(to_dir) {
                        d.durable.insert(to_name.clone(), *ino);
                    }
                }
            }
        }
    }
}

pub(super) fn op_dirs(op: &DirOp) -> (Ino, Ino) {
    match op {
        DirOp::Link { dir, .. } | DirOp::Unlink { dir, .. } => (*dir, *dir),
        DirOp::Rename {
            from_dir, to_dir, ..
        } => (*from_dir, *to_dir),
    }
}

pub(crate) struct State {
    pub(crate) inodes: BTreeMap<Ino, Inode>,
    pub(crate) next_ino: Ino,
    pub(crate) dir_ops: Vec<DirOp>,
    pub(super) power_cut_after: Option<u64>,
    pub(super) powered_off: bool,
    pub(super) faults: Vec<FaultRule>,
    pub(super) fail_points: BTreeMap<String, FailPointState>,
    pub(super) op_log: Option<Vec<OpKind>>,
    pub(super) stats: SimStats,
    /// Most bytes all files may hold together (`SimFs::limit_space`); `None`: unlimited.
    pub(super) space_limit: Option<u64>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("inodes", &self.inodes.len())
            .field("pending_dir_ops", &self.dir_ops.len())
            .field("powered_off", &self.powered_off)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Splits a path into normal components; `..` is refused.
pub(super) fn components(path: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(Error::Contract {
                    path: path.to_path_buf(),
                    rule: "SimFs paths may not contain `..`",
                });
            }
            Component::Normal(name) => match name.to_str() {
                Some(s) => out.push(s.to_owned()),
                None => {
                    return Err(Error::Contract {
                        path: path.to_path_buf(),
                        rule: "SimFs paths must be UTF-8",
                    });
                }
            },
        }
    }
    Ok(out)
}

pub(super) fn not_found(op: OpKind, path: &Path) -> Error {
    Error::io(op, path, std::io::Error::from(std::io::ErrorKind::NotFound))
}

impl State {
    pub(super) fn new() -> Self {
        let mut inodes = BTreeMap::new();
        inodes.insert(ROOT, Inode::Dir(DirNode::default()));
        State {
            inodes,
            next_ino: ROOT + 1,
            dir_ops: Vec::new(),
            power_cut_after: None,
            powered_off: false,
            faults: Vec::new(),
            space_limit: None,
            fail_points: BTreeMap::new(),
            op_log: None,
            stats: SimStats::default(),
        }
    }

    pub(super) fn dir(&self, ino: Ino) -> Option<&DirNode> {
        match self.inodes.get(&ino) {
            Some(Inode::Dir(d)) => Some(d),
            _ => None,
        }
    }

    pub(super) fn dir_mut(&mut self, ino: Ino) -> Option<&mut DirNode> {
        match self.inodes.get_mut(&ino) {
            Some(Inode::Dir(d)) => Some(d),
            _ => None,
        }
    }

    pub(crate) fn file_mut(&mut self, ino: Ino) -> &mut FileNode {
        match self.inodes.get_mut(&ino) {
            Some(Inode::File(f)) => f,
            _ => unreachable!("file handle points at inode {ino} which is not a file"),
        }
    }

    /// Refuses (ENOSPC) an operation that would make the files hold more than the space
    /// limit: `growth` more bytes than they hold now.
    pub(super) fn check_space(&self, op: OpKind, path: &Path, growth: u64) -> Result<()> {
        let Some(limit) = self.space_limit else {
            return Ok(());
        };
        // Files reachable from the root (an unlinked file's space is free at once, as on a
        // real file system once no handle holds it).
        let mut used = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            match self.inodes.get(&ino) {
                Some(Inode::File(f)) => used += f.live.len() as u64,
                Some(Inode::Dir(d)) => stack.extend(d.live.values().copied()),
                None => {}
            }
        }
        if growth > 0 && used.saturating_add(growth) > limit {
            return Err(Error::io(op, path, std::io::Error::from_raw_os_error(28)));
        }
        Ok(())
    }

    pub(super) fn lookup(&self, parts: &[String]) -> Option<Ino> {
        let mut cur = ROOT;
        for name in parts {
            cur = *self.dir(cur)?.live.get(name)?;
        }
        Some(cur)
    }

    /// The file at `path`, or a not-found error for `op` (also when `path` is a directory).
    pub(super) fn existing_file(&self, op: OpKind, path: &Path) -> Result<Ino> {
        let ino = components(path)
            .ok()
            .and_then(|p| self.lookup(&p))
            .ok_or_else(|| not_found(op, path))?;
        if !matches!(self.inodes.get(&ino), Some(Inode::File(_))) {
            return Err(not_found(op, path));
        }
        Ok(ino)
    }

    /// The directory that would hold `path`, and the last component.
    pub(super) fn parent_of(&self, op: OpKind, path: &Path) -> Result<(Ino, String)> {
        let mut parts = components(path)?;
        let name = parts.pop().ok_or_else(|| Error::Contract {
            path: path.to_path_buf(),
            rule: "the root has no parent",
        })?;
        let dir = self.lookup(&parts).ok_or_else(|| not_found(op, path))?;
        if self.dir(dir).is_none() {
            return Err(Error::io(
                op,
                path,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "parent is a file"),
            ));
        }
        Ok((dir, name))
    }

    pub(super) fn new_ino(&mut self, node: Inode) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, node);
        ino
    }

    pub(super) fn link(&mut self, dir: Ino, name: String, ino: Ino) {
        if let Some(d) = self.dir_mut(dir) {
            d.live.insert(name.clone(), ino);
        }
        self.dir_ops.push(DirOp::Link { dir, name, ino });
    }

    /// Applies a file's pending changes to its durable bytes.
    pub(super) fn sync_file(&mut self, ino: Ino) {
        self.absorb_maps(ino);
        let file = self.file_mut(ino);
        let pending = std::mem::take(&mut file.pending);
        for p in &pending {
            apply_pending(&mut file.durable, p);
        }
        self.stats.file_syncs += 1;
    }

    /// After a failed sync or map flush with the power still on, as Linux after a failed
    /// fsync: the dirty pages are marked clean and the writes they held never reach the
    /// disk. Reads still see them.
    pub(super) fn drop_pending_after_failed_sync(&mut self, ino: Ino) {
        if !self.powered_off {
            self.absorb_maps(ino);
            self.file_mut(ino).pending.clear();
        }
    }
}

/// Applies one pending change to `bytes`.
pub(crate) fn apply_pending(bytes: &mut Vec<u8>, p: &Pending) {
    match p {
        Pending::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}
