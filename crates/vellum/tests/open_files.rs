//! Thousands of collections under a low open-files limit (issue 14, item 4): collections
//! open on first use and a bounded pool closes the least recently used idle ones, so
//! `ulimit -n` is not the limit on how many a program uses. Its own test binary: it lowers
//! the limit for the whole process. Unix only: Windows has no such limit to lower.
#![cfg(unix)]

use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point};

const COLLECTIONS: u64 = 2_000;
const LIMIT: u64 = 256;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn vector(c: u64, i: u64) -> Vec<f32> {
    vec![c as f32, i as f32, 0.5, 0.25]
}

#[test]
fn two_thousand_collections_are_written_and_read_under_an_open_files_limit_of_256() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(LIMIT),
            maximum: old.maximum,
        },
    )
    .expect("lower the soft open-files limit");
    let dir = tempfile::tempdir().unwrap();
    let mut most_fds = 0;
    {
        // The default pool: an eighth of the limit.
        let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
        // A handle the program keeps is never closed under it.
        let kept = db
            .create_collection("kept", CollectionConfig::new(4, Metric::L2))
            .unwrap();
        for c in 0..COLLECTIONS {
            let coll = db
                .create_collection(&format!("c{c}"), CollectionConfig::new(4, Metric::L2))
                .unwrap_or_else(|e| panic!("collection {c}: {e}"));
            coll.upsert_batch((0..3).map(|i| Point::new(i, vector(c, i))))
                .unwrap_or_else(|e| panic!("collection {c}: {e}"));
            kept.upsert(Point::new(c, vector(c, 9))).unwrap();
            most_fds = most_fds.max(open_fds());
        }
        assert_eq!(kept.len() as u64, COLLECTIONS);
    }
    let db = Database::open(dir.path(), DatabaseOptions::default()).unwrap();
    for c in (0..COLLECTIONS).rev() {
        let coll = db.collection(&format!("c{c}")).unwrap();
        for i in 0..3 {
            assert_eq!(
                coll.get(i).unwrap().unwrap().vector,
                vector(c, i),
                "c{c}/{i}"
            );
        }
        most_fds = most_fds.max(open_fds());
    }
    println!("{COLLECTIONS} collections written and read back; at most {most_fds} files open");
    assert!(most_fds < LIMIT as usize, "{most_fds}");
}
