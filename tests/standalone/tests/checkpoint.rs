//! vellum-checkpoint alone: commit generations of files and load them back, by path on the
//! real file system.

use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec, FileSpec, LoadOptions};

#[test]
fn a_committed_generation_loads_back_whole_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let ids = vec![1u8; 4096];
    {
        let (mut cp, loaded) =
            Checkpointer::open_path(&checkpoints, CheckpointConfig::default()).unwrap();
        assert!(loaded.is_none());
        let info = cp
            .commit(
                42,
                b"my metadata",
                &[
                    FileSpec {
                        name: "ids",
                        bytes: &ids,
                        codec: Codec::Zstd { level: 3 },
                    },
                    FileSpec {
                        name: "settings",
                        bytes: b"dim=3",
                        codec: Codec::None,
                    },
                ],
            )
            .unwrap();
        assert_eq!((info.generation, info.wal_lsn), (1, 42));
    }
    let (cp, loaded) = Checkpointer::open_path(&checkpoints, CheckpointConfig::default()).unwrap();
    let loaded = loaded.expect("generation 1 was committed");
    assert_eq!((loaded.generation(), loaded.wal_lsn()), (1, 42));
    assert_eq!(loaded.metadata(), b"my metadata");
    assert_eq!(loaded.file("ids"), Some(ids.as_slice()));
    assert_eq!(loaded.file("settings"), Some(&b"dim=3"[..]));
    assert_eq!(cp.oldest_retained_wal_lsn(), Some(42));
}

#[test]
fn retention_keeps_the_configured_number_of_generations() {
    let dir = tempfile::tempdir().unwrap();
    let config = CheckpointConfig {
        retain_generations: 2,
        ..CheckpointConfig::default()
    };
    let (mut cp, _) = Checkpointer::open_path(dir.path(), config).unwrap();
    for lsn in [10, 20, 30] {
        let bytes = lsn.to_string();
        let file = FileSpec {
            name: "state",
            bytes: bytes.as_bytes(),
            codec: Codec::None,
        };
        cp.commit(lsn, b"", &[file]).unwrap();
    }
    assert_eq!(cp.retained_generations(), [2, 3]);
    assert_eq!(cp.oldest_retained_wal_lsn(), Some(20));
    drop(cp);
    let (_, loaded) =
        Checkpointer::open_path_with(dir.path(), config, LoadOptions::default()).unwrap();
    assert_eq!(loaded.unwrap().file("state"), Some(&b"30"[..]));
}
