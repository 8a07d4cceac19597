//! The simulated file system: in memory, deterministic, and able to say what a power loss
//! could leave on disk.
//!
//! # Model
//!
//! * Each file (an inode) has its *live* bytes (what reads see), its *durable* bytes (what
//!   survives any crash) and the list of writes and length changes made since its last
//!   `sync_data`. A successful sync applies that list to the durable bytes; a failed sync
//!   throws the list away without applying it (the Linux behaviour after `EIO`).
//! * Each directory has live and durable entries. Creates, renames and removes change the
//!   live entries at once and join a list of pending directory operations; `sync_dir(d)`
//!   makes durable every pending operation that touches `d`.
//! * Stores through a writable map change the map's memory; the simulator turns the pages
//!   that differ from the file into pending page writes whenever it looks at the file (a
//!   read, a sync, a flush, a crash), so dirty pages may reach disk early or not at all.
//! * [`SimFs::crash_images`] builds the disk states a power loss could leave (see
//!   [`CrashModel`]). Each image is a fresh `SimFs` with everything durable, ready to reopen.
//! * Faults: countdown rules ([`FaultRule`]), named fail points, and a power cut after the
//!   n-th operation ([`SimFs::cut_power_after`]) which freezes the state for crash images.
//!
//! Simplifications (documented so tests do not over-trust them): file metadata other than
//! length (times, permissions) is not modelled; a rename is atomic (it survives whole or not
//! at all, as on journaling file systems); directories are never torn.

mod crash;
mod fault;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

pub use crash::{CrashImages, CrashModel, DirSurvival, WriteSurvival};
pub use fault::{Fault, FaultRule};

use crate::error::{Error, OpKind, Result};
use crate::fs::{DirLock, File, Fs, MapBackend, MapMut, ReadMap, ReadMapInner};

/// Page size used to find dirty pages of writable maps.
pub(crate) const MAP_PAGE_BYTES: usize = 4096;

pub(crate) type Ino = u64;
const ROOT: Ino = 0;

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
    maps: Vec<Weak<memmap2::MmapRaw>>,
    read_maps: usize,
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
    fn touches(&self, d: Ino) -> bool {
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

/// What happens at a named fail point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailAction {
    /// Return this fault's error from the fail point (the power stays on).
    Error(Fault),
    /// Cut the power at the fail point.
    PowerCut,
}

#[derive(Debug, Default)]
struct FailPointState {
    action: Option<FailAction>,
    /// Fire on the n-th hit (1-based); 0 means every hit.
    nth: u64,
    hits: u64,
}

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

