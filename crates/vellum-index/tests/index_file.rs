//! The index file (graph and vectors together): `Hnsw::save` then `IndexView::open`
//! searches like the index it came from, `to_index`/`Hnsw::load` give it back in memory,
//! the committed version-1 fixture opens and is reproduced byte for byte, and damaged or
//! forged files are typed errors naming the file, the offset and the field.

mod common;

use std::path::{Path, PathBuf};

use common::random_data;
use vellum_fs::{Fs, RealFs, SimFs};
use vellum_index::{
    Error, FILE_HEADER_LEN, FILE_MAGIC, FILE_VERSION, Filter, FlatVectors, Hnsw, HnswParams,
    IndexView, Metric, OwnedVectors, SearchOptions, VectorSource,
};

const PATH: &str = "/idx/points.index";

// Header offsets as docs/format/index-file.md gives them (a test of the document too).
const DIM_AT: usize = 16;
const FLAGS_AT: usize = 20;
const ROW_COUNT_AT: usize = 24;
const GRAPH_OFFSET_AT: usize = 32;
const GRAPH_LEN_AT: usize = 40;
const VECTORS_OFFSET_AT: usize = 48;
const VECTORS_LEN_AT: usize = 56;
const VECTORS_CRC_AT: usize = 64;
const RESERVED_AT: usize = 68;
const HEADER_CRC_AT: usize = 124;

fn params(m: usize) -> HnswParams {
    HnswParams {
        m,
        ef_construction: 64,
        ef_search: 32,
        seed: 21,
    }
}

/// Random vectors under `ids`, indexed in that order with `insert_batch` (deterministic).
fn built(ids: &[u64], dim: usize, metric: Metric, m: usize, seed: u64) -> (Hnsw, OwnedVectors) {
    let data = random_data(seed, ids.len(), dim);
    let mut vectors = OwnedVectors::new(dim);
    for (&id, row) in ids.iter().zip(data.chunks_exact(dim)) {
        vectors.insert(id, row).unwrap();
    }
    let index = Hnsw::new(dim, metric, params(m)).unwrap();
    index.insert_batch(&vectors, ids).unwrap();
    (index, vectors)
}

fn consecutive(n: u64) -> Vec<u64> {
    (0..n).collect()
}

fn sim_with_dir() -> SimFs {
    let fs = SimFs::new();
    vellum_fs::create_dir_all_durable(&fs, Path::new("/idx")).unwrap();
    fs
}

/// The bytes `save` writes for this index.
fn saved_bytes(index: &Hnsw, vectors: &OwnedVectors) -> Vec<u8> {
    let fs = sim_with_dir();
    index.save(&fs, PATH, vectors).unwrap();
    fs.read_file(Path::new(PATH)).unwrap()
}

/// Opens `bytes` as the file at PATH of a fresh simulated file system.
fn open_bytes(bytes: &[u8]) -> Result<IndexView, Error> {
    let fs = sim_with_dir();
    let file = fs.create(Path::new(PATH)).unwrap();
    file.write_at(bytes, 0).unwrap();
    drop(file);
    IndexView::open(&fs, PATH)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn set_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn set_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Recomputes the header checksum so a forged field reaches the checks after it.
fn reseal_header(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[..HEADER_CRC_AT]);
    set_u32(bytes, HEADER_CRC_AT, crc);
}

/// Recomputes the vectors checksum and then the header's.
fn reseal_all(bytes: &mut [u8]) {
    let start = u64_at(bytes, VECTORS_OFFSET_AT) as usize;
    let crc = crc32fast::hash(&bytes[start..]);
    set_u32(bytes, VECTORS_CRC_AT, crc);
    reseal_header(bytes);
}

/// `bytes` must be refused as corrupt in `field`, with the file named in the message.
fn expect_corrupt(bytes: &[u8], want_field: &str) -> u64 {
    match open_bytes(bytes) {
        Err(error @ Error::CorruptFile { .. }) => {
            let text = error.to_string();
            let Error::CorruptFile {
                path,
                field,
                offset,
                ..
            } = error
            else {
                unreachable!()
            };
            assert_eq!(field, want_field, "{text}");
            assert_eq!(path, PathBuf::from(PATH));
            assert!(
                text.contains(PATH),
                "the message does not name the file: {text}"
            );
            offset
        }
        other => panic!("expected a corrupt {want_field}, got {other:?}"),
    }
}

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

#[test]
fn every_single_byte_flip_of_an_index_file_is_refused() {
    // 45 rows, M = 4: the graph's length is 4 mod 8, so the file has padding too.
    let (index, vectors) = built(&consecutive(45), 3, Metric::L2, 4, 10);
    let bytes = saved_bytes(&index, &vectors);
    assert_eq!(u64_at(&bytes, GRAPH_LEN_AT) % 8, 4, "no padding to test");
    assert!(open_bytes(&bytes).is_ok());
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x10;
        match open_bytes(&damaged) {
            Err(Error::CorruptFile { offset, path, .. }) => {
                assert!(offset < bytes.len() as u64, "flip at {at}: offset {offset}");
                assert_eq!(path, PathBuf::from(PATH));
            }
            Err(Error::UnsupportedFileVersion { .. }) => assert!((8..12).contains(&at)),
            other => panic!("flip at byte {at}: {other:?}"),
        }
    }
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let (index, vectors) = built(&consecutive(30), 3, Metric::L2, 4, 11);
    let bytes = saved_bytes(&index, &vectors);
    for len in 0..bytes.len() {
        assert!(open_bytes(&bytes[..len]).is_err(), "truncated to {len}");
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 4]);
    expect_corrupt(&longer, "length");
}

