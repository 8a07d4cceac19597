//! The facade's everyday behaviour: write, read, search, reopen, checkpoint, bad input,
//! locking. Every scenario runs on the simulated and on the real file system.

mod common;

use std::path::Path;

use common::{overlap_with_exact, read_file, vector, write_file};
use vellum::{
    CollectionConfig, Database, DatabaseOptions, Error, HnswParams, Metric, Point, SearchFilter,
    SearchParams,
};
use vellum_fs::DynFs;

fn options() -> DatabaseOptions {
    common::options(1 << 20, 64)
}

fn points_survive_reopen_with_vectors_and_payloads_bit_exact(fs: DynFs, root: &Path) {
    {
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new(8, Metric::L2))
            .unwrap();
        for i in 0..100 {
            c.upsert(Point::new(i, vector(i, 8)).with_payload(format!("p{i}")))
                .unwrap();
        }
        c.delete(7).unwrap();
        c.upsert(Point::new(8, vector(1000, 8))).unwrap();
    }
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), 99);
    assert!(c.get(7).unwrap().is_none());
    let eight = c.get(8).unwrap().unwrap();
    assert_eq!(eight.vector, vector(1000, 8));
    assert_eq!(
        eight.payload, None,
        "an upsert without payload clears the old one"
    );
    let nine = c.get(9).unwrap().unwrap();
    assert_eq!(nine.vector, vector(9, 8));
    assert_eq!(nine.payload.as_deref(), Some(&b"p9"[..]));
}

fn a_checkpoint_then_more_writes_reopen_to_the_same_state_and_search_agrees_with_exact(
    fs: DynFs,
    root: &Path,
) {
    let params = HnswParams {
        ef_search: 200,
        ..HnswParams::default()
    };
    {
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        let c = db
            .create_collection("h", CollectionConfig::new(16, Metric::Cosine).hnsw(params))
            .unwrap();
        c.upsert_batch((0..300).map(|i| Point::new(i, vector(i, 16))))
            .unwrap();
        let info = c.checkpoint().unwrap();
        assert_eq!(info.generation, 1);
        c.upsert_batch((300..400).map(|i| Point::new(i, vector(i, 16))))
            .unwrap();
        for i in 0..50 {
            c.delete(i * 3).unwrap();
        }
    }
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db.collection("h").unwrap();
    assert_eq!(c.len(), 350);
    let stats = c.stats();
    assert_eq!(
        stats.indexed + stats.index_pending,
        350,
        "graph and pending tail hold exactly the live ids"
    );
    c.wait_indexed().unwrap();
    let stats = c.stats();
    assert_eq!(stats.indexed, 350, "index holds exactly the live ids");
    assert_eq!(stats.index_pending, 0);
    assert_eq!(stats.generation, 1);
    let q = vector(12345, 16);
    let approx = c.search(&q, 10).unwrap();
    let overlap = overlap_with_exact(&c, &q, 10);
    assert!(overlap >= 9, "recall@10 {overlap}/10");
    assert!(
        approx.iter().all(|h| h.id % 3 != 0 || h.id >= 150),
        "deleted ids never returned"
    );
    assert!(c.verify().unwrap().is_ok());
}

fn filters_on_ids_and_payloads_restrict_results(fs: DynFs, root: &Path) {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db
        .create_collection("f", CollectionConfig::new(4, Metric::L2).flat())
        .unwrap();
    for i in 0..50u64 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        c.upsert(Point::new(i, vector(i, 4)).with_payload(tag))
            .unwrap();
    }
    let q = vector(3, 4);
    let odd = |p: Option<&[u8]>| p == Some(b"odd");
    let hits = c
        .search_with(
            &q,
            5,
            &SearchParams {
                filter: Some(SearchFilter::Payload(&odd)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.id % 2 == 1));
    assert_eq!(hits[0].id, 3);
    let allowed = [10u64, 20, 30];
    let hits = c
        .search_with(
            &q,
            5,
            &SearchParams {
                filter: Some(SearchFilter::Ids(&allowed)),
                ..Default::default()
            },
        )
        .unwrap();
    let mut ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, allowed);
    // The same ids as a sorted list: the same answer; an unsorted one is refused.
    let sorted = |ids: &[u64]| {
        c.search_with(
            &q,
            5,
            &SearchParams {
                filter: Some(SearchFilter::SortedIds(ids)),
                ..Default::default()
            },
        )
    };
    assert_eq!(sorted(&allowed).unwrap(), hits);
    assert!(matches!(sorted(&[30, 10]), Err(Error::InvalidArgument(_))));
}

