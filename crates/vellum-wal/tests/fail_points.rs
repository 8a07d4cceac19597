//! Every fail point the log declares (`vellum_wal::fail_points::ALL`) is reached by an
//! ordinary run (or by the scenario that orders a rotation after a failing group sync), and the log reaches no fail point it does not declare: a test that arms a
//! point by name can never arm one that does not exist.

mod common;

use common::*;
use vellum_fs::SimFs;
use vellum_wal::{SyncPolicy, Wal, fail_points};

#[test]
fn every_declared_fail_point_is_reached_and_no_other() {
    let fs = SimFs::new();
    let opts = small_opts(SyncPolicy::Always);
    let (wal, _) = Wal::open(fs.shared(), DIR, opts).unwrap();
    // Appends under `Always` sync as a group; enough of them rotate to new segments.
    for i in 0..40 {
        wal.append(&payload(0, i, 0, 1, 60)).unwrap();
    }
    drop(wal);
    // Tear the last frame (its end never arrived), so the next open cuts a torn tail.
    let seg = segments(&fs).pop().unwrap();
    fs.tamper(&seg, |b| {
        let end = b.iter().rposition(|&x| x != 0).unwrap() + 1;
        b[end - 16..end].fill(0);
    })
    .unwrap();
    let (wal, rec) = Wal::open(fs.shared(), DIR, opts).unwrap();
    assert!(rec.tail_cut.is_some());
    // The consensus-log operations: a cut and a reset.
    let next = wal.stats().last_lsn + 1;
    wal.append_at(next, &[b"x".as_slice(), b"y"]).unwrap();
    wal.truncate_after(next).unwrap();
    wal.reset(next + 100).unwrap();
    // A rotation beside a failing group sync reaches the two points that order them.
    let race = SimFs::new();
    rotation_beside_a_failed_group_sync(&race).unwrap();
    for point in [
        fail_points::AFTER_GROUP_SYNC,
        fail_points::ROTATION_AWAITS_GROUP_SYNC,
    ] {
        assert!(race.fail_point_hits(point) > 0, "{point}");
    }
    let seen: std::collections::BTreeSet<String> = fs
        .fail_points_seen()
        .into_iter()
        .chain(race.fail_points_seen())
        .filter(|p| p.starts_with("wal::"))
        .collect();
    let declared: std::collections::BTreeSet<String> =
        fail_points::ALL.iter().map(|p| p.to_string()).collect();
    assert_eq!(seen, declared, "reached (left) against declared (right)");
}