pub(crate) struct State {
    pub(crate) inodes: BTreeMap<Ino, Inode>,
    pub(crate) next_ino: Ino,
    pub(crate) dir_ops: Vec<DirOp>,
    power_cut_after: Option<u64>,
    powered_off: bool,
    faults: Vec<FaultRule>,
    fail_points: BTreeMap<String, FailPointState>,
    op_log: Option<Vec<OpKind>>,
    stats: SimStats,
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

#[derive(Debug)]
pub(crate) struct SimInner {
    state: Mutex<State>,
    /// Fail points that hold the thread reaching them (see [`SimFs::pause_at`]).
    pauses: Mutex<Vec<(String, Arc<PauseGate>)>>,
    /// Advisory locks: inode -> the handle holding it. Not part of [`State`], so a crash
    /// image (a new process) starts with none.
    locks: Mutex<BTreeMap<Ino, u64>>,
    /// The next file handle number.
    next_handle: std::sync::atomic::AtomicU64,
}

/// A fail point's hold: the thread that reaches it waits until the test resumes it.
#[derive(Debug, Default)]
struct PauseGate {
    /// (reached, resumed)
    state: Mutex<(bool, bool)>,
    cv: std::sync::Condvar,
}

impl PauseGate {
    fn hold(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = true;
        self.cv.notify_all();
        while !st.1 {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A fail point armed to hold the first thread that reaches it, from
/// [`SimFs::pause_at`]. Dropping it resumes that thread.
#[derive(Debug)]
pub struct Pause {
    gate: Arc<PauseGate>,
    name: String,
}

impl Pause {
    /// Waits until a thread is held at the fail point; `false` if none arrived within
    /// `timeout` (a test's guard against hanging, not a measurement).
    pub fn wait_reached(&self, timeout: std::time::Duration) -> bool {
        let st = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        let (st, _) = self
            .gate
            .cv
            .wait_timeout_while(st, timeout, |s| !s.0)
            .unwrap_or_else(|p| p.into_inner());
        st.0
    }

    /// Lets the held thread go on (and any later one pass).
    pub fn resume(&self) {
        let mut st = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        st.1 = true;
        self.gate.cv.notify_all();
    }

    /// The fail point's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        self.resume();
    }
}

impl SimInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough for tests that
        // catch it; never propagate poisoning.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The simulated file system. Cloning gives another handle to the same file system.
#[derive(Debug, Clone)]
pub struct SimFs {
    inner: Arc<SimInner>,
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

/// Splits a path into normal components; `..` is refused.
fn components(path: &Path) -> Result<Vec<String>> {
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

fn not_found(op: OpKind, path: &Path) -> Error {
    Error::io(op, path, std::io::Error::from(std::io::ErrorKind::NotFound))
}

impl State {
    fn new() -> Self {
        let mut inodes = BTreeMap::new();
        inodes.insert(ROOT, Inode::Dir(DirNode::default()));
        State {
            inodes,
            next_ino: ROOT + 1,
            dir_ops: Vec::new(),
            power_cut_after: None,
            powered_off: false,
            faults: Vec::new(),
            fail_points: BTreeMap::new(),
            op_log: None,
            stats: SimStats::default(),
        }
    }

    /// Every operation starts here: power, countdown, faults.
    fn begin(&mut self, op: OpKind, path: &Path) -> Result<Option<Fault>> {
        if self.powered_off {
            return Err(Error::io(op, path, fault::power_loss_error()));
        }
        if self.power_cut_after.is_some_and(|n| self.stats.ops >= n) {
            self.powered_off = true;
            return Err(Error::io(op, path, fault::power_loss_error()));
        }
        self.stats.ops += 1;
        if let Some(log) = &mut self.op_log {
            log.push(op);
        }
        let path_text = path.to_string_lossy();
        let mut fired = None;
        for rule in &mut self.faults {
            if let Some(f) = rule.check(op, &path_text) {
                fired.get_or_insert(f);
            }
        }
        match fired {
            None => Ok(None),
            Some(Fault::PowerCut) => {
                self.powered_off = true;
                self.stats.faults_fired += 1;
                Err(Error::io(op, path, fault::power_loss_error()))
            }
            Some(Fault::ShortWrite) if op == OpKind::Write => {
                self.stats.faults_fired += 1;
                Ok(Some(Fault::ShortWrite))
            }
            Some(f) => {
                self.stats.faults_fired += 1;
                Err(Error::io(op, path, f.to_io_error()))
            }
        }
    }

    fn dir(&self, ino: Ino) -> Option<&DirNode> {
        match self.inodes.get(&ino) {
            Some(Inode::Dir(d)) => Some(d),
            _ => None,
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Option<&mut DirNode> {
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

    fn lookup(&self, parts: &[String]) -> Option<Ino> {
        let mut cur = ROOT;
        for name in parts {
            cur = *self.dir(cur)?.live.get(name)?;
        }
        Some(cur)
    }

    /// The directory that would hold `path`, and the last component.
    fn parent_of(&self, op: OpKind, path: &Path) -> Result<(Ino, String)> {
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

    fn new_ino(&mut self, node: Inode) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, node);
        ino
    }

    fn link(&mut self, dir: Ino, name: String, ino: Ino) {
        if let Some(d) = self.dir_mut(dir) {
            d.live.insert(name.clone(), ino);
        }
        self.dir_ops.push(DirOp::Link { dir, name, ino });
    }

    /// Turns stores through live writable maps into pending page writes.
    pub(crate) fn absorb_maps(&mut self, ino: Ino) {
        let file = self.file_mut(ino);
        file.maps.retain(|w| w.strong_count() > 0);
        let maps: Vec<Arc<memmap2::MmapRaw>> = file.maps.iter().filter_map(Weak::upgrade).collect();
        for raw in maps {
            let len = raw.len().min(file.live.len());
            let mut page_start = 0;
            while page_start < len {
                let page_end = (page_start + MAP_PAGE_BYTES).min(len);
                let n = page_end - page_start;
                let mut page = vec![0u8; n];
                // SAFETY: `raw` is alive (we hold an Arc) and at least `len` bytes long; the
                // destination is a fresh buffer. Stores racing this copy from another thread
                // give torn bytes, which is what a disk could see too (documented on
                // `MapMut`); no reference to the map memory is created here.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        raw.as_ptr().add(page_start),
                        page.as_mut_ptr(),
                        n,
                    )
                };
                if page[..] != file.live[page_start..page_end] {
                    file.live[page_start..page_end].copy_from_slice(&page);
                    file.pending.push(Pending::Write {
                        offset: page_start as u64,
                        data: page,
                    });
                }
                page_start = page_end;
            }
        }
    }

    /// Applies a file's pending changes to its durable bytes.
    fn sync_file(&mut self, ino: Ino) {
        self.absorb_maps(ino);
        let file = self.file_mut(ino);
        let pending = std::mem::take(&mut file.pending);
        for p in &pending {
            apply_pending(&mut file.durable, p);
        }
        self.stats.file_syncs += 1;
    }

    fn any_live_map(&mut self, ino: Ino) -> usize {
        let file = self.file_mut(ino);
        file.maps.retain(|w| w.strong_count() > 0);
        file.maps
            .iter()
            .filter_map(Weak::upgrade)
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
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

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Cuts the power once `ops` operations have run: the next operation and every later one
    /// fail, and the state stays frozen for [`SimFs::crash_images`].
    pub fn cut_power_after(&self, ops: u64) {
        self.lock().power_cut_after = Some(ops);
    }

    /// Cuts the power now.
    pub fn cut_power(&self) {
        self.lock().powered_off = true;
    }

    /// Whether the power has been cut.
    pub fn is_powered_off(&self) -> bool {
        self.lock().powered_off
    }

    /// Adds a countdown fault.
    pub fn inject(&self, rule: FaultRule) {
        self.lock().faults.push(rule);
    }

    /// Removes every countdown fault and disarms every fail point.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.faults.clear();
        for fp in st.fail_points.values_mut() {
            fp.action = None;
        }
    }

    /// Arms the fail point `name` to act on its `nth` hit (1-based; 0 means every hit).
    pub fn arm_fail_point(&self, name: &str, nth: u64, action: FailAction) {
        let mut st = self.lock();
        let fp = st.fail_points.entry(name.to_owned()).or_default();
        fp.action = Some(action);
        fp.nth = nth;
        fp.hits = 0;
    }

    /// Arms the fail point `name` to hold the first thread that reaches it, outside the
    /// file system's lock, until the returned [`Pause`] is resumed or dropped. Other threads
    /// (and [`SimFs::crash_images`]) go on meanwhile: a test can check what an engine lets
    /// through while one of its operations is stopped half way.
    pub fn pause_at(&self, name: &str) -> Pause {
        let gate = Arc::new(PauseGate::default());
        self.inner
            .pauses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), Arc::clone(&gate)));
        Pause {
            gate,
            name: name.to_owned(),
        }
    }

    /// How many times engine code reached the fail point `name` (armed or not).
    pub fn fail_point_hits(&self, name: &str) -> u64 {
        self.lock().fail_points.get(name).map_or(0, |fp| fp.hits)
    }

    /// Names of every fail point reached so far, sorted.
    pub fn fail_points_seen(&self) -> Vec<String> {
        self.lock()
            .fail_points
            .iter()
            .filter(|(_, fp)| fp.hits > 0)
            .map(|(n, _)| n.clone())
            .collect()
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
        let ino = components(path)
            .ok()
            .and_then(|p| st.lookup(&p))
            .ok_or_else(|| not_found(OpKind::Read, path))?;
        if !matches!(st.inodes.get(&ino), Some(Inode::File(_))) {
            return Err(not_found(OpKind::Read, path));
        }
        st.absorb_maps(ino);
        Ok(st.file_mut(ino).live.clone())
    }

    /// Changes a file's bytes as bit rot or a buggy neighbour would: live and durable bytes
    /// both change, nothing is pending. Used by tests to corrupt files on purpose.
    pub fn tamper(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let mut st = self.lock();
        let ino = components(path)
            .ok()
            .and_then(|p| st.lookup(&p))
            .ok_or_else(|| not_found(OpKind::Write, path))?;
        if !matches!(st.inodes.get(&ino), Some(Inode::File(_))) {
            return Err(not_found(OpKind::Write, path));
        }
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

    /// The disk states a power loss now could leave; see [`CrashModel`]. At most
    /// `max_images` images: every one when there are that few, else a deterministic sample
    /// from `seed` that always includes "nothing unsynced survived" and "everything did".
    pub fn crash_images(&self, model: &CrashModel, max_images: usize, seed: u64) -> CrashImages {
        let mut st = self.lock();
        let files: Vec<Ino> = st
            .inodes
            .iter()
            .filter(|(_, n)| matches!(n, Inode::File(_)))
            .map(|(i, _)| *i)
            .collect();
        for ino in files {
            st.absorb_maps(ino);
        }
        CrashImages::new(&st, model, max_images, seed)
    }

    /// One crash image: everything unsynced lost (the most common expectation to test).
    pub fn crash_drop_unsynced(&self) -> SimFs {
        self.crash_images(&CrashModel::drop_unsynced(), 1, 0)
            .next()
            .expect("a crash always leaves one image")
    }

    fn file_op<T>(
        &self,
        handle: &SimFile,
        op: OpKind,
        f: impl FnOnce(&mut State, Option<Fault>) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.lock();
        let fault = st.begin(op, &handle.path)?;
        f(&mut st, fault)
    }
}

/// Builds the post-crash state from chosen pending operations; used by [`CrashImages`].
pub(crate) fn build_image(
    st: &State,
    dir_ops_kept: &[bool],
    file_pending_kept: &BTreeMap<Ino, Vec<Pending>>,
) -> SimFs {
    let mut dirs: BTreeMap<Ino, DirNode> = st
        .inodes
        .iter()
        .filter_map(|(i, n)| match n {
            Inode::Dir(d) => Some((*i, d.clone())),
            Inode::File(_) => None,
        })
        .collect();
    for (op, kept) in st.dir_ops.iter().zip(dir_ops_kept) {
        if *kept {
            op.apply_durable(&mut dirs);
        }
    }
    let mut new = State::new();
    new.inodes.clear();
    // Walk from the root through durable entries: only reachable inodes survive.
    let mut stack = vec![ROOT];
    while let Some(ino) = stack.pop() {
        if new.inodes.contains_key(&ino) {
            continue;
        }
        match st.inodes.get(&ino) {
            Some(Inode::Dir(_)) => {
                let durable = dirs
                    .get(&ino)
                    .map(|d| d.durable.clone())
                    .unwrap_or_default();
                stack.extend(durable.values().copied());
                new.inodes.insert(
                    ino,
                    Inode::Dir(DirNode {
                        live: durable.clone(),
                        durable,
                    }),
                );
            }
            Some(Inode::File(f)) => {
                let mut bytes = f.durable.clone();
                if let Some(kept) = file_pending_kept.get(&ino) {
                    for p in kept {
                        apply_pending(&mut bytes, p);
                    }
                }
                new.inodes.insert(
                    ino,
                    Inode::File(FileNode {
                        live: bytes.clone(),
                        durable: bytes,
                        ..FileNode::default()
                    }),
                );
            }
            None => {}
        }
    }
    new.next_ino = st.next_ino;
    SimFs::from_state(new)
}

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
        let mut st = self.lock();
        st.begin(OpKind::Remove, path)?;
        let (dir, name) = st.parent_of(OpKind::Remove, path)?;
        let ino = st
            .dir(dir)
            .and_then(|d| d.live.get(&name).copied())
            .ok_or_else(|| not_found(OpKind::Remove, path))?;
        if !matches!(st.inodes.get(&ino), Some(Inode::File(_))) {
            return Err(Error::io(
                OpKind::Remove,
                path,
                std::io::Error::from(std::io::ErrorKind::IsADirectory),
            ));
        }
        if let Some(d) = st.dir_mut(dir) {
            d.live.remove(&name);
        }
        st.dir_ops.push(DirOp::Unlink { dir, name, ino });
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        let mut st = self.lock();
        st.begin(OpKind::Remove, path)?;
        let (dir, name) = st.parent_of(OpKind::Remove, path)?;
        let ino = st
            .dir(dir)
            .and_then(|d| d.live.get(&name).copied())
            .ok_or_else(|| not_found(OpKind::Remove, path))?;
        match st.dir(ino) {
            None => {
                return Err(Error::io(
                    OpKind::Remove,
                    path,
                    std::io::Error::from(std::io::ErrorKind::NotADirectory),
                ));
            }
            Some(d) if !d.live.is_empty() => {
                return Err(Error::io(
                    OpKind::Remove,
                    path,
                    std::io::Error::from(std::io::ErrorKind::DirectoryNotEmpty),
                ));
            }
            Some(_) => {}
        }
        if let Some(d) = st.dir_mut(dir) {
            d.live.remove(&name);
        }
        st.dir_ops.push(DirOp::Unlink { dir, name, ino });
        Ok(())
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
        let ino = {
            let mut st = self.lock();
            st.begin(OpKind::Lock, path)?;
            match st.lookup(&components(path)?) {
                Some(ino) if st.dir(ino).is_some() => ino,
                _ => return Err(not_found(OpKind::Lock, path)),
            }
        };
        let handle = self
            .inner
            .next_handle
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut locks = self.locks();
        if *locks.entry(ino).or_insert(handle) != handle {
            return Ok(None);
        }
        Ok(Some(DirLock::new(Box::new(SimDirLock {
            fs: self.clone(),
            ino,
            handle,
        }))))
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        let mut st = self.lock();
        st.begin(OpKind::List, path)?;
        Ok(st
            .lookup(&components(path)?)
            .is_some_and(|ino| st.dir(ino).is_some()))
    }