fn bad_input_gets_a_typed_error_and_loses_nothing(fs: DynFs, root: &Path) {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db
        .create_collection("b", CollectionConfig::new(3, Metric::Dot))
        .unwrap();
    c.upsert(Point::new(1, vec![1.0, 2.0, 3.0])).unwrap();
    assert!(matches!(
        c.upsert(Point::new(2, vec![1.0])),
        Err(Error::DimensionMismatch { found: 1, .. })
    ));
    assert!(matches!(
        c.upsert(Point::new(2, vec![1.0, f32::NAN, 0.0])),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        c.upsert_batch([
            Point::new(3, vec![0.0; 3]),
            Point::new(4, vec![f32::INFINITY, 0.0, 0.0])
        ]),
        Err(Error::NonFinite { .. })
    ));
    assert!(
        c.get(3).unwrap().is_none(),
        "a rejected batch writes nothing"
    );
    assert!(matches!(
        c.search(&[1.0, 2.0], 1),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        db.collection("nope"),
        Err(Error::UnknownCollection { .. })
    ));
    assert!(matches!(
        db.create_collection("b", CollectionConfig::new(3, Metric::Dot)),
        Err(Error::CollectionExists { .. })
    ));
    assert!(matches!(
        db.create_collection("../x", CollectionConfig::new(3, Metric::Dot)),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        db.create_collection("z", CollectionConfig::new(0, Metric::Dot)),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(c.get(1).unwrap().unwrap().vector, vec![1.0, 2.0, 3.0]);
}

fn a_directory_holding_foreign_files_is_not_opened_as_a_database(fs: DynFs, root: &Path) {
    fs.create_dir_all(root).unwrap();
    write_file(fs.as_ref(), &root.join("important.txt"), b"do not touch");
    let e = Database::open_with_fs(fs.clone(), root, options()).unwrap_err();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e}");
    assert_eq!(
        read_file(fs.as_ref(), &root.join("important.txt")),
        b"do not touch"
    );
}

fn dropping_a_collection_removes_it_durably_and_its_handles_fail(fs: DynFs, root: &Path) {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db
        .create_collection("gone", CollectionConfig::new(2, Metric::L2))
        .unwrap();
    c.upsert(Point::new(1, vec![0.0, 1.0])).unwrap();
    db.create_collection("kept", CollectionConfig::new(2, Metric::L2))
        .unwrap();
    db.drop_collection("gone").unwrap();
    assert!(matches!(
        c.upsert(Point::new(2, vec![0.0, 1.0])),
        Err(Error::UnknownCollection { .. })
    ));
    drop((c, db));
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let names: Vec<String> = db.list_collections().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["kept".to_owned()]);
    assert_eq!(fs.list_dir(&root.join("collections")).unwrap().len(), 1);
}

fn many_threads_write_and_search_at_once(fs: DynFs, root: &Path) {
    let db = Database::open_with_fs(
        fs.clone(),
        root,
        options()
            .with_checkpoint_after_ops(300)
            .with_background_checkpoints(true),
    )
    .unwrap();
    let c = db
        .create_collection("t", CollectionConfig::new(8, Metric::L2))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let c = c.clone();
            s.spawn(move || {
                for i in 0..150u64 {
                    let id = t * 1000 + i;
                    c.upsert(Point::new(id, vector(id, 8))).unwrap();
                }
            });
        }
        for _ in 0..2 {
            let c = c.clone();
            s.spawn(move || {
                for i in 0..100u64 {
                    let _ = c.search(&vector(i, 8), 5).unwrap();
                }
            });
        }
    });
    assert_eq!(c.len(), 600);
    drop((c, db));
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db.collection("t").unwrap();
    assert_eq!(c.len(), 600);
    c.wait_indexed().unwrap();
    assert_eq!(c.stats().indexed, 600);
}

