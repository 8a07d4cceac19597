//! Every fail point the checkpointer declares (`vellum_checkpoint::fail_points::ALL`) is
//! reached by an ordinary commit, and it reaches no fail point it does not declare.

use std::path::Path;

use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec, FileSpec, fail_points};
use vellum_fs::SimFs;

#[test]
fn every_declared_fail_point_is_reached_and_no_other() {
    let fs = SimFs::new();
    let (mut cp, _) =
        Checkpointer::open(fs.shared(), Path::new("/cp"), CheckpointConfig::default()).unwrap();
    let files = [FileSpec {
        name: "data",
        bytes: b"bytes",
        codec: Codec::None,
    }];
    cp.commit(1, b"meta", &files).unwrap();
    cp.commit(2, b"meta", &files).unwrap();
    fs.check_fail_points("checkpoint::", fail_points::ALL)
        .unwrap();
}
