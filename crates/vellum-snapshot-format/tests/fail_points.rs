//! Every fail point the crate declares (`vellum_snapshot_format::fail_points::ALL`) is
//! reached by an ordinary chunked import and a restore over an existing collection, and the
//! crate reaches no fail point it does not declare.

mod common;

use common::*;
use vellum_fs::{Fs, SimFs};
use vellum_snapshot_format::{fail_points, restore_chain};

#[test]
fn every_declared_fail_point_is_reached_and_no_other() {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(1));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(1, 10), 4096);
    import(&fs, &chunks, "/in/staging", "/a.vsnap").unwrap();
    // Restored twice: the second time over the first, so the target is set aside.
    restore_chain(&fs, &[p("/a.vsnap")], &p("/db")).unwrap();
    restore_chain(&fs, &[p("/a.vsnap")], &p("/db")).unwrap();
    assert!(fs.exists(&p("/db")).unwrap());
    fs.check_fail_points("snapshot::", fail_points::ALL)
        .unwrap();
}
