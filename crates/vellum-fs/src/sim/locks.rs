//! Advisory locks on files and directories. The lock table lives beside the crash state,
//! not in it: a crash image (a new process) starts with no lock held.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::MutexGuard;

use super::sim_fs::SimFs;
use super::state::{Ino, components, not_found};
use crate::error::{OpKind, Result};
use crate::fs::DirLock;

/// What a [`SimFs`] directory lock holds: its entry in the lock table.
#[derive(Debug)]
struct SimDirLock {
    fs: SimFs,
    ino: Ino,
    handle: u64,
}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        self.fs.unlock(self.ino, self.handle);
    }
}

impl SimFs {
    /// The advisory-lock table (never poisoned: a panicking test leaves it usable).
    fn locks(&self) -> MutexGuard<'_, BTreeMap<Ino, u64>> {
        self.inner.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new handle number, which tells one holder's advisory lock from another's.
    pub(super) fn next_handle(&self) -> u64 {
        self.inner
            .next_handle
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes the lock on `ino` for `handle` unless another handle holds it; whether
    /// `handle` holds it now.
    pub(super) fn try_lock(&self, ino: Ino, handle: u64) -> bool {
        *self.locks().entry(ino).or_insert(handle) == handle
    }

    /// Releases the lock on `ino` if `handle` holds it.
    pub(super) fn unlock(&self, ino: Ino, handle: u64) {
        let mut locks = self.locks();
        if locks.get(&ino) == Some(&handle) {
            locks.remove(&ino);
        }
    }

    /// The body of [`crate::Fs::try_lock_dir`]: locks the directory itself.
    pub(super) fn try_lock_dir_at(&self, path: &Path) -> Result<Option<DirLock>> {
        let ino = {
            let mut st = self.lock();
            st.begin(OpKind::Lock, path)?;
            match st.lookup(&components(path)?) {
                Some(ino) if st.dir(ino).is_some() => ino,
                _ => return Err(not_found(OpKind::Lock, path)),
            }
        };
        let handle = self.next_handle();
        if !self.try_lock(ino, handle) {
            return Ok(None);
        }
        Ok(Some(DirLock::new(Box::new(SimDirLock {
            fs: self.clone(),
            ino,
            handle,
        }))))
    }
}
