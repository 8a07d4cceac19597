//! Payload indexes: every filter answers the same with indexes as without (before and after
//! checkpoints, across writes, after reopening), filtered search equals exact filtered
//! search, indexes persist and are checked, and bad requests are refused.

mod common;

use std::path::Path;

use vellum::filter::Range;
use vellum::fs::{DynFs, RealFs, SimFs};
use vellum::{
    Collection, CollectionConfig, Condition, Database, Filter, HnswParams, Metric,
    PayloadIndexKind, Point, SearchFilter, SearchParams,
};

const DIM: usize = 8;
const LANGS: [&str; 5] = ["en", "de", "fr", "es", "it"];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 31;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

fn payload(id: u64, version: u64) -> Option<String> {
    let h = mix(id * 7 + version);
    if h.is_multiple_of(11) {
        return None;
    }
    let lang = LANGS[(h % 5) as usize];
    // Some points hold the year as a float, some hold no year, some tags.
    let year = match h % 7 {
        0 => String::new(),
        1 => format!(",\"year\":{}.5", 1990 + (h >> 8) % 35),
        _ => format!(",\"year\":{}", 1990 + (h >> 8) % 35),
    };
    Some(format!(
        "{{\"lang\":\"{lang}\"{year},\"price\":{:.2},\"ok\":{},\"tags\":[\"{}\",\"{}\"],\"meta\":{{\"lang\":\"{}\"}}}}",
        ((h >> 16) % 10_000) as f64 / 100.0 - 20.0,
        (h >> 3).is_multiple_of(2),
        LANGS[((h >> 20) % 5) as usize],
        LANGS[((h >> 24) % 5) as usize],
        LANGS[((h >> 28) % 5) as usize],
    ))
}

fn point(id: u64, version: u64) -> Point {
    let p = Point::new(id, common::vector(id * 3 + version, DIM));
    match payload(id, version) {
        Some(json) => p.with_payload(json),
        None => p,
    }
}

fn filters() -> Vec<Filter> {
    let f = Filter::default;
    vec![
        f().must(Condition::matches("lang", "en")),
        f().must(Condition::matches("lang", "xx")),
        f().must(Condition::one_of("lang", ["de", "fr"])),
        f().must(Condition::matches("tags", "it")),
        f().must(Condition::matches("meta.lang", "es")),
        f().must(Condition::matches("year", 2001)),
        f().must(Condition::range("year", Range::between(2000.0, 2010.0))),
        f().must(Condition::range(
            "year",
            Range {
                gt: Some(2020.0),
                ..Range::default()
            },
        )),
        f().must(Condition::range("price", Range::below(0.0))),
        f().must(Condition::matches("ok", true)),
        f().must(Condition::matches("lang", "en"))
            .must(Condition::range("year", Range::at_least(2010.0))),
        f().should(Condition::matches("lang", "de"))
            .should(Condition::matches("ok", false)),
        f().must(Condition::matches("lang", "en"))
            .must_not(Condition::matches("ok", true)),
        // Partly indexed: the unindexed condition is read from the candidates' payloads.
        f().must(Condition::matches("lang", "fr"))
            .must(Condition::exists("year")),
        f().must(Condition::matches("lang", "fr"))
            .must(Condition::has_id(0..300)),
        f().must(Condition::nested(
            f().should(Condition::matches("lang", "it")),
        )),
        // Not answered by the indexes at all.
        f().must_not(Condition::matches("lang", "en")),
        f().must(Condition::is_empty("year")),
    ]
}

