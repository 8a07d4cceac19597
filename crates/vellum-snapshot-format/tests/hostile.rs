//! Hostile and damaged archives and chunk streams: always a typed error, nothing written
//! outside the staging area, the old state untouched.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use vellum_fs::rng::SplitMix64;
use vellum_fs::{Fs, SimFs};
use vellum_snapshot_format::format::{SectionHead, block_frame};
use vellum_snapshot_format::*;

/// A small generation whose archive is a few KiB, so every byte position can be tried.
fn small_archive() -> (SimFs, Vec<u8>, Tree) {
    let fs = SimFs::new();
    let src = tree(&[
        ("a", pattern(1, 5000)),
        ("dir/b", compressible(2, 9000)),
        ("empty", Vec::new()),
    ]);
    write_tree(&fs, &p("/gen"), &src);
    let opts = ExportOptions {
        compression: Compression::Zstd,
        ..small_opts(1, 7)
    };
    let (bytes, _) = archive_of(&fs, &p("/gen"), &opts);
    (fs, bytes, src)
}

fn decode_both(bytes: &[u8]) -> (Result<ArchiveInfo>, Result<ArchiveInfo>) {
    let streamed = decode_archive(&mut SliceSource::new(bytes), None, &mut NullSink);
    let fs = SimFs::new();
    let f = fs.create(Path::new("/x")).unwrap();
    f.write_at(bytes, 0).unwrap();
    (streamed, verify_file(f.as_ref()))
}

#[test]
fn truncation_at_every_length_is_a_typed_error() {
    let (_, bytes, _) = small_archive();
    assert!(decode_both(&bytes).0.is_ok());
    for len in 0..bytes.len() {
        let (a, b) = decode_both(&bytes[..len]);
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(a.is_bad_input() && b.is_bad_input(), "len {len}: {a} / {b}");
    }
    // Appended bytes are refused too.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        decode_both(&longer).0,
        Err(Error::TrailingBytes { .. })
    ));
}

#[test]
fn flipping_any_single_byte_is_detected() {
    let (_, bytes, _) = small_archive();
    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[at] ^= mask;
            let (a, b) = decode_both(&bad);
            assert!(
                a.is_err(),
                "flip {mask:#x} at {at} of {} accepted",
                bytes.len()
            );
            assert!(
                b.is_err(),
                "flip {mask:#x} at {at} accepted by the file decoder"
            );
        }
    }
}

