//! Importing archives from streams (`Database::import_snapshot_streams`, what a restore from
//! object storage uses): the result equals the exported collection, and no database-wide lock
//! is held while a stream is read — other collections are created and exported meanwhile,
//! and a collection created under the same name meanwhile wins, the import leaving nothing.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use vellum::{CollectionConfig, Database, Error, Metric, Point};
use vellum_snapshot_format::{ByteSource, SliceSource, read_summary_with};

fn options() -> vellum::DatabaseOptions {
    common::options(64 << 10, 128)
}

/// An archive held in memory, announcing its first read and waiting for a go before it.
struct Gated {
    bytes: Vec<u8>,
    pos: usize,
    entered: Option<mpsc::Sender<()>>,
    go: Option<mpsc::Receiver<()>>,
}

impl ByteSource for Gated {
    fn read_exact(&mut self, buf: &mut [u8]) -> vellum_snapshot_format::Result<()> {
        if let Some(tx) = self.entered.take() {
            tx.send(()).unwrap();
        }
        if let Some(rx) = self.go.take() {
            rx.recv().unwrap();
        }
        let mut src = SliceSource::new(&self.bytes[self.pos..]);
        src.read_exact(buf)?;
        self.pos += buf.len();
        Ok(())
    }
    fn at_end(&mut self) -> vellum_snapshot_format::Result<bool> {
        Ok(self.pos == self.bytes.len())
    }
}

fn archive_of(db: &Database, name: &str, dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join(format!("{name}.vsnap"));
    db.export_snapshot(name, &path, vellum::Compression::None)
        .unwrap();
    std::fs::read(&path).unwrap()
}

fn summary(
    bytes: &[u8],
) -> (
    vellum_snapshot_format::ArchiveHeader,
    vellum_snapshot_format::Footer,
) {
    let (h, _, f) = read_summary_with(bytes.len() as u64, &mut |buf, at| {
        buf.copy_from_slice(&bytes[at as usize..at as usize + buf.len()]);
        Ok(())
    })
    .unwrap();
    (h, f)
}

fn collection_dirs(db: &Database) -> usize {
    std::fs::read_dir(db.path().join("collections"))
        .unwrap()
        .count()
}

#[test]
fn a_streamed_import_holds_no_database_lock_and_loses_a_name_race_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db"), options()).unwrap();
    let c = db
        .create_collection("docs", CollectionConfig::new(4, Metric::L2))
        .unwrap();
    c.upsert_batch((0..300u64).map(|i| Point::new(i, vec![i as f32, 1.0, 2.0, 3.0])))
        .unwrap();
    let bytes = archive_of(&db, "docs", dir.path());
    let summaries = vec![summary(&bytes)];

    // First a clean streamed import: the same points.
    let copy = db
        .import_snapshot_streams(
            &summaries,
            &mut |_| {
                Ok(Box::new(Gated {
                    bytes: bytes.clone(),
                    pos: 0,
                    entered: None,
                    go: None,
                }))
            },
            "copy",
        )
        .unwrap();
    assert_eq!(copy.len(), 300);
    assert_eq!(
        copy.get(299).unwrap().unwrap().vector,
        vec![299.0, 1.0, 2.0, 3.0]
    );

    // Then one held at its first read while the database is used.
    let dirs_before = collection_dirs(&db);
    let (entered_tx, entered_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let importing = {
        let (db, bytes, summaries) = (db.clone(), bytes.clone(), summaries.clone());
        std::thread::spawn(move || {
            let mut gated = Some(Gated {
                bytes,
                pos: 0,
                entered: Some(entered_tx),
                go: Some(go_rx),
            });
            db.import_snapshot_streams(
                &summaries,
                &mut |_| Ok(Box::new(gated.take().unwrap())),
                "late",
            )
            .map(|c| c.len())
        })
    };
    entered_rx.recv().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let user = {
        let (db, dir) = (db.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            db.create_collection("other", CollectionConfig::new(4, Metric::L2))
                .unwrap();
            archive_of(&db, "docs", &dir);
            let winner = db
                .create_collection("late", CollectionConfig::new(4, Metric::L2))
                .unwrap();
            winner.upsert(Point::new(1, vec![0.0; 4])).unwrap();
            done_tx.send(()).unwrap();
        })
    };
    // A failure detector, not a synchronization: under a lock held across the stream, the
    // user's calls would wait for the import, which waits for `go`.
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("creating and exporting collections waited for the import's stream");
    user.join().unwrap();
    go_tx.send(()).unwrap();
    let lost = importing.join().unwrap();
    assert!(
        matches!(lost, Err(Error::CollectionExists { ref name }) if name == "late"),
        "{lost:?}"
    );
    assert_eq!(
        db.collection("late").unwrap().len(),
        1,
        "the created one won"
    );
    // "other" and "late" were created; the import's own directory is gone.
    assert_eq!(collection_dirs(&db), dirs_before + 2);
    drop((c, copy, db));
    let db = Database::open(dir.path().join("db"), options()).unwrap();
    assert_eq!(db.collection("late").unwrap().len(), 1);
    assert_eq!(db.collection("copy").unwrap().len(), 300);
}