    fn fail_point(&self, name: &str) -> Result<()> {
        let gate = {
            let mut pauses = self.inner.pauses.lock().unwrap_or_else(|p| p.into_inner());
            let at = pauses.iter().position(|(n, _)| n == name);
            at.map(|i| pauses.swap_remove(i).1)
        };
        if let Some(gate) = gate {
            gate.hold();
        }
        let mut st = self.lock();
        if st.powered_off {
            return Err(Error::io(
                OpKind::FailPoint,
                name,
                fault::power_loss_error(),
            ));
        }
        let fp = st.fail_points.entry(name.to_owned()).or_default();
        fp.hits += 1;
        let fire = fp.action.is_some() && (fp.nth == 0 || fp.nth == fp.hits);
        match (fire, fp.action) {
            (true, Some(FailAction::PowerCut)) => {
                st.powered_off = true;
                st.stats.faults_fired += 1;
                Err(Error::io(
                    OpKind::FailPoint,
                    name,
                    fault::power_loss_error(),
                ))
            }
            (true, Some(FailAction::Error(f))) => {
                st.stats.faults_fired += 1;
                Err(Error::io(OpKind::FailPoint, name, f.to_io_error()))
            }
            _ => Ok(()),
        }
    }
}

fn op_dirs(op: &DirOp) -> (Ino, Ino) {
    match op {
        DirOp::Link { dir, .. } | DirOp::Unlink { dir, .. } => (*dir, *dir),
        DirOp::Rename {
            from_dir, to_dir, ..
        } => (*from_dir, *to_dir),
    }
}

impl SimFs {
    /// The advisory-lock table (never poisoned: a panicking test leaves it usable).
    fn locks(&self) -> MutexGuard<'_, BTreeMap<Ino, u64>> {
        self.inner.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, ino: Ino, path: &Path) -> SimFile {
        SimFile {
            fs: self.clone(),
            ino,
            path: path.to_path_buf(),
            handle: self
                .inner
                .next_handle
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// An open file of a [`SimFs`].
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: Ino,
    path: PathBuf,
    /// Tells this handle's advisory lock from another handle's.
    handle: u64,
}

/// What a [`SimFs`] directory lock holds: its entry in the lock table.
#[derive(Debug)]
struct SimDirLock {
    fs: SimFs,
    ino: Ino,
    handle: u64,
}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let mut locks = self.fs.locks();
        if locks.get(&self.ino) == Some(&self.handle) {
            locks.remove(&self.ino);
        }
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut locks = self.fs.locks();
        if locks.get(&self.ino) == Some(&self.handle) {
            locks.remove(&self.ino);
        }
    }
}

