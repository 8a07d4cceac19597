//! The [`SimFs`] handle: the shared state behind it, and what a test may inspect or change
//! directly (bypassing faults and power).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::failpoints::PauseGate;
use super::state::{Ino, ROOT, State, apply_pending};
use crate::error::{OpKind, Result};

/// Counters of what a simulated file system did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Operations counted (everything but fail points).
    pub ops: u64,
    /// Successful `sync_data` and map flushes.
    pub file_syncs: u64,
    /// Successful `sync_dir` calls.
    pub dir_syncs: u64,
    /// Bytes written through `write_at`/`append`/`allocate`.
    pub bytes_written: u64,
    /// Injected faults that fired.
    pub faults_fired: u64,
}

#[derive(Debug)]
pub(crate) struct SimInner {
    state: Mutex<State>,
    /// Fail points that hold the thread reaching them (see [`SimFs::pause_at`]).
    pub(super) pauses: Mutex<Vec<(String, Arc<PauseGate>)>>,
    /// Advisory locks: inode -> the handle holding it. Not part of [`State`], so a crash
    /// image (a new process) starts with none.
    pub(super) locks: Mutex<BTreeMap<Ino, u64>>,
    /// The next file handle number.
    pub(super) next_handle: std::sync::atomic::AtomicU64,
}

impl SimInner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough for tests that
        // catch it; never propagate poisoning.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The simulated file system. Cloning gives another handle to the same file system.
#[derive(Debug, Clone)]
pub struct SimFs {
    pub(super) inner: Arc<SimInner>,
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

impl SimFs {
    /// An empty simulated file system holding only its root directory.
    pub fn new() -> Self {
        SimFs::from_state(State::new())
    }

    pub(crate) fn from_state(state: State) -> Self {
        SimFs {
            inner: Arc::new(SimInner {
                state: Mutex::new(state),
                pauses: Mutex::new(Vec::new()),
                locks: Mutex::new(BTreeMap::new()),
                next_handle: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    /// This file system as a shared handle for engine code.
    pub fn shared(&self) -> crate::DynFs {
        Arc::new(self.clone())
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Starts recording the kind of every operation (see [`SimFs::op_log`]).
    pub fn record_ops(&self) {
        self.lock().op_log = Some(Vec::new());
    }

    /// The kinds of the operations run since [`SimFs::record_ops`], in order.
    pub fn op_log(&self) -> Vec<OpKind> {
        self.lock().op_log.clone().unwrap_or_default()
    }

    /// Counters of what this file system did.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// The live contents of a file (what a read sees now), bypassing faults and power.
    pub fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        let mut st = self.lock();
        let ino = st.existing_file(OpKind::Read, path)?;
        st.absorb_maps(ino);
        Ok(st.file_mut(ino).live.clone())
    }

    /// Changes a file's bytes as bit rot or a buggy neighbour would: live and durable bytes
    /// both change, nothing is pending. Used by tests to corrupt files on purpose.
    pub fn tamper(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let mut st = self.lock();
        let ino = st.existing_file(OpKind::Write, path)?;
        st.absorb_maps(ino);
        let file = st.file_mut(ino);
        let mut bytes = file.live.clone();
        for p in std::mem::take(&mut file.pending) {
            apply_pending(&mut file.durable, &p);
        }
        f(&mut bytes);
        file.durable = bytes.clone();
        file.live = bytes;
        Ok(())
    }

    /// Every path (files and directories) that exists now, sorted.
    pub fn all_paths(&self) -> Vec<PathBuf> {
        let st = self.lock();
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, PathBuf::from("/"))];
        while let Some((ino, path)) = stack.pop() {
            if let Some(d) = st.dir(ino) {
                for (name, child) in &d.live {
                    let p = path.join(name);
                    out.push(p.clone());
                    stack.push((*child, p));
                }
            }
        }
        out.sort();
        out
    }
}
