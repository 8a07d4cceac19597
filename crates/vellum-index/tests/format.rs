//! The graph file decoder is total: damaged or forged bytes give a typed error.

mod common;

use common::random_data;
use proptest::prelude::*;
use vellum_index::{Error, FlatVectors, HEADER_LEN, Hnsw, HnswParams, MAGIC, Metric, VERSION};

const M: usize = 4;
const M0: usize = 2 * M;

fn small_graph(rows: usize) -> (Vec<f32>, Vec<u8>) {
    let data = random_data(5, rows, 3);
    let source = FlatVectors::new(&data, 3);
    let index = Hnsw::new(
        3,
        Metric::L2,
        HnswParams {
            m: M,
            ..HnswParams::default()
        },
    )
    .unwrap();
    index
        .insert_batch(&source, &(0..rows as u64).collect::<Vec<u64>>())
        .unwrap();
    let bytes = index.to_bytes().unwrap();
    (data, bytes)
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn set_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

/// Recomputes every checksum so a forged field reaches the structural checks.
fn reseal(bytes: &mut [u8]) {
    let n = u32_at(bytes, 40) as usize;
    let upper_words = u64::from_le_bytes(bytes[64..72].try_into().unwrap()) as usize;
    let sizes = [8 * n, 8 * n, 4 * n * (1 + M0), 4 * upper_words];
    let mut start = HEADER_LEN;
    for (i, size) in sizes.into_iter().enumerate() {
        let crc = crc32fast::hash(&bytes[start..start + size]);
        set_u32(bytes, 72 + 4 * i, crc);
        start += size;
    }
    let crc = crc32fast::hash(&bytes[..124]);
    set_u32(bytes, 124, crc);
}

fn expect_corrupt(bytes: Vec<u8>, needle: &str) {
    match Hnsw::from_bytes(bytes) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            )
        }
        other => panic!("expected a corrupt-file error about {needle:?}, got {other:?}"),
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    let (_, bytes) = small_graph(60);
    assert!(Hnsw::from_bytes(bytes.clone()).is_ok());
    for offset in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[offset] ^= 0x20;
        assert!(
            Hnsw::from_bytes(damaged).is_err(),
            "flip at byte {offset} was accepted"
        );
    }
}

#[test]
fn every_truncation_and_extension_is_detected() {
    let (_, bytes) = small_graph(60);
    for len in 0..bytes.len() {
        assert!(
            Hnsw::from_bytes(bytes[..len].to_vec()).is_err(),
            "truncated to {len} accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 8]);
    expect_corrupt(longer, "header describes");
}

#[test]
fn a_newer_version_is_refused_with_its_number() {
    let (_, mut bytes) = small_graph(10);
    set_u32(&mut bytes, 8, VERSION + 1);
    assert!(matches!(
        Hnsw::from_bytes(bytes),
        Err(Error::UnsupportedVersion { found, supported }) if found == VERSION + 1 && supported == VERSION
    ));
}

#[test]
fn forged_files_with_valid_checksums_are_refused_before_search_can_follow_a_bad_link() {
    let (data, bytes) = small_graph(60);
    let n = 60;
    let layer0 = HEADER_LEN + 16 * n;
    // Sanity: the untouched file opens and searches.
    let source = FlatVectors::new(&data, 3);
    Hnsw::from_bytes(bytes.clone())
        .unwrap()
        .search(&source, &data[..3], 3)
        .unwrap();

    let mut forged = bytes.clone();
    set_u32(&mut forged, layer0 + 4, n as u32);
    reseal(&mut forged);
    expect_corrupt(forged, "out of range");

    let mut forged = bytes.clone();
    set_u32(&mut forged, layer0, M0 as u32 + 1);
    reseal(&mut forged);
    expect_corrupt(forged, "more than");

    let mut forged = bytes.clone();
    forged[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal(&mut forged);
    expect_corrupt(forged, "strictly increasing");

    // A link on level 1 to a node that has only level 0.
    let levels = HEADER_LEN + 8 * n;
    let upper = layer0 + 4 * n * (1 + M0);
    let low = (0..n)
        .find(|&v| u32_at(&bytes, levels + 8 * v) == 0)
        .unwrap();
    let mut forged = bytes.clone();
    set_u32(&mut forged, upper, 1);
    set_u32(&mut forged, upper + 4, low as u32);
    reseal(&mut forged);
    expect_corrupt(forged, "has no level");

    let mut forged = bytes.clone();
    set_u32(&mut forged, levels + 4, 1); // the first node's upper offset must be 0
    reseal(&mut forged);
    expect_corrupt(forged, "upper offset");

    let mut forged = bytes.clone();
    set_u32(&mut forged, 44, n as u32); // entry node
    reseal(&mut forged);
    expect_corrupt(forged, "entry node");

    let mut forged = bytes.clone();
    set_u32(&mut forged, 16, 9); // metric
    reseal(&mut forged);
    expect_corrupt(forged, "unknown metric");

    let mut forged = bytes;
    set_u32(&mut forged, 40, u32::MAX - 1); // node count far beyond the file
    let crc = crc32fast::hash(&forged[..124]);
    set_u32(&mut forged, 124, crc);
    expect_corrupt(forged, "header describes");
}

#[test]
fn an_empty_graph_round_trips() {
    let index = Hnsw::new(7, Metric::Dot, HnswParams::default()).unwrap();
    let bytes = index.to_bytes().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN);
    let reopened = Hnsw::from_bytes(bytes).unwrap();
    assert!(reopened.is_empty());
    let data = [0.0f32; 7];
    assert!(
        reopened
            .search(&FlatVectors::new(&data, 7), &data, 3)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_version_1_fixture_still_opens_and_searches() {
    // tests/fixtures/graph-v1.bin is `small_graph(60)` (60 rows of random_data(5, 60, 3),
    // M = 4, L2) as written by format version 1. It must keep opening in every later build.
    let bytes = include_bytes!("fixtures/graph-v1.bin").to_vec();
    assert_eq!(&bytes[..8], &MAGIC);
    let index = Hnsw::from_bytes(bytes).unwrap();
    assert_eq!(
        (index.len(), index.dim(), index.metric()),
        (60, 3, Metric::L2)
    );
    let data = random_data(5, 60, 3);
    let source = FlatVectors::new(&data, 3);
    for row in 0..60u64 {
        let query = &data[row as usize * 3..row as usize * 3 + 3];
        assert_eq!(index.search(&source, query, 1).unwrap()[0].id, row);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_give_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(Hnsw::from_bytes(bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_magic_and_version_give_an_error(
        tail in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&tail);
        prop_assert!(Hnsw::from_bytes(bytes).is_err());
    }
}
