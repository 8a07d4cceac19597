//! The index file (graph and vectors together): `Hnsw::save` then `IndexView::open`
//! searches like the index it came from, `to_index`/`Hnsw::load` give it back in memory,
//! and the committed version-1 fixture opens and is reproduced byte for byte. Damaged and
//! forged files: `index_file_damage.rs`; crashes: `index_file_crash.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::files::*;
use common::random_data;
use vellum_fs::{Fs, RealFs};
use vellum_index::{
    Error, FILE_MAGIC, Filter, FlatVectors, Hnsw, IndexView, Metric, OwnedVectors, SearchOptions,
    VectorSource,
};

#[test]
fn a_saved_index_opens_as_a_view_that_searches_like_the_index() {
    let dim = 8;
    let queries = random_data(99, 20, dim);
    for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
        let (index, vectors) = built(&consecutive(600), dim, metric, 8, 1);
        let fs = sim_with_dir();
        index.save(&fs, PATH, &vectors).unwrap();
        let view = IndexView::open(&fs, PATH).unwrap();
        assert_eq!(
            (view.len(), view.dim(), view.metric(), view.params()),
            (600, dim, metric, index.params())
        );
        assert_eq!(view.ids(), index.ids().unwrap());
        assert_eq!(view.path(), Path::new(PATH));
        for &id in view.ids() {
            assert_eq!(view.vector(id), vectors.get(id));
        }
        for query in queries.chunks_exact(dim) {
            assert_eq!(
                view.search(query, 10).unwrap(),
                index.search(&vectors, query, 10).unwrap(),
                "{metric:?}"
            );
        }
    }
}

#[test]
fn ids_that_are_not_consecutive_are_found_at_their_rows() {
    let ids: Vec<u64> = (0..300u64)
        .map(|i| i * 1_000 + 7)
        .chain([u64::MAX - 1, u64::MAX])
        .collect();
    let (index, vectors) = built(&ids, 5, Metric::L2, 6, 2);
    let view = open_bytes(&saved_bytes(&index, &vectors)).unwrap();
    for &id in &ids {
        let v = vectors.get(id).unwrap();
        assert_eq!(view.vector(id), Some(v));
        assert_eq!(VectorSource::vector(&view, id), v);
        let hit = view.search(v, 1).unwrap()[0];
        assert_eq!((hit.id, hit.distance), (id, 0.0));
    }
    assert_eq!(view.vector(8), None);
    assert!(!view.contains(1_006) && view.contains(1_007));
}

#[test]
fn a_view_searches_with_filters_and_exactly() {
    let (index, vectors) = built(&consecutive(400), 6, Metric::L2, 8, 3);
    let view = open_bytes(&saved_bytes(&index, &vectors)).unwrap();
    let query = vectors.get(17).unwrap().to_vec();
    let even = |id: u64| id.is_multiple_of(2);
    let options = SearchOptions {
        ef: Some(100),
        filter: Some(Filter::Allow(&even)),
    };
    let hits = view.search_with(&query, 5, &options).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.id.is_multiple_of(2)));
    let exact = view
        .exact_search(&query, 5, Some(&Filter::Allow(&even)))
        .unwrap();
    assert_eq!(hits, exact);
    assert_eq!(view.exact_search(&query, 1, None).unwrap()[0].id, 17);
}

#[test]
fn one_view_serves_searches_from_many_threads() {
    let (index, vectors) = built(&consecutive(500), 8, Metric::L2, 8, 14);
    let view = open_bytes(&saved_bytes(&index, &vectors)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (view, vectors) = (&view, &vectors);
            s.spawn(move || {
                for id in (t..500).step_by(4) {
                    let hit = view.search(vectors.get(id).unwrap(), 1).unwrap()[0];
                    assert_eq!((hit.id, hit.distance), (id, 0.0));
                }
            });
        }
    });
}

