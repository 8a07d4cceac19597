//! Every fail point the log declares (`vellum_wal::fail_points::ALL`) is reached by an
//! ordinary run, and the log reaches no fail point it does not declare: a test that arms a
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
    let (_wal, rec) = Wal::open(fs.shared(), DIR, opts).unwrap();
    assert!(rec.tail_cut.is_some());
    fs.check_fail_points("wal::", fail_points::ALL).unwrap();
}