fn replacing_and_deleting_the_same_ids_many_times_keeps_index_and_store_in_step(
    fs: DynFs,
    root: &Path,
) {
    let params = HnswParams {
        m: 8,
        ef_construction: 32,
        ef_search: 64,
        seed: 3,
    };
    let mut rng = vellum::fs::rng::SplitMix64::new(5);
    {
        let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
        let c = db
            .create_collection("r", CollectionConfig::new(8, Metric::L2).hnsw(params))
            .unwrap();
        for n in 0..400u64 {
            let mut batch = vellum::WriteBatch::new();
            for _ in 0..3 {
                let id = rng.below(60);
                batch.upsert(Point::new(id, vector(n * 3 + id, 8)));
            }
            if n % 4 == 3 {
                batch.delete(rng.below(60));
            }
            c.write(batch).unwrap();
            if n % 97 == 0 {
                c.checkpoint().unwrap();
            }
        }
        let s = c.stats();
        assert_eq!(s.indexed + s.index_pending, c.len() as u64);
        c.wait_indexed().unwrap();
        assert_eq!(c.stats().indexed, c.len() as u64);
        c.search(&vector(1, 8), 5).unwrap();
    }
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db.collection("r").unwrap();
    c.wait_indexed().unwrap();
    assert_eq!(c.stats().indexed, c.len() as u64);
    c.search(&vector(1, 8), 5).unwrap();
}

fn a_long_log_tail_replays_through_grouped_inserts_to_the_same_points_and_a_whole_index(
    fs: DynFs,
    root: &Path,
) {
    let params = HnswParams {
        ef_search: 128,
        ..HnswParams::default()
    };
    {
        let db = Database::open_with_fs(
            fs.clone(),
            root,
            options().with_wal_segment_size_bytes(4 << 20),
        )
        .unwrap();
        let c = db
            .create_collection("tail", CollectionConfig::new(16, Metric::L2).hnsw(params))
            .unwrap();
        for i in 0..1200u64 {
            c.upsert(Point::new(i, vector(i, 16))).unwrap();
        }
        // A repeated id and a delete in the middle split the replay groups.
        c.upsert(Point::new(5, vector(5000, 16))).unwrap();
        c.delete(6).unwrap();
        for i in 1200..1500u64 {
            c.upsert(Point::new(i, vector(i, 16))).unwrap();
        }
    }
    let db = Database::open_with_fs(
        fs.clone(),
        root,
        options().with_wal_segment_size_bytes(4 << 20),
    )
    .unwrap();
    let c = db.collection("tail").unwrap();
    let s = c.stats();
    assert_eq!(s.replayed_at_open, 1502);
    assert_eq!(c.len(), 1499);
    assert_eq!(s.indexed + s.index_pending, 1499);
    c.wait_indexed().unwrap();
    assert_eq!(c.stats().indexed, 1499);
    assert_eq!(c.get(5).unwrap().unwrap().vector, vector(5000, 16));
    assert!(c.get(6).unwrap().is_none());
    let overlap = overlap_with_exact(&c, &vector(777, 16), 10);
    assert!(
        overlap >= 9,
        "recall@10 after a grouped replay: {overlap}/10"
    );
}

fn a_second_open_of_the_same_directory_is_refused_while_any_handle_lives(fs: DynFs, root: &Path) {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(2, Metric::L2))
        .unwrap();
    c.upsert(Point::new(1, vec![0.0, 1.0])).unwrap();
    let locked = |e: Error| match e {
        Error::Locked { path } => assert_eq!(path, root),
        other => panic!("expected Error::Locked, got {other}"),
    };
    locked(Database::open_with_fs(fs.clone(), root, options()).unwrap_err());
    // A collection handle keeps the lock after the database handle is gone, and still works.
    drop(db);
    locked(Database::open_with_fs(fs.clone(), root, options()).unwrap_err());
    c.upsert(Point::new(2, vec![1.0, 0.0])).unwrap();
    drop(c);
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 2);
}