#[test]
fn an_empty_index_saves_and_opens() {
    let index = Hnsw::new(3, Metric::Dot, params(4)).unwrap();
    let vectors = OwnedVectors::new(3);
    let bytes = saved_bytes(&index, &vectors);
    let view = open_bytes(&bytes).unwrap();
    assert!(view.is_empty() && view.ids().is_empty());
    assert!(view.search(&[1.0, 2.0, 3.0], 4).unwrap().is_empty());
    let (back, vectors) = view.to_index().unwrap();
    assert!(back.is_empty() && vectors.is_empty());
}

#[test]
fn a_view_turns_into_an_index_that_changes_and_saves_again() {
    let (index, vectors) = built(&consecutive(200), 4, Metric::L2, 6, 4);
    let fs = sim_with_dir();
    index.save(&fs, PATH, &vectors).unwrap();
    let (copy, mut vectors) = Hnsw::load(&fs, PATH).unwrap();
    assert_eq!((copy.len(), vectors.len()), (200, 200));
    assert_eq!(copy.params(), index.params());
    vectors.insert(10, &[9.0; 4]).unwrap();
    assert!(copy.upsert(&vectors, 10).unwrap());
    vectors.insert(1_000, &[-9.0; 4]).unwrap();
    copy.insert(&vectors, 1_000).unwrap();
    copy.delete(&vectors, 11).unwrap();
    vectors.remove(11);
    copy.save(&fs, PATH, &vectors).unwrap();

    let view = IndexView::open(&fs, PATH).unwrap();
    assert_eq!(view.len(), 200);
    assert_eq!(view.vector(10), Some(&[9.0; 4][..]));
    assert_eq!(view.vector(11), None);
    for (query, id) in [([9.0; 4], 10), ([-9.0; 4], 1_000)] {
        let hit = view.search(&query, 1).unwrap()[0];
        assert_eq!((hit.id, hit.distance), (id, 0.0));
    }
    assert!(
        view.search(&[0.0; 4], 200)
            .unwrap()
            .iter()
            .all(|h| h.id != 11)
    );
}

#[test]
fn a_view_keeps_reading_its_file_while_a_save_replaces_it() {
    let (old, old_vectors) = built(&consecutive(100), 4, Metric::L2, 6, 5);
    let (new, new_vectors) = built(&(500..650).collect::<Vec<u64>>(), 4, Metric::L2, 6, 6);
    let fs = sim_with_dir();
    old.save(&fs, PATH, &old_vectors).unwrap();
    let old_view = IndexView::open(&fs, PATH).unwrap();
    new.save(&fs, PATH, &new_vectors).unwrap();
    let new_view = IndexView::open(&fs, PATH).unwrap();
    let q = old_vectors.get(3).unwrap();
    assert_eq!(old_view.search(q, 1).unwrap()[0].id, 3);
    assert_eq!((old_view.len(), new_view.len()), (100, 150));
    assert_eq!(new_view.ids().first(), Some(&500));
    assert!(!fs.exists(&vellum_fs::tmp_path(Path::new(PATH))).unwrap());
}

#[test]
fn save_refuses_a_source_of_another_dimension() {
    let (index, _) = built(&consecutive(10), 4, Metric::L2, 4, 7);
    let data = [0.0f32; 30];
    let fs = sim_with_dir();
    assert!(matches!(
        index.save(&fs, PATH, &FlatVectors::new(&data, 3)),
        Err(Error::DimensionMismatch {
            expected: 4,
            found: 3
        })
    ));
    assert!(!fs.exists(Path::new(PATH)).unwrap());
}

/// Claims four floats per vector but returns three for id 5.
struct ShortRow(OwnedVectors);

impl VectorSource for ShortRow {
    fn dim(&self) -> usize {
        4
    }

    fn vector(&self, id: u64) -> &[f32] {
        let v = self.0.get(id).unwrap();
        if id == 5 { &v[..3] } else { v }
    }
}