/// Restores `bytes` over an existing target and checks the failure left no trace.
fn restore_must_fail_cleanly(bytes: &[u8], what: &str) -> Error {
    let fs = SimFs::new();
    let old = tree(&[("old-1", pattern(9, 100)), ("old/2", pattern(10, 7000))]);
    write_tree(&fs, &p("/db"), &old);
    let f = fs.create(&p("/in.vsnap")).unwrap();
    f.write_at(bytes, 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(&p("/")).unwrap();
    let before = fs.all_paths();
    let err = restore_chain(&fs, &[p("/in.vsnap")], &p("/db")).unwrap_err();
    assert!(err.is_bad_input(), "{what}: {err}");
    assert_eq!(fs.all_paths(), before, "{what}: paths changed");
    assert_eq!(
        read_tree(&fs, &p("/db")).unwrap(),
        old,
        "{what}: old state changed"
    );
    // The cleanup of the staging area is durable.
    let image = fs.crash_drop_unsynced();
    assert_eq!(
        image.all_paths(),
        before,
        "{what}: staging left behind after a crash"
    );
    err
}

#[test]
fn damaged_archives_never_touch_the_old_state() {
    let (_, bytes, _) = small_archive();
    let mut rng = SplitMix64::new(6);
    for _ in 0..60 {
        let at = rng.below(bytes.len() as u64) as usize;
        let mut bad = bytes.clone();
        bad[at] ^= 1 << rng.below(8);
        restore_must_fail_cleanly(&bad, &format!("flip at {at}"));
    }
    for _ in 0..30 {
        let len = rng.below(bytes.len() as u64) as usize;
        restore_must_fail_cleanly(&bytes[..len], &format!("truncated to {len}"));
    }
}

/// Assembles an archive by hand (the format module's encoders), so tests can put in it
/// what the writer refuses to write. `sections`: (kind, compression, name, blocks as
/// (raw_len, stored bytes), raw content for the hash/state).
/// One hand-built section: kind, compression, name, blocks as (raw_len, stored bytes), and
/// the raw content (for the hash and the state table).
type CraftedSection = (
    SectionKind,
    Compression,
    String,
    Vec<(u32, Vec<u8>)>,
    Vec<u8>,
);

struct Crafted {
    header: ArchiveHeader,
    sections: Vec<CraftedSection>,
}

impl Crafted {
    fn new() -> Self {
        Crafted {
            header: ArchiveHeader {
                kind: SnapshotKind::Full,
                block_bytes: 4096,
                id: SnapshotId::from_seed(77),
                parent: None,
                lsn_start: 0,
                lsn_end: 1,
                created_unix_ms: 0,
            },
            sections: Vec::new(),
        }
    }

    fn file(mut self, name: &str, content: &[u8]) -> Self {
        let blocks = content
            .chunks(4096)
            .map(|c| (c.len() as u32, c.to_vec()))
            .collect();
        self.sections.push((
            SectionKind::File,
            Compression::None,
            name.into(),
            blocks,
            content.to_vec(),
        ));
        self
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.header.encode().to_vec();
        let mut entries = Vec::new();
        let mut state = Vec::new();
        for (i, (kind, comp, name, blocks, content)) in self.sections.iter().enumerate() {
            let offset = out.len() as u64;
            out.extend(
                SectionHead {
                    kind: *kind,
                    compression: *comp,
                    index: i as u32,
                    name: name.clone(),
                }
                .encode(),
            );
            let mut totals = SectionTotals {
                content_hash: *blake3::hash(content).as_bytes(),
                ..Default::default()
            };
            for (raw_len, stored) in blocks {
                out.extend(block_frame(*raw_len, stored));
                out.extend(stored);
                totals.raw_bytes += u64::from(*raw_len);
                totals.stored_bytes += stored.len() as u64;
                totals.block_count += 1;
            }
            out.extend(block_frame(0, &[]));
            out.extend(totals.encode_trailer());
            entries.push(SectionEntry {
                kind: *kind,
                compression: *comp,
                name: name.clone(),
                header_offset: offset,
                totals,
            });
            if *kind == SectionKind::File {
                state.push(StateEntry {
                    name: name.clone(),
                    len: totals.raw_bytes,
                    hash: totals.content_hash,
                });
            }
        }
        state.sort();
        let footer = Footer {
            sections: entries,
            state,
            metadata: Vec::new(),
        }
        .encode();
        let footer_offset = out.len() as u64;
        out.extend(&footer);
        let trailer = format::Trailer {
            footer_offset,
            footer_len: footer.len() as u64,
            archive_bytes: out.len() as u64 + 64,
            hash: [0; 32],
        };
        out.extend(trailer.encode_hashed_part());
        let hash = blake3::hash(&out);
        out.extend(hash.as_bytes());
        out
    }
}

#[test]
fn the_hand_built_archive_helper_builds_valid_archives() {
    // Guards the hostile tests below: with good names the crafted archive verifies.
    let bytes = Crafted::new()
        .file("ok", &pattern(1, 10_000))
        .file("dir/ok2", b"x")
        .encode();
    let (a, b) = decode_both(&bytes);
    a.unwrap();
    b.unwrap();
}

#[test]
fn dot_dot_absolute_and_duplicate_names_are_refused_before_anything_is_written() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["../evil"], "`..` component"),
        (vec!["a/../../evil"], "`..` component"),
        (vec!["/etc/passwd"], "absolute path"),
        (vec!["a//b"], "empty path component"),
        (vec!["./a"], "`.` component"),
        (vec!["a\\..\\b"], "backslash"),
        (vec!["same", "same"], "twice"),
        (vec!["a", "a/b"], "directory"),
    ];
    for (names, why) in cases {
        let mut c = Crafted::new();
        for (i, n) in names.iter().enumerate() {
            c = c.file(n, &pattern(i as u64, 100));
        }
        let bytes = c.encode();
        let (a, b) = decode_both(&bytes);
        for err in [a.unwrap_err(), b.unwrap_err()] {
            assert!(
                matches!(
                    err,
                    Error::InvalidName { .. } | Error::DuplicateName { .. } | Error::Corrupt { .. }
                ),
                "{names:?}: {err}"
            );
            assert!(
                err.to_string().contains(why) || matches!(err, Error::Corrupt { .. }),
                "{names:?}: {err}"
            );
        }
        restore_must_fail_cleanly(&bytes, &format!("{names:?}"));
    }
    // Export refuses such names too, before reading anything.
    let fs = SimFs::new();
    let err = export_archive(
        &fs,
        &[SourceFile {
            name: "../x".into(),
            path: PathBuf::from("/nonexistent"),
        }],
        &small_opts(1, 1),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}