#[test]
fn the_simulated_file_system_locks_like_the_real_one_and_a_crash_releases_the_lock() {
    let fs = vellum::fs::SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    db.create_collection("c", CollectionConfig::new(2, Metric::L2))
        .unwrap()
        .upsert(Point::new(7, vec![0.5, 0.5]))
        .unwrap();
    assert!(matches!(
        Database::open_with_fs(fs.shared(), "/db", options()),
        Err(Error::Locked { .. })
    ));
    // A crash image is a new process: nothing holds the lock there.
    let image = fs.crash_drop_unsynced();
    let after = Database::open_with_fs(image.shared(), "/db", options()).unwrap();
    assert_eq!(after.collection("c").unwrap().len(), 1);
    drop(db);
    Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
}

fn points_iterate_in_id_order_in_pages_and_see_changes_made_between_pages(fs: DynFs, root: &Path) {
    let db = Database::open_with_fs(fs.clone(), root, options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(3, Metric::L2).flat())
        .unwrap();
    let n = 2 * vellum::POINTS_PAGE as u64 + 100;
    c.upsert_batch(
        (0..n).rev().map(|id| {
            Point::new(id * 2, vector(id, 3)).with_payload(format!("p{id}").into_bytes())
        }),
    )
    .unwrap();
    let mut it = c.points();
    let first: Vec<u64> = it.by_ref().take(10).map(|p| p.unwrap().id).collect();
    assert_eq!(first, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    // Changes behind the first page: a delete, a replacement, an addition.
    let (gone, changed) = (2 * (n - 1), 2 * vellum::POINTS_PAGE as u64 + 2);
    c.delete(gone).unwrap();
    c.upsert(Point::new(changed, vec![9.0, 9.0, 9.0])).unwrap();
    c.upsert(Point::new(1, vector(1, 3))).unwrap();
    let rest: Vec<Point> = it.map(Result::unwrap).collect();
    let ids: Vec<u64> = rest.iter().map(|p| p.id).collect();
    let want: Vec<u64> = (10..n).map(|i| i * 2).filter(|&id| id != gone).collect();
    assert_eq!(
        ids, want,
        "the ids live at the start, ascending, minus the deleted one"
    );
    let p = rest.iter().find(|p| p.id == changed).unwrap();
    assert_eq!(p.vector, vec![9.0, 9.0, 9.0]);
    assert_eq!(p.payload, None, "the replacement carried no payload");
    let q = rest.iter().find(|p| p.id == 40).unwrap();
    assert_eq!(q.payload.as_deref(), Some(&b"p20"[..]));
    assert_eq!(q.vector, vector(20, 3));
}

on_both_file_systems!(
    points_survive_reopen_with_vectors_and_payloads_bit_exact,
    a_checkpoint_then_more_writes_reopen_to_the_same_state_and_search_agrees_with_exact,
    filters_on_ids_and_payloads_restrict_results,
    bad_input_gets_a_typed_error_and_loses_nothing,
    a_directory_holding_foreign_files_is_not_opened_as_a_database,
    dropping_a_collection_removes_it_durably_and_its_handles_fail,
    many_threads_write_and_search_at_once,
    replacing_and_deleting_the_same_ids_many_times_keeps_index_and_store_in_step,
    a_long_log_tail_replays_through_grouped_inserts_to_the_same_points_and_a_whole_index,
    a_second_open_of_the_same_directory_is_refused_while_any_handle_lives,
    points_iterate_in_id_order_in_pages_and_see_changes_made_between_pages,
);

#[test]
fn collection_or_create_creates_once_and_refuses_other_settings() {
    let fs = vellum::fs::SimFs::new();
    let db = Database::open_with_fs(fs.shared(), "/db", options()).unwrap();
    let config = CollectionConfig::new(3, Metric::L2);
    let a = db.collection_or_create("a", config).unwrap();
    a.upsert(Point::new(1, vec![1.0, 2.0, 3.0])).unwrap();
    let again = db.collection_or_create("a", config).unwrap();
    assert_eq!(again.len(), 1, "the existing collection, not a new one");
    let other = db.collection_or_create("a", CollectionConfig::new(4, Metric::L2));
    assert!(matches!(other, Err(Error::InvalidArgument(m)) if m.contains("exists with")));
}