impl SimFile {
    fn check_writable(&self, st: &mut State, new_len: Option<u64>) -> Result<()> {
        let mapped = st.any_live_map(self.ino);
        let file = st.file_mut(self.ino);
        if file.read_maps > 0 {
            return Err(Error::Contract {
                path: self.path.clone(),
                rule: "a file with a live read map may not be written",
            });
        }
        if new_len.is_some_and(|l| l < mapped as u64) {
            return Err(Error::Contract {
                path: self.path.clone(),
                rule: "a file may not shrink below a live writable map",
            });
        }
        Ok(())
    }

    fn do_write(
        &self,
        st: &mut State,
        buf: &[u8],
        offset: u64,
        fault: Option<Fault>,
    ) -> Result<()> {
        self.check_writable(st, None)?;
        st.absorb_maps(self.ino);
        let (data, short) = match fault {
            Some(Fault::ShortWrite) => (&buf[..buf.len() / 2], true),
            _ => (buf, false),
        };
        st.stats.bytes_written += data.len() as u64;
        let file = st.file_mut(self.ino);
        if !data.is_empty() {
            let p = Pending::Write {
                offset,
                data: data.to_vec(),
            };
            apply_pending(&mut file.live, &p);
            file.pending.push(p);
        }
        // Keep live writable maps coherent with the write, as the page cache is.
        for raw in file.maps.iter().filter_map(Weak::upgrade) {
            let start = offset as usize;
            if start < raw.len() {
                let n = (raw.len() - start).min(data.len());
                // SAFETY: `start + n <= raw.len()`; the map is alive (Arc held). The
                // `MapMut` contract forbids live slices over a range written through the
                // file, so no reference aliases these bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), raw.as_mut_ptr().add(start), n)
                };
            }
        }
        if short {
            return Err(Error::io(
                OpKind::Write,
                &self.path,
                Fault::ShortWrite.to_io_error(),
            ));
        }
        Ok(())
    }
}

