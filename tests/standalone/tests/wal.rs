//! vellum-wal alone: append, sync, reopen and read back, by path on the real file system.

use vellum_wal::{SyncPolicy, Wal, WalOptions};

#[test]
fn records_appended_and_synced_are_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal");
    {
        let (wal, recovery) = Wal::open_path(&log, WalOptions::default()).unwrap();
        assert_eq!(recovery.last_lsn, 0);
        assert_eq!(wal.append(b"first").unwrap(), 1);
        assert_eq!(
            wal.append_batch(&[b"second".as_slice(), b"third"]).unwrap(),
            2..=3
        );
        assert_eq!(wal.sync().unwrap(), 3);
    }
    let (wal, recovery) = Wal::open_path(&log, WalOptions::default()).unwrap();
    assert_eq!((recovery.first_lsn, recovery.last_lsn), (1, 3));
    let records: Vec<(u64, Vec<u8>)> = wal
        .iter_from(2)
        .unwrap()
        .map(|r| r.map(|r| (r.lsn, r.data)).unwrap())
        .collect();
    assert_eq!(records, [(2, b"second".to_vec()), (3, b"third".to_vec())]);
    assert_eq!(wal.append(b"fourth").unwrap(), 4);
}

#[test]
fn an_explicit_sync_makes_never_policy_appends_durable() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        sync_policy: SyncPolicy::Never,
        ..WalOptions::default()
    };
    {
        let (wal, _) = Wal::open_path(dir.path(), options).unwrap();
        for i in 0..100u32 {
            wal.append(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(wal.sync().unwrap(), 100);
    }
    let (wal, recovery) = Wal::open_path(dir.path(), options).unwrap();
    assert_eq!(recovery.last_lsn, 100);
    let last = wal.iter_from(100).unwrap().next().unwrap().unwrap();
    assert_eq!(last.data, 99u32.to_le_bytes());
}