#[test]
fn a_decompression_bomb_is_stopped_at_the_recorded_block_size() {
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
    assert!(bomb.len() < 4096, "bomb is {} bytes", bomb.len());
    let mut c = Crafted::new();
    c.sections.push((
        SectionKind::File,
        Compression::Zstd,
        "bomb".into(),
        vec![(4096, bomb)],
        vec![0u8; 4096],
    ));
    let bytes = c.encode();
    let (a, b) = decode_both(&bytes);
    for err in [a.unwrap_err(), b.unwrap_err()] {
        assert!(matches!(err, Error::Decompress { .. }), "{err}");
    }
    restore_must_fail_cleanly(&bytes, "bomb");

    // A frame that decompresses to less than recorded is refused as well.
    let short = zstd::bulk::compress(&[0u8; 1000], 3).unwrap();
    let mut c = Crafted::new();
    c.sections.push((
        SectionKind::File,
        Compression::Zstd,
        "short".into(),
        vec![(4096, short)],
        vec![0u8; 4096],
    ));
    assert!(matches!(
        decode_both(&c.encode()).0,
        Err(Error::Decompress { .. })
    ));

    // A shrunken block in a section that says it is stored is refused.
    let mut c = Crafted::new();
    c.sections.push((
        SectionKind::File,
        Compression::None,
        "liar".into(),
        vec![(4096, vec![0; 100])],
        vec![0u8; 4096],
    ));
    assert!(matches!(
        decode_both(&c.encode()).0,
        Err(Error::Corrupt { .. })
    ));
}

fn good_chunks() -> (SimFs, Vec<Chunk>) {
    let fs = SimFs::new();
    write_tree(&fs, &p("/gen"), &sample_tree(3));
    let (chunks, _) = chunks_of(&fs, &p("/gen"), &small_opts(3, 1), 8192);
    (fs, chunks)
}