impl File for SimFile {
    fn try_lock_exclusive(&self) -> Result<bool> {
        self.fs.file_op(self, OpKind::Lock, |_, _| Ok(()))?;
        let mut locks = self.fs.locks();
        let holder = *locks.entry(self.ino).or_insert(self.handle);
        Ok(holder == self.handle)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.fs.file_op(self, OpKind::Read, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            let file_len = file.live.len() as u64;
            let end = offset.checked_add(buf.len() as u64);
            match end {
                Some(end) if end <= file_len => {
                    buf.copy_from_slice(&file.live[offset as usize..end as usize]);
                    Ok(())
                }
                _ => Err(Error::ReadPastEnd {
                    path: self.path.clone(),
                    offset,
                    len: buf.len() as u64,
                    file_len,
                }),
            }
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.fs.file_op(self, OpKind::Write, |st, fault| {
            self.do_write(st, buf, offset, fault)
        })
    }

    fn append(&self, buf: &[u8]) -> Result<u64> {
        self.fs.file_op(self, OpKind::Write, |st, fault| {
            let offset = st.file_mut(self.ino).live.len() as u64;
            self.do_write(st, buf, offset, fault)?;
            Ok(offset)
        })
    }

    fn len(&self) -> Result<u64> {
        self.fs.file_op(self, OpKind::Len, |st, _| {
            Ok(st.file_mut(self.ino).live.len() as u64)
        })
    }

    fn set_len(&self, len_bytes: u64) -> Result<()> {
        self.fs.file_op(self, OpKind::SetLen, |st, _| {
            self.check_writable(st, Some(len_bytes))?;
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            let p = Pending::SetLen(len_bytes);
            apply_pending(&mut file.live, &p);
            file.pending.push(p);
            Ok(())
        })
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        self.fs.file_op(self, OpKind::SetLen, |st, _| {
            self.check_writable(st, None)?;
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            let cur = file.live.len() as u64;
            if cur < len_bytes {
                let p = Pending::Write {
                    offset: cur,
                    data: vec![0; (len_bytes - cur) as usize],
                };
                apply_pending(&mut file.live, &p);
                file.pending.push(p);
                st.stats.bytes_written += len_bytes - cur;
            }
            Ok(())
        })
    }

    fn sync_data(&self) -> Result<()> {
        let mut st = self.fs.lock();
        match st.begin(OpKind::SyncData, &self.path) {
            Ok(_) => {
                st.sync_file(self.ino);
                Ok(())
            }
            Err(e) => {
                if !st.powered_off {
                    // Linux after a failed fsync: the dirty pages are marked clean and the
                    // writes they held never reach the disk. Reads still see them.
                    st.absorb_maps(self.ino);
                    st.file_mut(self.ino).pending.clear();
                }
                Err(e)
            }
        }
    }

    fn map_read(&self) -> Result<ReadMap> {
        self.fs.file_op(self, OpKind::Map, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            if file.live.is_empty() {
                return Ok(ReadMap {
                    inner: ReadMapInner::Empty,
                });
            }
            file.read_maps += 1;
            Ok(ReadMap {
                inner: ReadMapInner::Sim(SimReadMap {
                    bytes: file.live.clone(),
                    fs: Arc::downgrade(&self.fs.inner),
                    ino: self.ino,
                }),
            })
        })
    }

