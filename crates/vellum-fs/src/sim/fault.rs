//! Fault injection for the simulator: countdown faults, and the check every operation
//! starts with (power, countdown, faults). Named fail points are in `failpoints.rs`.

use std::io;
use std::path::Path;

use super::sim_fs::SimFs;
use super::state::State;
use crate::error::{Error, OpKind, Result};

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The operation fails with `EIO`. A failed `sync_data` or map flush also drops the
    /// file's pending writes, as Linux does: they will never reach the disk.
    Eio,
    /// The operation fails with `ENOSPC` (disk full).
    Enospc,
    /// A write stores only the first half of its bytes, then fails with `EIO`; on any other
    /// operation this is the same as [`Fault::Eio`].
    ShortWrite,
    /// The power goes out just before the operation: it and every later operation fail, and
    /// the file system is frozen for [`crate::SimFs::crash_images`].
    PowerCut,
}

impl Fault {
    pub(crate) fn to_io_error(self) -> io::Error {
        match self {
            // Linux errno values; `from_raw_os_error` keeps the code and the OS message.
            Fault::Eio | Fault::ShortWrite => io::Error::from_raw_os_error(5),
            Fault::Enospc => io::Error::from_raw_os_error(28),
            Fault::PowerCut => power_loss_error(),
        }
    }
}

pub(crate) fn power_loss_error() -> io::Error {
    io::Error::other("simulated power loss: the file system is frozen")
}

/// A countdown fault: fails the `nth` matching operation (1-based).
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Only operations of this kind count (any kind when `None`).
    pub kind: Option<OpKind>,
    /// Only operations on paths containing this text count (any path when `None`).
    pub path_contains: Option<String>,
    /// Which matching operation fails, counting from 1.
    pub nth: u64,
    /// What happens to it.
    pub fault: Fault,
    /// Keep failing every matching operation after the first (a disk that stays full).
    pub sticky: bool,
    pub(crate) seen: u64,
    pub(crate) fired: bool,
}

impl FaultRule {
    /// Fails the `nth` operation of any kind.
    pub fn nth_op(nth: u64, fault: Fault) -> Self {
        FaultRule {
            kind: None,
            path_contains: None,
            nth,
            fault,
            sticky: false,
            seen: 0,
            fired: false,
        }
    }

    /// Fails the `nth` operation of `kind`.
    pub fn nth_of(kind: OpKind, nth: u64, fault: Fault) -> Self {
        FaultRule {
            kind: Some(kind),
            ..FaultRule::nth_op(nth, fault)
        }
    }

    /// Only count operations on paths containing `text`.
    pub fn on_path(mut self, text: impl Into<String>) -> Self {
        self.path_contains = Some(text.into());
        self
    }

    /// Keep failing after the first failure.
    pub fn sticky(mut self) -> Self {
        self.sticky = true;
        self
    }

    /// Whether this rule fails the operation `kind` on `path`; advances its count.
    pub(crate) fn check(&mut self, kind: OpKind, path: &str) -> Option<Fault> {
        if self.kind.is_some_and(|k| k != kind) {
            return None;
        }
        if let Some(text) = &self.path_contains
            && !path.contains(text.as_str())
        {
            return None;
        }
        if self.fired {
            return self.sticky.then_some(self.fault);
        }
        self.seen += 1;
        if self.seen == self.nth {
            self.fired = true;
            return Some(self.fault);
        }
        None
    }
}

impl State {
    /// Every operation starts here: power, countdown, faults.
    pub(super) fn begin(&mut self, op: OpKind, path: &Path) -> Result<Option<Fault>> {
        if self.powered_off {
            return Err(Error::io(op, path, power_loss_error()));
        }
        if self.power_cut_after.is_some_and(|n| self.stats.ops >= n) {
            self.powered_off = true;
            return Err(Error::io(op, path, power_loss_error()));
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
                Err(Error::io(op, path, power_loss_error()))
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
}

impl SimFs {
    /// Adds a countdown fault.
    pub fn inject(&self, rule: FaultRule) {
        self.lock().faults.push(rule);
    }

    /// Limits the bytes all files may hold together (a disk of that size; `None`: no
    /// limit). A write, `set_len` or `allocate` that would pass it fails with `ENOSPC` and
    /// changes nothing; what is already stored stays.
    pub fn limit_space(&self, bytes: Option<u64>) {
        self.lock().space_limit = bytes;
    }

    /// Removes every countdown fault and disarms every fail point.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.faults.clear();
        for fp in st.fail_points.values_mut() {
            fp.action = None;
        }
    }
}
