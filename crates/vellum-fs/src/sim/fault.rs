//! Fault injection for the simulator: countdown faults and named fail points.

use std::io;

use crate::error::OpKind;

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