    fn map_private(&self, len_bytes: usize) -> Result<MapMut> {
        self.fs.file_op(self, OpKind::Map, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            if len_bytes > file.live.len() {
                return Err(Error::Contract {
                    path: self.path.clone(),
                    rule: "map_private longer than the file",
                });
            }
            MapMut::private_copy(&self.path, &file.live[..len_bytes], len_bytes)
        })
    }

    fn map_mut(&self, len_bytes: usize) -> Result<MapMut> {
        self.fs.file_op(self, OpKind::Map, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            if len_bytes == 0 || len_bytes > file.live.len() {
                return Err(Error::Contract {
                    path: self.path.clone(),
                    rule: "map_mut must cover 1..=file length bytes",
                });
            }
            let mut anon = memmap2::MmapOptions::new()
                .len(len_bytes)
                .map_anon()
                .map_err(|e| Error::io(OpKind::Map, &self.path, e))?;
            anon.copy_from_slice(&file.live[..len_bytes]);
            let raw = Arc::new(memmap2::MmapRaw::from(anon));
            file.maps.push(Arc::downgrade(&raw));
            Ok(MapMut {
                raw,
                len: len_bytes,
                path: self.path.clone(),
                backend: MapBackend::Sim(SimMapLink {
                    fs: self.fs.clone(),
                    ino: self.ino,
                }),
            })
        })
    }
}

