//! The [`Fs`] implementation of [`SimFs`]: creating, opening, renaming and removing files
//! and directories, and syncing directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::sim_fs::SimFs;
use super::state::{
    DirNode, DirOp, FileNode, Ino, Inode, Pending, ROOT, State, components, not_found, op_dirs,
};
use crate::error::{Error, OpKind, Result};
use crate::fs::{DirLock, File, Fs};

impl Fs for SimFs {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        let mut st = self.lock();
        st.begin(OpKind::Create, path)?;
        let (dir, name) = st.parent_of(OpKind::Create, path)?;
        let existing = st.dir(dir).and_then(|d| d.live.get(&name).copied());
        let ino = match existing {
            Some(ino) => {
                match st.inodes.get(&ino) {
                    Some(Inode::File(_)) => {}
                    _ => {
                        return Err(Error::io(
                            OpKind::Create,
                            path,
                            std::io::Error::from(std::io::ErrorKind::IsADirectory),
                        ));
                    }
                }
                if st.any_live_map(ino) > 0 {
                    return Err(Error::Contract {
                        path: path.to_path_buf(),
                        rule: "a mapped file may not be truncated",
                    });
                }
                let file = st.file_mut(ino);
                if file.read_maps > 0 {
                    return Err(Error::Contract {
                        path: path.to_path_buf(),
                        rule: "a file with a live read map may not be written",
                    });
                }
                file.live.clear();
                file.pending.push(Pending::SetLen(0));
                ino
            }
            None => {
                let ino = st.new_ino(Inode::File(FileNode::default()));
                st.link(dir, name, ino);
                ino
            }
        };
        Ok(Box::new(self.handle(ino, path)))
    }

    fn create_new(&self, path: &Path) -> Result<Box<dyn File>> {
        let mut st = self.lock();
        st.begin(OpKind::Create, path)?;
        let (dir, name) = st.parent_of(OpKind::Create, path)?;
        if st.dir(dir).is_some_and(|d| d.live.contains_key(&name)) {
            return Err(Error::io(
                OpKind::Create,
                path,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let ino = st.new_ino(Inode::File(FileNode::default()));
        st.link(dir, name, ino);
        Ok(Box::new(self.handle(ino, path)))
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn File>> {
        // The simulator has no permissions: a read-only handle is an ordinary one that the
        // caller promises not to write through.
        self.open(path)
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        let mut st = self.lock();
        st.begin(OpKind::Open, path)?;
        let ino = st
            .lookup(&components(path)?)
            .ok_or_else(|| not_found(OpKind::Open, path))?;
        if !matches!(st.inodes.get(&ino), Some(Inode::File(_))) {
            return Err(Error::io(
                OpKind::Open,
                path,
                std::io::Error::from(std::io::ErrorKind::IsADirectory),
            ));
        }
        Ok(Box::new(self.handle(ino, path)))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.lock();
        let both = PathBuf::from(format!("{} -> {}", from.display(), to.display()));
        st.begin(OpKind::Rename, &both)?;
        let (from_dir, from_name) = st.parent_of(OpKind::Rename, from)?;
        let (to_dir, to_name) = st.parent_of(OpKind::Rename, to)?;
        let ino = st
            .dir(from_dir)
            .and_then(|d| d.live.get(&from_name).copied())
            .ok_or_else(|| not_found(OpKind::Rename, from))?;
        if let Some(target) = st.dir(to_dir).and_then(|d| d.live.get(&to_name).copied()) {
            if target == ino {
                return Ok(());
            }
            if let Some(Inode::Dir(d)) = st.inodes.get(&target)
                && !d.live.is_empty()
            {
                return Err(Error::io(
                    OpKind::Rename,
                    to,
                    std::io::Error::from(std::io::ErrorKind::DirectoryNotEmpty),
                ));
            }
        }
        if let Some(d) = st.dir_mut(from_dir) {
            d.live.remove(&from_name);
        }
        if let Some(d) = st.dir_mut(to_dir) {
            d.live.insert(to_name.clone(), ino);
        }
        st.dir_ops.push(DirOp::Rename {
            from_dir,
            from_name,
            to_dir,
            to_name,
            ino,
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        self.unlink_entry(path, |st, ino| {
            (!matches!(st.inodes.get(&ino), Some(Inode::File(_))))
                .then_some(std::io::ErrorKind::IsADirectory)
        })
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        self.unlink_entry(path, |st, ino| match st.dir(ino) {
            None => Some(std::io::ErrorKind::NotADirectory),
            Some(d) if !d.live.is_empty() => Some(std::io::ErrorKind::DirectoryNotEmpty),
            Some(_) => None,
        })
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut st = self.lock();
        st.begin(OpKind::CreateDir, path)?;
        let mut cur = ROOT;
        for name in components(path)? {
            let next = st.dir(cur).and_then(|d| d.live.get(&name).copied());
            cur = match next {
                Some(ino) if st.dir(ino).is_some() => ino,
                Some(_) => {
                    return Err(Error::io(
                        OpKind::CreateDir,
                        path,
                        std::io::Error::from(std::io::ErrorKind::NotADirectory),
                    ));
                }
                None => {
                    let ino = st.new_ino(Inode::Dir(DirNode::default()));
                    st.link(cur, name, ino);
                    ino
                }
            };
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let mut st = self.lock();
        st.begin(OpKind::SyncDir, path)?;
        let ino = st
            .lookup(&components(path)?)
            .ok_or_else(|| not_found(OpKind::SyncDir, path))?;
        if st.dir(ino).is_none() {
            return Err(Error::io(
                OpKind::SyncDir,
                path,
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            ));
        }
        let ops = std::mem::take(&mut st.dir_ops);
        let (now, later): (Vec<DirOp>, Vec<DirOp>) =
            ops.into_iter().partition(|op| op.touches(ino));
        st.dir_ops = later;
        let mut dirs: BTreeMap<Ino, DirNode> = BTreeMap::new();
        for op in &now {
            for d in [op_dirs(op).0, op_dirs(op).1] {
                if let Some(node) = st.dir(d) {
                    dirs.entry(d).or_insert_with(|| node.clone());
                }
            }
        }
        for op in &now {
            op.apply_durable(&mut dirs);
        }
        for (d, node) in dirs {
            if let Some(target) = st.dir_mut(d) {
                target.durable = node.durable;
            }
        }
        st.stats.dir_syncs += 1;
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let mut st = self.lock();
        st.begin(OpKind::List, path)?;
        let ino = st
            .lookup(&components(path)?)
            .ok_or_else(|| not_found(OpKind::List, path))?;
        let d = st.dir(ino).ok_or_else(|| {
            Error::io(
                OpKind::List,
                path,
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            )
        })?;
        Ok(d.live.keys().cloned().collect())
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let mut st = self.lock();
        st.begin(OpKind::List, path)?;
        Ok(st.lookup(&components(path)?).is_some())
    }

    fn try_lock_dir(&self, path: &Path) -> Result<Option<DirLock>> {
        self.try_lock_dir_at(path)
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        let mut st = self.lock();
        st.begin(OpKind::List, path)?;
        Ok(st
            .lookup(&components(path)?)
            .is_some_and(|ino| st.dir(ino).is_some()))
    }

    fn fail_point(&self, name: &str) -> Result<()> {
        self.hit_fail_point(name)
    }
}

impl SimFs {
    /// Removes the directory entry at `path` (a pending unlink until its directory is
    /// synced), unless `refuse`, shown the entry's inode, names why it may not go.
    fn unlink_entry(
        &self,
        path: &Path,
        refuse: impl FnOnce(&State, Ino) -> Option<std::io::ErrorKind>,
    ) -> Result<()> {
        let mut st = self.lock();
        st.begin(OpKind::Remove, path)?;
        let (dir, name) = st.parent_of(OpKind::Remove, path)?;
        let ino = st
            .dir(dir)
            .and_then(|d| d.live.get(&name).copied())
            .ok_or_else(|| not_found(OpKind::Remove, path))?;
        if let Some(kind) = refuse(&st, ino) {
            return Err(Error::io(OpKind::Remove, path, std::io::Error::from(kind)));
        }
        if let Some(d) = st.dir_mut(dir) {
            d.live.remove(&name);
        }
        st.dir_ops.push(DirOp::Unlink { dir, name, ino });
        Ok(())
    }
}
