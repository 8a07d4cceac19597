//! Output helpers shared by the commands: metric names, the progress bar, and the text and
//! JSON forms of snapshot metadata and of a torn log tail cut at open.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use vellum::Metric;

pub(crate) fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::L2 => "l2",
        Metric::Cosine => "cosine",
        Metric::Dot => "dot",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

pub(crate) fn snapshot_json(m: &vellum::SnapshotMeta) -> serde_json::Value {
    json!({
        "id": m.id.to_hex(), "kind": format!("{:?}", m.kind), "parent": m.parent.map(|p| p.to_hex()),
        "lsn_start": m.lsn_start, "lsn_end": m.lsn_end, "created_unix_ms": m.created_unix_ms,
        "archive_bytes": m.archive_bytes,
    })
}

/// What opening did about a torn log tail, in one line for people.
pub(crate) fn describe_tail_cut(cut: &vellum::TailCut) -> String {
    format!(
        "opening cut a torn log tail: {} bytes from offset {} of {} (LSN {} on{}), written \
         when a crash interrupted writes that were never acknowledged ({})",
        cut.bytes,
        cut.offset,
        cut.segment.display(),
        cut.lsn,
        if cut.dropped_frames > 0 {
            format!(", and {} later unacknowledged frame(s)", cut.dropped_frames)
        } else {
            String::new()
        },
        cut.reason
    )
}

pub(crate) fn tail_cut_json(cut: &vellum::TailCut) -> serde_json::Value {
    json!({
        "segment": cut.segment.display().to_string(), "offset": cut.offset, "lsn": cut.lsn,
        "bytes": cut.bytes, "dropped_frames": cut.dropped_frames, "reason": cut.reason,
    })
}