/// The simulator's read-only map: a copy of the file taken when mapped. The simulator
/// refuses writes to the file while it lives, so the copy never goes stale.
pub(crate) struct SimReadMap {
    bytes: Vec<u8>,
    fs: Weak<SimInner>,
    ino: Ino,
}

impl SimReadMap {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for SimReadMap {
    fn drop(&mut self) {
        if let Some(inner) = self.fs.upgrade() {
            let mut st = inner.lock();
            if let Some(Inode::File(f)) = st.inodes.get_mut(&self.ino) {
                f.read_maps = f.read_maps.saturating_sub(1);
            }
        }
    }
}

/// Ties a simulated writable map to its file.
pub(crate) struct SimMapLink {
    fs: SimFs,
    ino: Ino,
}

impl SimMapLink {
    pub(crate) fn flush(&self, map: &MapMut, offset: usize, len: usize) -> Result<()> {
        let mut st = self.fs.lock();
        match st.begin(OpKind::FlushMap, &map.path) {
            Ok(_) => {
                // msync makes durable only the range asked for: pending writes (map pages
                // and positioned writes alike) are split, the parts inside the range applied
                // in order, the rest left pending.
                st.absorb_maps(self.ino);
                let start = offset as u64;
                let end = start.saturating_add(len as u64);
                let file = st.file_mut(self.ino);
                let mut keep = Vec::new();
                for p in std::mem::take(&mut file.pending) {
                    match p {
                        Pending::Write { offset: w, data } => {
                            let w_end = w + data.len() as u64;
                            let lo = w.max(start);
                            let hi = w_end.min(end);
                            if lo < hi {
                                let inside = Pending::Write {
                                    offset: lo,
                                    data: data[(lo - w) as usize..(hi - w) as usize].to_vec(),
                                };
                                apply_pending(&mut file.durable, &inside);
                                if w < lo {
                                    keep.push(Pending::Write {
                                        offset: w,
                                        data: data[..(lo - w) as usize].to_vec(),
                                    });
                                }
                                if hi < w_end {
                                    keep.push(Pending::Write {
                                        offset: hi,
                                        data: data[(hi - w) as usize..].to_vec(),
                                    });
                                }
                            } else {
                                keep.push(Pending::Write { offset: w, data });
                            }
                        }
                        other => keep.push(other),
                    }
                }
                file.pending = keep;
                st.stats.file_syncs += 1;
                Ok(())
            }
            Err(e) => {
                if !st.powered_off {
                    st.absorb_maps(self.ino);
                    st.file_mut(self.ino).pending.clear();
                }
                Err(e)
            }
        }
    }
}
