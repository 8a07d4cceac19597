//! vellum-mmap-vectors alone: upsert, checkpoint, reopen and read, by path on the real file
//! system (its checkpointer through the `checkpoint` re-export).

use vellum_mmap_vectors::checkpoint::{CheckpointConfig, Checkpointer};
use vellum_mmap_vectors::{CHECKPOINTS_DIR, StoreConfig, VECTORS_DIR, VectorStore};

#[test]
fn a_store_reopens_at_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, mut checkpointer) =
            VectorStore::open_path(dir.path(), StoreConfig::new(3)).unwrap();
        store.upsert(7, &[1.0, 2.0, 3.0]).unwrap();
        store.upsert(8, &[4.0, 5.0, 6.0]).unwrap();
        store.delete(8).unwrap();
        let info = store.checkpoint(&mut checkpointer, 3, b"").unwrap();
        assert_eq!(info.generation, 1);
        store.upsert(9, &[7.0, 8.0, 9.0]).unwrap();
    }
    assert!(dir.path().join(VECTORS_DIR).is_dir());
    assert!(dir.path().join(CHECKPOINTS_DIR).is_dir());
    let (store, checkpointer) = VectorStore::open_path(dir.path(), StoreConfig::new(3)).unwrap();
    assert_eq!(checkpointer.current().map(|m| m.wal_lsn), Some(3));
    assert_eq!(store.get(7).unwrap(), Some(&[1.0, 2.0, 3.0][..]));
    assert_eq!(store.get(8).unwrap(), None);
    assert_eq!(store.get(9).unwrap(), None);
    assert_eq!(store.len(), 1);
    assert!(store.verify().unwrap().damaged.is_empty());
}

#[test]
fn a_store_opens_from_a_checkpointer_of_the_callers_choosing() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = dir.path().join("my-vectors");
    let checkpoints = dir.path().join("my-checkpoints");
    let config = CheckpointConfig {
        retain_generations: 1,
        ..CheckpointConfig::default()
    };
    {
        let (mut checkpointer, loaded) = Checkpointer::open_path(&checkpoints, config).unwrap();
        let mut store = VectorStore::open_from_path(
            &vectors,
            StoreConfig::new(2),
            &checkpointer,
            loaded.as_ref(),
        )
        .unwrap();
        for id in 0..1000u64 {
            store.upsert(id, &[id as f32, -(id as f32)]).unwrap();
        }
        store.checkpoint(&mut checkpointer, 1000, b"meta").unwrap();
    }
    let (checkpointer, loaded) = Checkpointer::open_path(&checkpoints, config).unwrap();
    assert_eq!(loaded.as_ref().map(|l| l.metadata()), Some(&b"meta"[..]));
    let store = VectorStore::open_from_path(
        &vectors,
        StoreConfig::new(2),
        &checkpointer,
        loaded.as_ref(),
    )
    .unwrap();
    assert_eq!(store.len(), 1000);
    assert_eq!(store.get(999).unwrap(), Some(&[999.0, -999.0][..]));
}