#[test]
fn forged_headers_with_valid_checksums_are_refused_naming_the_field() {
    let (index, vectors) = built(&consecutive(45), 4, Metric::L2, 4, 12);
    let good = saved_bytes(&index, &vectors);
    let forge = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };

    expect_corrupt(&forge(&|b| set_u32(b, DIM_AT, 0)), "header_crc");
    expect_corrupt(
        &forge(&|b| {
            set_u32(b, FLAGS_AT, 1);
            reseal_header(b)
        }),
        "flags",
    );
    expect_corrupt(
        &forge(&|b| {
            b[RESERVED_AT + 3] = 1;
            reseal_header(b)
        }),
        "reserved",
    );
    expect_corrupt(
        &forge(&|b| {
            set_u32(b, DIM_AT, 0);
            reseal_header(b)
        }),
        "dim",
    );
    expect_corrupt(
        &forge(&|b| {
            set_u64(b, GRAPH_OFFSET_AT, 136);
            reseal_header(b)
        }),
        "graph_offset",
    );
    expect_corrupt(
        &forge(&|b| {
            let v = u64_at(b, VECTORS_OFFSET_AT);
            set_u64(b, VECTORS_OFFSET_AT, v + 8);
            reseal_header(b)
        }),
        "vectors_offset",
    );
    expect_corrupt(
        &forge(&|b| {
            let v = u64_at(b, VECTORS_LEN_AT);
            set_u64(b, VECTORS_LEN_AT, v - 16);
            reseal_header(b)
        }),
        "vectors_len",
    );
    expect_corrupt(
        &forge(&|b| {
            set_u64(b, ROW_COUNT_AT, u64::MAX);
            reseal_header(b)
        }),
        "row_count",
    );
    // Same byte count, other shape: 45 rows of 4 become 90 rows of 2. Every length agrees,
    // so only the comparison with the graph catches it.
    expect_corrupt(
        &forge(&|b| {
            set_u32(b, DIM_AT, 2);
            set_u64(b, ROW_COUNT_AT, 90);
            reseal_header(b)
        }),
        "dim",
    );
    // One more row than the graph has ids.
    expect_corrupt(
        &forge(&|b| {
            b.extend_from_slice(&[0; 16]);
            set_u64(b, ROW_COUNT_AT, 46);
            let v = u64_at(b, VECTORS_LEN_AT);
            set_u64(b, VECTORS_LEN_AT, v + 16);
            reseal_all(b)
        }),
        "row_count",
    );
    let graph_len = u64_at(&good, GRAPH_LEN_AT) as usize;
    expect_corrupt(&forge(&|b| b[FILE_HEADER_LEN + graph_len] = 1), "padding");
    let at = expect_corrupt(&forge(&|b| *b.last_mut().unwrap() ^= 1), "vectors");
    assert_eq!(at, u64_at(&good, VECTORS_OFFSET_AT));
    // A link of the graph section, with every checksum made valid again: the graph's own
    // decoder refuses it, and the offset is the link's place in the whole file.
    let at = expect_corrupt(
        &forge(&|b| {
            let g = FILE_HEADER_LEN;
            let n = 45usize;
            let first_link = g + 128 + 16 * n + 4;
            set_u32(b, first_link, 10_000);
            // The graph's layer0 checksum (its third section CRC) and header CRC.
            let layer0 = g + 128 + 16 * n..g + 128 + 16 * n + 4 * n * 9;
            let crc = crc32fast::hash(&b[layer0]);
            set_u32(b, g + 72 + 8, crc);
            let crc = crc32fast::hash(&b[g..g + 124]);
            set_u32(b, g + 124, crc);
        }),
        "graph",
    );
    assert_eq!(at, (FILE_HEADER_LEN + 128 + 16 * 45 + 4) as u64);
    // A newer version is its own error.
    match open_bytes(&forge(&|b| {
        set_u32(b, 8, FILE_VERSION + 1);
        reseal_header(b)
    })) {
        Err(Error::UnsupportedFileVersion {
            path,
            found,
            supported,
        }) => assert_eq!(
            (path, found, supported),
            (PathBuf::from(PATH), FILE_VERSION + 1, FILE_VERSION)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_graph_file_alone_is_not_an_index_file() {
    let (index, _) = built(&consecutive(10), 3, Metric::L2, 4, 13);
    let at = expect_corrupt(&index.to_bytes().unwrap(), "magic");
    assert_eq!(at, 0);
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

#[test]
fn the_version_1_fixture_is_reproduced_byte_for_byte() {
    let (index, vectors) = fixture_index();
    let bytes = saved_bytes(&index, &vectors);
    if std::env::var_os("VELLUM_WRITE_GOLDEN").is_some() {
        std::fs::write(fixture_path(), &bytes).unwrap();
    }
    let golden = std::fs::read(fixture_path()).unwrap();
    assert!(
        bytes == golden,
        "Hnsw::save no longer writes tests/fixtures/index-file-v1.bin ({} bytes vs {})",
        bytes.len(),
        golden.len()
    );
}
