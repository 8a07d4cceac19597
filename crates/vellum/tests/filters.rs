//! Typed filters (issue 15, item 2): a filtered search returns exactly the nearest admitted
//! points (flat, and HNSW searched exactly), `count` and `points_matching` agree with the
//! filter evaluated point by point, and `delete_by_filter` deletes exactly the admitted
//! points, durably.

mod common;

use std::collections::BTreeSet;

use vellum::filter::{Condition, Filter, Range};
use vellum::fs::DynFs;
use vellum::{CollectionConfig, Database, HnswParams, Metric, Point, SearchFilter, SearchParams};

const DIM: usize = 8;
const N: u64 = 1200;

fn payload(id: u64) -> Option<Vec<u8>> {
    let lang = ["en", "de", "fr"][(id % 3) as usize];
    match id % 50 {
        0 => None,
        1 => Some(b"not json".to_vec()),
        _ => Some(
            format!(
                r#"{{"lang": "{lang}", "year": {}, "tags": ["t{}", "all"], "meta": {{"score": {}}}}}"#,
                2000 + id % 30,
                id % 4,
                (id % 100) as f64 / 100.0
            )
            .into_bytes(),
        ),
    }
}

fn point(id: u64) -> Point {
    let p = Point::new(id, common::vector(id, DIM));
    match payload(id) {
        Some(bytes) => p.with_payload(bytes),
        None => p,
    }
}

fn filters() -> Vec<Filter> {
    vec![
        Filter::default().must(Condition::matches("lang", "en")),
        Filter::default()
            .must(Condition::matches("lang", "en"))
            .must(Condition::range("year", Range::at_least(2020.0))),
        Filter::default()
            .should(Condition::matches("tags", "t1"))
            .should(Condition::has_id([0, 1, 2])),
        Filter::default()
            .must(Condition::range("meta.score", Range::between(0.2, 0.3)))
            .must_not(Condition::one_of("lang", ["de", "fr"])),
        Filter::default().must(Condition::is_empty("lang")),
        r#"{"must": [{"key": "year", "match": {"any": [2001, 2002]}}]}"#
            .parse()
            .unwrap(),
    ]
}

fn admitted(filter: &Filter, ids: impl Iterator<Item = u64>) -> BTreeSet<u64> {
    ids.filter(|&id| filter.matches(id, payload(id).as_deref()))
        .collect()
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn filtered_search_count_points_and_delete_agree_with_the_filter(
    fs: DynFs,
    root: &std::path::Path,
) {
    let db = Database::open_with_fs(fs.clone(), root, common::options(1 << 20, 256)).unwrap();
    let hnsw = CollectionConfig::new(DIM, Metric::L2).hnsw(HnswParams {
        m: 8,
        ef_construction: 64,
        ef_search: 64,
        seed: 3,
    });
    for (name, config) in [
        ("flat", CollectionConfig::new(DIM, Metric::L2).flat()),
        ("hnsw", hnsw),
    ] {
        let c = db.create_collection(name, config).unwrap();
        for start in (0..N).step_by(200) {
            c.upsert_batch((start..start + 200).map(point)).unwrap();
        }
        c.wait_indexed().unwrap();
        let query = common::vector(7_777, DIM);
        for f in filters() {
            let want = admitted(&f, 0..N);
            assert!(!want.is_empty() && want.len() < N as usize, "{f:?}");
            assert_eq!(
                c.count(Some(&f)).unwrap(),
                want.len() as u64,
                "{name} {f:?}"
            );
            let listed: BTreeSet<u64> = c
                .points_matching(&f)
                .unwrap()
                .map(|p| p.unwrap().id)
                .collect();
            assert_eq!(listed, want, "{name} {f:?}");
            let mut nearest: Vec<(f32, u64)> = want
                .iter()
                .map(|&id| (distance(&common::vector(id, DIM), &query), id))
                .collect();
            nearest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let expected: Vec<u64> = nearest.iter().take(10).map(|n| n.1).collect();
            for exact in [false, true] {
                let params = SearchParams {
                    filter: Some(SearchFilter::Where(&f)),
                    exact,
                    ..SearchParams::default()
                };
                let hits: Vec<u64> = c
                    .search_with(&query, 10, &params)
                    .unwrap()
                    .iter()
                    .map(|h| h.id)
                    .collect();
                assert!(hits.iter().all(|id| want.contains(id)), "{name} {f:?}");
                if exact || name == "flat" {
                    assert_eq!(hits, expected, "{name} exact={exact} {f:?}");
                }
            }
        }
        assert_eq!(c.count(None).unwrap(), N);
        // Delete the English points from 2020 on; everything else stays, across a reopen.
        let doomed = &filters()[1];
        let gone = admitted(doomed, 0..N);
        assert_eq!(c.delete_by_filter(doomed).unwrap(), gone.len() as u64);
        assert_eq!(c.count(Some(doomed)).unwrap(), 0);
        assert_eq!(c.delete_by_filter(doomed).unwrap(), 0);
        let live: BTreeSet<u64> = (0..N).filter(|id| !gone.contains(id)).collect();
        assert_eq!(c.ids().into_iter().collect::<BTreeSet<_>>(), live);
    }
    drop(db);
    let db = Database::open_with_fs(fs, root, common::options(1 << 20, 256)).unwrap();
    let gone = admitted(&filters()[1], 0..N);
    for name in ["flat", "hnsw"] {
        let c = db.collection(name).unwrap();
        let ids: BTreeSet<u64> = c.ids().into_iter().collect();
        assert_eq!(ids, (0..N).filter(|id| !gone.contains(id)).collect());
        let en = &filters()[0];
        assert_eq!(
            c.count(Some(en)).unwrap(),
            admitted(en, ids.iter().copied()).len() as u64
        );
    }
}

on_both_file_systems!(filtered_search_count_points_and_delete_agree_with_the_filter);
