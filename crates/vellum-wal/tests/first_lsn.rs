//! `WalOptions::first_lsn`: a log created empty continues an LSN sequence (a restored
//! database's log starts after its checkpoint); an existing log ignores the option.

use std::path::Path;

use vellum_fs::SimFs;
use vellum_wal::{Wal, WalOptions};

fn opts(first_lsn: u64) -> WalOptions {
    WalOptions {
        segment_size_bytes: 64 << 10,
        max_record_bytes: 4 << 10,
        first_lsn,
        ..WalOptions::default()
    }
}

#[test]
fn an_empty_log_starts_at_first_lsn_and_keeps_it_across_reopen() {
    let fs = SimFs::new();
    let (wal, rec) = Wal::open(fs.shared(), Path::new("/wal"), opts(501)).unwrap();
    assert_eq!((rec.first_lsn, rec.last_lsn), (501, 500));
    assert_eq!(wal.append(b"a").unwrap(), 501);
    assert_eq!(
        wal.append_batch(&[b"b".as_slice(), b"c"]).unwrap(),
        502..=503
    );
    drop(wal);
    // Reopened with the default option: the log's own LSNs win.
    let image = {
        fs.cut_power();
        fs.crash_drop_unsynced()
    };
    let (wal, rec) = Wal::open(image.shared(), Path::new("/wal"), opts(1)).unwrap();
    assert_eq!((rec.first_lsn, rec.last_lsn), (501, 503));
    let got: Vec<(u64, Vec<u8>)> = wal
        .iter_from(501)
        .unwrap()
        .map(|r| r.unwrap())
        .map(|r| (r.lsn, r.data))
        .collect();
    assert_eq!(
        got,
        vec![
            (501, b"a".to_vec()),
            (502, b"b".to_vec()),
            (503, b"c".to_vec())
        ]
    );
    assert_eq!(wal.append(b"d").unwrap(), 504);
}

#[test]
fn a_zero_first_lsn_is_refused() {
    let fs = SimFs::new();
    assert!(Wal::open(fs.shared(), Path::new("/wal"), opts(0)).is_err());
}