#[test]
fn a_source_that_returns_a_short_vector_stops_the_save_and_leaves_the_old_file() {
    let (index, vectors) = built(&consecutive(20), 4, Metric::L2, 4, 8);
    let fs = sim_with_dir();
    index.save(&fs, PATH, &vectors).unwrap();
    let before = fs.read_file(Path::new(PATH)).unwrap();
    let result = index.save(&fs, PATH, &ShortRow(vectors));
    assert!(
        matches!(
            result,
            Err(Error::DimensionMismatch {
                expected: 4,
                found: 3
            })
        ),
        "{result:?}"
    );
    assert_eq!(fs.read_file(Path::new(PATH)).unwrap(), before);
    assert!(!fs.exists(&vellum_fs::tmp_path(Path::new(PATH))).unwrap());
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let fs = sim_with_dir();
    match IndexView::open(&fs, "/idx/absent.index") {
        Err(Error::Fs(e)) => {
            assert!(e.is_not_found());
            assert!(e.to_string().contains("/idx/absent.index"), "{e}");
        }
        other => panic!("expected a not-found error, got {other:?}"),
    }
}

#[test]
fn save_and_view_work_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.index");
    let (index, vectors) = built(&consecutive(300), 8, Metric::Cosine, 8, 9);
    index.save(&RealFs::new(), &path, &vectors).unwrap();
    let view = IndexView::open(&RealFs::new(), &path).unwrap();
    let q = vectors.get(42).unwrap();
    assert_eq!(view.search(q, 1).unwrap()[0].id, 42);
    assert_eq!(view.vector(42), Some(q));
}

/// The fixture: 24 rows of `random_data(16, 24, 3)` under ids 100, 103, 106, ... (not
/// consecutive, so the id map is exercised), L2, M = 4, seed 21, `insert_batch` in id
/// order.
fn fixture_index() -> (Hnsw, OwnedVectors) {
    let ids: Vec<u64> = (0..24u64).map(|i| 100 + 3 * i).collect();
    built(&ids, 3, Metric::L2, 4, 16)
}

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/index-file-v1.bin")
}

#[test]
fn the_version_1_fixture_opens_and_searches() {
    let bytes = include_bytes!("fixtures/index-file-v1.bin");
    assert_eq!(&bytes[..8], &FILE_MAGIC);
    let view = open_bytes(bytes).unwrap();
    assert_eq!((view.len(), view.dim(), view.metric()), (24, 3, Metric::L2));
    let (_, vectors) = fixture_index();
    for &id in view.ids() {
        let v = vectors.get(id).unwrap();
        assert_eq!(view.vector(id), Some(v));
        let hit = view.search(v, 1).unwrap()[0];
        assert_eq!((hit.id, hit.distance), (id, 0.0));
    }
    assert_eq!(view.ids().first(), Some(&100));
}

/// The writer keeps the format: the fixture, loaded and saved again, is the same bytes.
/// (Loaded rather than rebuilt: the graph a build makes may change with the build
/// algorithm — it did when new nodes went from 2M to M layer-0 links — the format may not.
/// `VELLUM_WRITE_GOLDEN=1` writes a fresh build of `fixture_index` instead.)
#[test]
fn the_version_1_fixture_is_reproduced_byte_for_byte() {
    if std::env::var_os("VELLUM_WRITE_GOLDEN").is_some() {
        let (index, vectors) = fixture_index();
        std::fs::write(fixture_path(), saved_bytes(&index, &vectors)).unwrap();
    }
    let golden = std::fs::read(fixture_path()).unwrap();
    let (index, vectors) = open_bytes(&golden).unwrap().to_index().unwrap();
    let bytes = saved_bytes(&index, &vectors);
    assert!(
        bytes == golden,
        "Hnsw::save no longer writes tests/fixtures/index-file-v1.bin ({} bytes vs {})",
        bytes.len(),
        golden.len()
    );
}
