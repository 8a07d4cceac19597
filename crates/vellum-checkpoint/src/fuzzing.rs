//! Entry point of the `checkpoint_manifest` fuzz target, kept here so its committed corpus
//! replays as an ordinary test.

use std::path::Path;

use vellum_fs::{Fs, SimFs};

use crate::manifest::Manifest;
use crate::{CheckpointConfig, Checkpointer, LoadOptions};

/// Feeds arbitrary bytes to the manifest decoder (whatever decodes must re-encode to the
/// same bytes), then publishes them as `CURRENT` of a checkpoint directory on the simulator
/// and opens it, with and without fallback: never a panic, a hang or an unbounded
/// allocation.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data) {
        let again = m.encode();
        if data.get(8..12) == Some(&crate::manifest::MANIFEST_VERSION.to_le_bytes()[..]) {
            assert_eq!(again, data, "a decoded manifest re-encodes to its bytes");
        } else {
            // An older version re-encodes as the current one, to the same manifest.
            assert_eq!(
                Manifest::decode(&again).as_ref(),
                Ok(&m),
                "an upgraded manifest decodes to what was read"
            );
        }
    }
    let fs = SimFs::new();
    let dir = Path::new("/ck");
    if vellum_fs::create_dir_all_durable(&fs, dir).is_err() {
        return;
    }
    let Ok(file) = fs.create(&dir.join(crate::CURRENT_NAME)) else {
        return;
    };
    if file.write_at(data, 0).is_err() || file.sync_data().is_err() {
        return;
    }
    drop(file);
    // A data file every generation-1 manifest naming "state" would find (possibly wrong).
    if let Ok(f) = fs.create(&dir.join(crate::data_file_name(1, "state"))) {
        let _ = f.write_at(&data[..data.len().min(64)], 0);
    }
    for fallback_to_previous in [false, true] {
        let _ = Checkpointer::open_with(
            fs.shared(),
            dir,
            CheckpointConfig::default(),
            LoadOptions {
                fallback_to_previous,
            },
        );
    }
}
