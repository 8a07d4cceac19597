//! Damaged and forged index files are typed errors naming the file, the byte offset and
//! the field, never a panic and never a view: every byte flip, every truncation, and each
//! header field forged with valid checksums.

mod common;

use std::path::PathBuf;

use common::files::*;
use vellum_index::{Error, FILE_HEADER_LEN, FILE_VERSION, Metric};

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