/// What a filter admits, read point by point from the payloads (the reference).
fn reference(c: &Collection, filter: &Filter) -> Vec<u64> {
    let mut ids: Vec<u64> = c
        .ids()
        .into_iter()
        .filter(|&id| {
            let p = c.get(id).unwrap().unwrap();
            filter.matches(id, p.payload.as_deref())
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn check_all(c: &Collection, when: &str) {
    for (i, filter) in filters().iter().enumerate() {
        let want = reference(c, filter);
        assert_eq!(
            c.count(Some(filter)).unwrap(),
            want.len() as u64,
            "{when}: filter {i}"
        );
        let mut got: Vec<u64> = c
            .points_matching(filter)
            .unwrap()
            .map(|p| p.unwrap().id)
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "{when}: filter {i}");
        // Filtered search returns what exact filtered search returns.
        let q = common::vector(i as u64 * 17, DIM);
        let exact = c
            .search_with(
                &q,
                10,
                &SearchParams {
                    filter: Some(SearchFilter::Where(filter)),
                    exact: true,
                    ..SearchParams::default()
                },
            )
            .unwrap();
        let approx = c
            .search_with(
                &q,
                10,
                &SearchParams {
                    filter: Some(SearchFilter::Where(filter)),
                    ef: Some(200),
                    ..SearchParams::default()
                },
            )
            .unwrap();
        let exact_ids: Vec<u64> = exact.iter().map(|h| h.id).collect();
        for h in &approx {
            assert!(
                want.binary_search(&h.id).is_ok(),
                "{when}: filter {i} returned {}",
                h.id
            );
        }
        let found = approx.iter().filter(|h| exact_ids.contains(&h.id)).count();
        assert!(
            found * 10 >= exact_ids.len() * 9,
            "{when}: filter {i}: {found} of {} exact hits",
            exact_ids.len()
        );
    }
}

fn scenario(fs: DynFs, root: &Path) {
    let config = CollectionConfig::new(DIM, Metric::L2).hnsw(HnswParams {
        m: 8,
        ef_construction: 64,
        ef_search: 64,
        seed: 5,
    });
    {
        let db = Database::open_with_fs(fs.clone(), root, common::options(1 << 20, 512)).unwrap();
        let c = db.create_collection("c", config).unwrap();
        c.upsert_batch((0..1500).map(|id| point(id, 0))).unwrap();
        c.checkpoint().unwrap();
        c.upsert_batch((1500..2000).map(|id| point(id, 0))).unwrap();
        for (field, kind) in [
            ("lang", PayloadIndexKind::Keyword),
            ("tags", PayloadIndexKind::Keyword),
            ("meta.lang", PayloadIndexKind::Keyword),
            ("year", PayloadIndexKind::Integer),
            ("price", PayloadIndexKind::Float),
            ("ok", PayloadIndexKind::Bool),
        ] {
            c.create_payload_index(field, kind).unwrap();
        }
        assert_eq!(c.payload_indexes().len(), 6);
        assert!(
            c.create_payload_index("lang", PayloadIndexKind::Integer)
                .is_err()
        );
        assert!(
            c.create_payload_index("a..b", PayloadIndexKind::Integer)
                .is_err()
        );
        check_all(&c, "after creating the indexes");
        // Changes after the checkpoint: replaced payloads, removed ones, deleted points.
        c.upsert_batch((0..600).step_by(6).map(|id| point(id, 1)))
            .unwrap();
        for id in (700..800).step_by(7) {
            c.delete(id).unwrap();
        }
        c.upsert_batch((900..920).map(|id| Point::new(id, common::vector(id, DIM))))
            .unwrap();
        check_all(&c, "with unsaved changes");
        c.checkpoint().unwrap();
        check_all(&c, "after a checkpoint");
        // Few changes against whole files of ~2,000 entries: deltas were written.
        let deltas = common::tree(fs.as_ref(), root)
            .iter()
            .filter(|(p, _)| p.to_string_lossy().ends_with(".delta"))
            .count();
        assert!(
            deltas >= 3,
            "{deltas} index deltas: {:?}",
            common::tree(fs.as_ref(), root)
                .iter()
                .map(|(p, b)| (p.display().to_string(), b.len()))
                .filter(|(p, _)| p.contains("payload-index"))
                .collect::<Vec<_>>()
        );
        c.upsert_batch((1..300).step_by(5).map(|id| point(id, 2)))
            .unwrap();
        assert!(c.verify().unwrap().is_ok());
    }
    let db = Database::open_with_fs(fs.clone(), root, common::options(1 << 20, 512)).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.payload_indexes().len(), 6);
    check_all(&c, "after reopening");
    assert!(c.drop_payload_index("tags").unwrap());
    assert!(!c.drop_payload_index("tags").unwrap());
    drop((c, db));
    let db = Database::open_with_fs(fs, root, common::options(1 << 20, 512)).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.payload_indexes().len(), 5);
    check_all(&c, "after dropping an index");
    let report = c.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn indexed_filters_answer_as_the_payloads_do() {
    scenario(SimFs::new().shared(), Path::new("/db"));
}

#[test]
fn indexed_filters_answer_as_the_payloads_do_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    scenario(RealFs::shared(), &dir.path().join("db"));
}

#[test]
fn a_damaged_index_file_is_refused_naming_it() {
    let fs = SimFs::new();
    let root = Path::new("/db");
    {
        let db = Database::open_with_fs(fs.shared(), root, common::options(1 << 20, 512)).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new(DIM, Metric::L2).flat())
            .unwrap();
        c.upsert_batch((0..100).map(|id| point(id, 0))).unwrap();
        c.create_payload_index("lang", PayloadIndexKind::Keyword)
            .unwrap();
    }
    let index = fs
        .all_paths()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("payload-index-"))
        .unwrap();
    let len = fs.read_file(&index).unwrap().len();
    fs.tamper(&index, |b| b[len - 3] ^= 1).unwrap();
    let db = Database::open_with_fs(fs.shared(), root, common::options(1 << 20, 512)).unwrap();
    let err = db.collection("c").unwrap_err();
    let name = index.file_name().unwrap().to_string_lossy().into_owned();
    assert!(format!("{err:?}").contains(&name), "{err:?}");
}
