//! A crash-test harness: run a scenario on a [`SimFs`], cut the power at many points, build
//! the crash images of each moment, reopen each, and check an invariant.

use std::fmt;

use crate::rng::SplitMix64;
use crate::sim::{CrashModel, SimFs};

/// Which moments to cut the power at. A moment is "after the first k operations".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashPoints {
    /// After every operation (exhaustive; for short scenarios).
    EveryOp,
    /// Just before and just after every sync (file, directory, map), and at the end.
    AroundSyncs,
    /// This many moments drawn at random (plus the end).
    Sample(usize),
}

/// How a crash test runs.
#[derive(Debug, Clone, Copy)]
pub struct CrashHarness {
    /// The power-loss model for building images.
    pub model: CrashModel,
    /// The most images built per moment (all of them when there are fewer).
    pub images_per_point: usize,
    /// Which moments to crash at.
    pub points: CrashPoints,
    /// Seed for sampling moments and images.
    pub seed: u64,
}

impl Default for CrashHarness {
    fn default() -> Self {
        CrashHarness {
            model: CrashModel::torn_512(),
            images_per_point: 16,
            points: CrashPoints::AroundSyncs,
            seed: 0x5EED,
        }
    }
}

/// What a crash test checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Operations the uncut scenario ran.
    pub scenario_ops: u64,
    /// Moments the power was cut at.
    pub crash_points: usize,
    /// Crash images reopened and checked.
    pub images: usize,
}

impl CrashReport {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: CrashReport) {
        self.scenario_ops += other.scenario_ops;
        self.crash_points += other.crash_points;
        self.images += other.images;
    }
}

impl fmt::Display for CrashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {} crash images at {} crash points (scenario of {} operations)",
            self.images, self.crash_points, self.scenario_ops
        )
    }
}

impl CrashHarness {
    /// A harness with `model`, the other settings default.
    pub fn with_model(model: CrashModel) -> Self {
        CrashHarness {
            model,
            ..CrashHarness::default()
        }
    }

    /// Runs the test. `scenario` does its work on the file system it is given and returns
    /// what it needs to judge a recovery (typically what was acknowledged); when the power
    /// is cut, its operations start failing and it should stop and return what it has.
    /// `check` gets each crash image (a fresh, fully durable `SimFs`) and that value, reopens,
    /// and returns `Err` with an explanation if the invariant does not hold.
    ///
    /// # Panics
    ///
    /// On the first failed check, with the moment, image number and seed to reproduce it.
    #[track_caller]
    pub fn run<T>(
        &self,
        scenario: impl Fn(&SimFs) -> T,
        check: impl Fn(&SimFs, &T) -> Result<(), String>,
    ) -> CrashReport {
        match self.try_run(scenario, check) {
            Ok(report) => report,
            Err(failure) => panic!("{failure}"),
        }
    }

    /// As [`CrashHarness::run`], returning the first failed check instead of panicking (for
    /// tests that prove a broken procedure is caught).
    pub fn try_run<T>(
        &self,
        scenario: impl Fn(&SimFs) -> T,
        check: impl Fn(&SimFs, &T) -> Result<(), String>,
    ) -> Result<CrashReport, CrashFailure> {
        let dry = SimFs::new();
        dry.record_ops();
        let _ = scenario(&dry);
        let log = dry.op_log();
        let total_ops = log.len() as u64;

        let mut points: Vec<u64> = match self.points {
            CrashPoints::EveryOp => (0..=total_ops).collect(),
            CrashPoints::AroundSyncs => {
                let mut p = vec![0];
                for (i, op) in log.iter().enumerate() {
                    if op.is_sync() {
                        p.push(i as u64);
                        p.push(i as u64 + 1);
                    }
                }
                p
            }
            CrashPoints::Sample(n) => {
                let mut rng = SplitMix64::new(self.seed ^ 0xC0FFEE);
                (0..n).map(|_| rng.below(total_ops + 1)).collect()
            }
        };
        points.push(total_ops);
        points.sort_unstable();
        points.dedup();

        let mut report = CrashReport {
            scenario_ops: total_ops,
            ..CrashReport::default()
        };
        for &k in &points {
            let fs = SimFs::new();
            fs.cut_power_after(k);
            let outcome = scenario(&fs);
            fs.cut_power();
            let images = fs.crash_images(&self.model, self.images_per_point, self.seed ^ k);
            for (n, image) in images.enumerate() {
                if let Err(why) = check(&image, &outcome) {
                    return Err(CrashFailure {
                        after_ops: k,
                        scenario_ops: total_ops,
                        image: n,
                        model: self.model,
                        seed: self.seed,
                        why,
                    });
                }
                report.images += 1;
            }
            report.crash_points += 1;
        }
        Ok(report)
    }
}

/// A crash check that failed: where, and why.
#[derive(Debug, Clone)]
pub struct CrashFailure {
    /// The power was cut after this many operations.
    pub after_ops: u64,
    /// Operations of the uncut scenario.
    pub scenario_ops: u64,
    /// Which image of that moment failed.
    pub image: usize,
    /// The crash model.
    pub model: CrashModel,
    /// The harness seed.
    pub seed: u64,
    /// The check's explanation.
    pub why: String,
}

impl fmt::Display for CrashFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crash check failed after {} of {} operations, image {} (model {:?}, seed {:#x}): {}",
            self.after_ops, self.scenario_ops, self.image, self.model, self.seed, self.why
        )
    }
}

impl std::error::Error for CrashFailure {}
