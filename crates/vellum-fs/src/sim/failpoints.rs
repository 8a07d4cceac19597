//! Named fail points: arming them to fail or cut the power, counting their hits, and
//! pausing a thread at one ([`SimFs::pause_at`]).

use std::sync::{Arc, Mutex};

use super::fault::{self, Fault};
use super::sim_fs::SimFs;
use crate::error::{Error, OpKind, Result};

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
pub(super) struct FailPointState {
    pub(super) action: Option<FailAction>,
    /// Fire on the n-th hit (1-based); 0 means every hit.
    nth: u64,
    hits: u64,
}

/// A fail point's hold: the thread that reaches it waits until the test resumes it.
#[derive(Debug, Default)]
pub(super) struct PauseGate {
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

impl SimFs {
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

    /// Checks a crate's declared fail points against what this file system saw: `Err` names
    /// every declared point that was never reached and every reached point whose name starts
    /// with `prefix` but is not declared (a test arming it by name would arm nothing).
    pub fn check_fail_points(&self, prefix: &str, declared: &[&str]) -> Result<(), String> {
        let seen = self.fail_points_seen();
        let missed: Vec<&str> = declared
            .iter()
            .copied()
            .filter(|p| !seen.iter().any(|s| s == p))
            .collect();
        let undeclared: Vec<&String> = seen
            .iter()
            .filter(|s| s.starts_with(prefix) && !declared.contains(&s.as_str()))
            .collect();
        if missed.is_empty() && undeclared.is_empty() {
            return Ok(());
        }
        Err(format!(
            "declared but never reached: {missed:?}; reached but not declared: {undeclared:?}"
        ))
    }

    /// Engine code reached the fail point `name` (the body of [`crate::Fs::fail_point`]):
    /// hold here if a test paused it, count the hit, and act if it is armed to.
    pub(super) fn hit_fail_point(&self, name: &str) -> Result<()> {
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
