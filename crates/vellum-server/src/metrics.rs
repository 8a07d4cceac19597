//! Counters and latency histograms of one server, rendered in Prometheus' text format at
//! `GET /metrics`. Everything is an atomic: recording never takes a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram (cumulative buckets are computed when rendered).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let le = *b as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// What one server counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Acknowledged write requests (upserts, deletes, collection changes).
    pub writes: AtomicU64,
    /// Points written or deleted by them.
    pub points_written: AtomicU64,
    /// Write requests that failed or were refused.
    pub write_errors: AtomicU64,
    /// Searches answered.
    pub searches: AtomicU64,
    /// Write latency, until acknowledged.
    pub write_latency: Histogram,
    /// Search latency.
    pub search_latency: Histogram,
    /// Snapshot creation time.
    pub snapshot_duration: Histogram,
    /// Checkpoint time (shutdown, explicit).
    pub checkpoint_duration: Histogram,
}

/// One gauge line set: name, help, and its samples (labels, value).
#[derive(Debug)]
pub struct Gauge<'a> {
    /// Its name.
    pub name: &'a str,
    /// What it measures.
    pub help: &'a str,
    /// `(labels, value)`, labels already formatted (`collection="a"`) or empty.
    pub samples: Vec<(String, f64)>,
}

impl Metrics {
    /// Prometheus text: the counters, histograms and the gauges given.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let v = v.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "vellum_writes_total",
            "Acknowledged write requests.",
            &self.writes,
        );
        counter(
            &mut out,
            "vellum_points_written_total",
            "Points written or deleted by acknowledged writes.",
            &self.points_written,
        );
        counter(
            &mut out,
            "vellum_write_errors_total",
            "Write requests refused or failed.",
            &self.write_errors,
        );
        counter(
            &mut out,
            "vellum_searches_total",
            "Searches answered.",
            &self.searches,
        );
        self.write_latency.render(
            &mut out,
            "vellum_write_duration_seconds",
            "Time until a write is acknowledged.",
        );
        self.search_latency
            .render(&mut out, "vellum_search_duration_seconds", "Search time.");
        self.snapshot_duration.render(
            &mut out,
            "vellum_snapshot_duration_seconds",
            "Time to create a collection snapshot.",
        );
        self.checkpoint_duration.render(
            &mut out,
            "vellum_checkpoint_duration_seconds",
            "Time to checkpoint every collection.",
        );
        for g in gauges {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", g.name, g.help, g.name);
            for (labels, v) in &g.samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{} {v}", g.name);
                } else {
                    let _ = writeln!(out, "{}{{{labels}}} {v}", g.name);
                }
            }
        }
        out
    }
}

/// A label value escaped for the text format.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
