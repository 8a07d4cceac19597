//! Fail-stop: after the first I/O error, refuse every later write until reopen.
//!
//! Retrying a failed `fsync` is how engines lose acknowledged data (the kernel may have
//! dropped the dirty pages), and writing on after a failed write leaves holes. So every
//! engine layer owns a [`FailStop`], passes each fallible I/O result through
//! [`FailStop::guard`], and checks [`FailStop::check`] before starting work. Recovery happens
//! by reopening, from what is durable.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A latch that turns the first error into "poisoned, reopen required" for every later call.
#[derive(Debug, Default)]
pub struct FailStop {
    poisoned: AtomicBool,
    cause: Mutex<Option<String>>,
}

impl FailStop {
    /// A healthy latch.
    pub fn new() -> Self {
        FailStop::default()
    }

    /// `Ok` while healthy, [`Error::Poisoned`] naming the first failure afterwards.
    pub fn check(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let cause = self
            .cause
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "unknown error".to_owned());
        Err(Error::Poisoned { cause })
    }

    /// Whether an error has been latched.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Latches `cause` (the first cause wins), and reports it as a `tracing` error event
    /// (a failed `fsync` is the case that matters: the layer refuses writes from now on).
    pub fn poison(&self, cause: &dyn std::fmt::Display) {
        let mut slot = self.cause.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(cause.to_string());
            tracing::error!(
                %cause,
                "I/O failed: this layer refuses every write until the database is reopened \
                 (recovery then starts from what is durable)"
            );
        }
        self.poisoned.store(true, Ordering::Release);
    }

    /// Passes `result` through, latching its error if it has one.
    pub fn guard<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && !e.is_poisoned()
        {
            self.poison(e);
        }
        result
    }

    /// Checks the latch, runs `f`, and latches its error.
    pub fn run<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check()?;
        self.guard(f())
    }
}
