//! Hostile snapshot archives imported through the facade: a real collection's files plus
//! files a collection never has (a zstd bomb, thousands of tiny files, a 512-deep name,
//! newlines and right-to-left overrides), and a budget the caller lowers. Each is refused
//! before a byte is written, and the database keeps its collections. Runs on the simulator
//! (which counts the bytes written) and on the real file system.

mod common;

use std::path::{Path, PathBuf};

use vellum::fs::{DynFs, RealFs, SimFs};
use vellum::{
    CollectionConfig, Database, DatabaseOptions, Error, HnswParams, ImportLimits, Metric, Point,
};
use vellum_snapshot_format as snap;

fn options() -> DatabaseOptions {
    common::options(64 << 10, 128)
}

fn vector(i: u64) -> Vec<f32> {
    (0..8)
        .map(|d| ((i * 13 + d * 5) % 61) as f32 / 61.0)
        .collect()
}

fn config() -> CollectionConfig {
    CollectionConfig::new(8, Metric::L2).hnsw(HnswParams {
        m: 8,
        ef_construction: 32,
        ef_search: 32,
        seed: 3,
    })
}

fn fill(db: &Database, name: &str, n: u64) {
    let c = db.create_collection(name, config()).unwrap();
    c.upsert_batch((0..n).map(|i| Point::new(i, vector(i)).with_payload(format!("p{i}"))))
        .unwrap();
}

/// Raw bytes per block of the archives built here (the writer's default).
const BLOCK: usize = 256 << 10;

/// A disk to run the scenario on; `sim` is set on the simulator, which counts bytes.
struct Disk<'a> {
    fs: DynFs,
    root: PathBuf,
    sim: Option<&'a SimFs>,
}

impl Disk<'_> {
    fn write(&self, path: &Path, bytes: &[u8]) {
        self.fs.create_dir_all(path.parent().unwrap()).unwrap();
        let f = self.fs.create(path).unwrap();
        f.write_at(bytes, 0).unwrap();
        f.sync_data().unwrap();
    }

    /// Exports a real collection and restores its archive into a plain directory: the
    /// files a collection snapshot consists of, to build hostile archives from.
    fn collection_files(&self) -> Vec<snap::SourceFile> {
        let db = Database::open_with_fs(self.fs.clone(), self.root.join("src"), options()).unwrap();
        fill(&db, "c", 50);
        let archive = self.root.join("c.vsnap");
        db.export_snapshot("c", &archive, vellum::Compression::None)
            .unwrap();
        drop(db);
        let tree = self.root.join("tree");
        snap::restore_chain(self.fs.as_ref(), &[archive], &tree).unwrap();
        snap::list_generation(self.fs.as_ref(), &tree).unwrap()
    }

    /// An archive written by the crate's writer: `files` plus `extras` as (name, fill byte,
    /// length), zstd-compressed.
    fn archive(
        &self,
        out: &str,
        files: &[snap::SourceFile],
        extras: &[(String, u8, usize)],
    ) -> PathBuf {
        let mut all = files.to_vec();
        for (i, (name, fill, len)) in extras.iter().enumerate() {
            let path = self.root.join("extras").join(i.to_string());
            self.write(&path, &vec![*fill; *len]);
            all.push(snap::SourceFile {
                name: name.clone(),
                path,
            });
        }
        let opts = snap::ExportOptions {
            compression: snap::Compression::Zstd,
            ..snap::ExportOptions::full(snap::SnapshotId::from_seed(9), 1)
        };
        let path = self.root.join(out);
        snap::export_to_file(self.fs.as_ref(), &all, &opts, &path).unwrap();
        path
    }

    fn bytes_written(&self) -> u64 {
        self.sim.map_or(0, |s| s.stats().bytes_written)
    }

    /// Imports `archive` into `db`, expects a refusal that wrote nothing and left the
    /// database's collection directories as they were, and returns the error.
    fn import_refused(&self, db: &Database, archive: &Path) -> snap::Error {
        let collections = self.root.join("db/collections");
        let dirs_before = self.fs.list_dir(&collections).unwrap();
        let before = self.bytes_written();
        let err = match db.import_snapshot(&[archive.to_path_buf()], "copy") {
            Ok(_) => panic!("{}: imported", archive.display()),
            Err(Error::Snapshot(e)) => e,
            Err(other) => panic!("{}: not a snapshot error: {other}", archive.display()),
        };
        assert_eq!(self.bytes_written(), before, "{err}: bytes were written");
        assert_eq!(
            self.fs.list_dir(&collections).unwrap(),
            dirs_before,
            "{err}: a target or staging directory was left behind"
        );
        let names: Vec<String> = db.list_collections().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["keep".to_owned()], "{err}");
        err
    }
}