fn receiver(fs: &SimFs) -> ChunkReceiver {
    ChunkReceiver::open(
        fs.shared(),
        &p("/staging"),
        ImportOptions {
            max_archive_bytes: 1 << 30,
            ..ImportOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn wrong_final_totals_are_refused() {
    let (fs, chunks) = good_chunks();
    let n = chunks.len();
    type Edit = fn(&mut FinalTotals);
    let edits: [(&str, Edit); 5] = [
        ("bytes + 1", |t| t.total_bytes += 1),
        ("bytes - 1", |t| t.total_bytes -= 1),
        ("chunks + 1", |t| t.total_chunks += 1),
        ("chunks - 1", |t| t.total_chunks -= 1),
        ("hash", |t| t.archive_hash[3] ^= 1),
    ];
    for (what, edit) in edits {
        let mut bad = chunks.clone();
        edit(bad[n - 1].final_totals.as_mut().unwrap());
        let mut rx = receiver(&fs);
        let mut refused = false;
        for c in &bad {
            refused |= rx.receive(c).is_err();
        }
        if !refused {
            let err = rx.finish(&p("/out.vsnap")).unwrap_err();
            assert!(err.is_bad_input(), "{what}: {err}");
        } else {
            rx.abort().unwrap();
        }
        assert!(!fs.exists(&p("/out.vsnap")).unwrap(), "{what}");
        // Clean slate for the next case.
        if fs.exists(&p("/staging")).unwrap() {
            remove_tree(&fs, &p("/staging")).unwrap();
        }
    }
}

#[test]
fn overlapping_out_of_range_and_conflicting_chunks_are_refused_without_writing() {
    let (fs, chunks) = good_chunks();
    let mut rx = receiver(&fs);
    rx.receive(&chunks[1]).unwrap();
    let part_before = fs.read_file(&p("/staging").join(PART_FILE)).unwrap();
    let log_before = fs.read_file(&p("/staging").join(LOG_FILE)).unwrap();
    let mut overlap = chunks[2].clone();
    overlap.offset -= 1;
    let mut overflow = chunks[2].clone();
    overflow.offset = u64::MAX - 10;
    let mut too_far = chunks[2].clone();
    too_far.offset = 1 << 30;
    let mut same_seq = chunks[1].clone();
    same_seq.payload[0] ^= 1;
    let mut same_seq_moved = chunks[1].clone();
    same_seq_moved.offset += 8192 * 5;
    let mut other_snapshot = chunks[3].clone();
    other_snapshot.snapshot = SnapshotId::from_seed(12345);
    let mut seq0_elsewhere = chunks[3].clone();
    seq0_elsewhere.seq = 0;
    let mut empty = chunks[3].clone();
    empty.payload.clear();
    let cases: Vec<(&str, Chunk)> = vec![
        ("overlap", overlap),
        ("overflow", overflow),
        ("past the limit", too_far),
        ("same seq, other bytes", same_seq),
        ("same seq, other offset", same_seq_moved),
        ("other snapshot", other_snapshot),
        ("seq 0 not at 0", seq0_elsewhere),
        ("empty payload", empty),
    ];
    for (what, c) in cases {
        let err = rx.receive(&c).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ChunkConflict { .. }
                    | Error::ChunkOutOfRange { .. }
                    | Error::WrongSnapshot { .. }
                    | Error::BadChunk { .. }
            ),
            "{what}: {err}"
        );
    }
    assert_eq!(
        fs.read_file(&p("/staging").join(PART_FILE)).unwrap(),
        part_before
    );
    assert_eq!(
        fs.read_file(&p("/staging").join(LOG_FILE)).unwrap(),
        log_before
    );
    // Once the final chunk is in, a chunk past the end is out of range.
    let last = chunks.last().unwrap();
    rx.receive(last).unwrap();
    let mut beyond = chunks[2].clone();
    beyond.offset = last.final_totals.unwrap().total_bytes;
    beyond.seq = 2;
    assert!(matches!(
        rx.receive(&beyond),
        Err(Error::ChunkOutOfRange { .. } | Error::ChunkConflict { .. })
    ));
    let mut seq_beyond = chunks[2].clone();
    seq_beyond.seq = last.final_totals.unwrap().total_chunks;
    assert!(matches!(
        rx.receive(&seq_beyond),
        Err(Error::ChunkConflict { .. })
    ));
    // The good stream still completes afterwards.
    for c in &chunks {
        rx.receive(c).unwrap();
    }
    rx.finish(&p("/out.vsnap")).unwrap();
}

#[test]
fn damaged_encoded_chunks_are_refused() {
    let (_, chunks) = good_chunks();
    let enc = chunks[2].encode();
    assert_eq!(Chunk::decode(&enc).unwrap().0, chunks[2]);
    for at in (0..enc.len()).step_by(37).chain(0..CHUNK_HEADER_BYTES) {
        let mut bad = enc.clone();
        bad[at] ^= 0x10;
        assert!(Chunk::decode(&bad).is_err(), "flip at {at} accepted");
    }
    for len in 0..CHUNK_HEADER_BYTES + 10 {
        assert!(Chunk::decode(&enc[..len]).is_err());
    }
}

#[test]
fn a_chunk_stream_of_another_archive_spliced_in_fails_verification() {
    // Two exports of different data under the same id: each chunk is individually valid,
    // but mixing them cannot pass the block CRCs and the whole-archive hash.
    let fs = SimFs::new();
    write_tree(&fs, &p("/g1"), &sample_tree(1));
    write_tree(&fs, &p("/g2"), &sample_tree(2));
    let (a, _) = chunks_of(&fs, &p("/g1"), &small_opts(5, 1), 8192);
    let (b, _) = chunks_of(&fs, &p("/g2"), &small_opts(5, 1), 8192);
    assert_eq!(a.len(), b.len());
    let mut mixed = a.clone();
    mixed[4] = b[4].clone();
    let err = import(&fs, &mixed, "/s", "/out.vsnap").unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    assert!(!fs.exists(&p("/out.vsnap")).unwrap());
}