fn on_every_disk(scenario: impl Fn(&Disk<'_>)) {
    let sim = SimFs::new();
    scenario(&Disk {
        fs: sim.shared(),
        root: PathBuf::from("/t"),
        sim: Some(&sim),
    });
    let dir = tempfile::tempdir().unwrap();
    scenario(&Disk {
        fs: RealFs::shared(),
        root: dir.path().to_path_buf(),
        sim: None,
    });
}

fn refused_name(err: &snap::Error) -> &str {
    match err {
        snap::Error::RefusedName { name, .. } => name,
        other => panic!("expected a refused name, got {other}"),
    }
}

#[test]
fn files_a_collection_never_has_are_refused_by_name_before_anything_is_written() {
    on_every_disk(|disk| {
        let files = disk.collection_files();
        let db = Database::open_with_fs(disk.fs.clone(), disk.root.join("db"), options()).unwrap();
        fill(&db, "keep", 20);

        // 128 zstd frames of zeros: 32 MiB raw, a few KiB in the archive.
        let bomb = disk.archive("bomb.vsnap", &files, &[("bomb".into(), 0, 128 * BLOCK)]);
        let err = disk.import_refused(&db, &bomb);
        assert_eq!(refused_name(&err), "bomb");

        let tiny: Vec<(String, u8, usize)> =
            (0..3000).map(|i| (format!("junk/{i:04}"), 1, 1)).collect();
        let many = disk.archive("many.vsnap", &files, &tiny);
        let err = disk.import_refused(&db, &many);
        assert_eq!(refused_name(&err), "junk/0000");

        let deep = vec!["d"; 512].join("/");
        let hostile = [
            deep.as_str(),
            "checkpoints/CURRENT\n",
            "vectors/segment-00000000.vec\u{202E}",
            "\u{202E}collection.meta",
            "checkpoints/data-0000000000000001-notes",
            "checkpoints/manifest-000000000000000A",
            "wal/wal-00000000000000000001.seg",
        ];
        for (i, name) in hostile.iter().enumerate() {
            let archive =
                disk.archive(&format!("h{i}.vsnap"), &files, &[(name.to_string(), 2, 10)]);
            let err = disk.import_refused(&db, &archive);
            assert_eq!(refused_name(&err), *name);
            // The message escapes the name: a newline or an override shows.
            assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
        }

        // The archive of the collection alone imports, and the database reopens intact.
        let clean = disk.archive("clean.vsnap", &files, &[]);
        assert_eq!(db.import_snapshot(&[clean], "copy").unwrap().len(), 50);
        drop(db);
        let db = Database::open_with_fs(disk.fs.clone(), disk.root.join("db"), options()).unwrap();
        assert_eq!(db.collection("keep").unwrap().len(), 20);
        assert_eq!(db.collection("copy").unwrap().len(), 50);
        assert_eq!(db.list_collections().len(), 2);
    });
}

#[test]
fn the_import_budget_set_in_the_options_refuses_a_bigger_archive_before_writing() {
    on_every_disk(|disk| {
        let files = disk.collection_files();
        let clean = disk.archive("clean.vsnap", &files, &[]);
        let raw_bytes: u64 = {
            let f = disk.fs.open(&clean).unwrap();
            let (_, _, footer) = snap::read_summary(f.as_ref()).unwrap();
            footer.sections.iter().map(|s| s.totals.raw_bytes).sum()
        };
        // A bomb under a name a collection does have passes the allow-list; the budget
        // stops it.
        let bomb = disk.archive(
            "bomb.vsnap",
            &files,
            &[("vectors/segment-00009999.vec".into(), 0, 128 * BLOCK)],
        );
        let limits = ImportLimits::default().with_max_total_bytes(raw_bytes + (1 << 20));
        let db = Database::open_with_fs(
            disk.fs.clone(),
            disk.root.join("db"),
            options().with_import_limits(limits),
        )
        .unwrap();
        fill(&db, "keep", 20);
        let err = disk.import_refused(&db, &bomb);
        match err {
            snap::Error::LimitExceeded { value, limit, .. } => {
                assert_eq!(
                    (value, limit),
                    (raw_bytes + 128 * BLOCK as u64, limits.max_total_bytes)
                );
            }
            other => panic!("expected the budget, got {other}"),
        }
        // Within the budget, the collection itself imports.
        assert_eq!(db.import_snapshot(&[clean], "copy").unwrap().len(), 50);
    });
}
