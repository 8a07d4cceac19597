//! Entry points of the fuzz targets, kept here so ordinary tests can replay a corpus
//! (`tests/fuzz_corpus.rs` runs every file under `fuzz/corpus/<target>/`). Each function
//! panics only if an invariant breaks; errors from hostile input are expected.

use std::path::{Path, PathBuf};

use vellum_fs::{Fs, SimFs};

use crate::chunk::Chunk;
use crate::import::{ChunkReceiver, ImportOptions};
use crate::reader::{NullSink, SliceSource, decode_archive, verify_file};
use crate::restore::restore_chain;

/// Largest archive the chunk fuzz target accepts (keeps SimFs memory small).
pub const FUZZ_MAX_ARCHIVE_BYTES: u64 = 1 << 20;

/// Decodes `data` as an archive, from memory and from a file (footer first), and restores it
/// when it verifies. Invariants: no panic; the two decoders agree; a verified archive
/// restores and its files equal what the decoder reported.
pub fn fuzz_archive(data: &[u8]) {
    let streamed = decode_archive(&mut SliceSource::new(data), None, &mut NullSink);
    let fs = SimFs::new();
    let archive = Path::new("/a.vsnap");
    let file = fs.create(archive).expect("SimFs create");
    file.write_at(data, 0).expect("SimFs write");
    let from_file = verify_file(file.as_ref());
    drop(file);
    match (&streamed, &from_file) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the two decoders disagree"),
        (Ok(a), Err(e)) => panic!("streaming decoder accepted {a:?} but file decoder said {e}"),
        (Err(_), Ok(b)) => panic!("file decoder accepted {b:?} but streaming decoder refused"),
        (Err(_), Err(_)) => {}
    }
    if let Ok(info) = streamed
        && info.header.kind == crate::format::SnapshotKind::Full
    {
        restore_chain(&fs, &[archive.to_path_buf()], Path::new("/t"))
            .expect("a verified full archive restores");
        for e in &info.footer.state {
            let bytes = fs
                .read_file(&Path::new("/t").join(&e.name))
                .expect("restored file exists");
            assert_eq!(bytes.len() as u64, e.len);
            assert_eq!(*blake3::hash(&bytes).as_bytes(), e.hash);
        }
    }
}

/// Feeds `data` to a chunk importer: the first byte holds options (bit 0: reopen the
/// receiver after every accepted chunk, bit 1: deliver in reverse, bit 2: sync every chunk,
/// bit 3: reopen without syncing first), the rest is a
/// concatenation of encoded chunks (undecodable bytes are skipped one at a time).
/// Invariants: no panic; nothing is written outside the staging directory unless `finish`
/// succeeds; a published archive verifies and equals the chunks' bytes.
pub fn fuzz_chunks(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut chunks = Vec::new();
    while !rest.is_empty() && chunks.len() < 4096 {
        match Chunk::decode(rest) {
            Ok((chunk, used)) => {
                chunks.push(chunk);
                rest = &rest[used..];
            }
            Err(_) => rest = &rest[1..],
        }
    }
    if mode & 2 != 0 {
        chunks.reverse();
    }
    let fs = SimFs::new();
    let staging = PathBuf::from("/in/staging");
    let dest = PathBuf::from("/out.vsnap");
    let opts = ImportOptions {
        max_archive_bytes: FUZZ_MAX_ARCHIVE_BYTES,
        // Bit 2: sync after every chunk instead of in batches.
        sync_every_bytes: if mode & 4 != 0 { 0 } else { 16 << 10 },
    };
    let mut rx = ChunkReceiver::open(fs.shared(), &staging, opts).expect("open staging");
    let mut accepted = Vec::new();
    for chunk in &chunks {
        if rx.receive(chunk).is_ok() {
            accepted.push(chunk.clone());
            if mode & 1 != 0 {
                // Bit 3: reopen without syncing (pending chunks are forgotten).
                if mode & 8 == 0 {
                    rx.sync().expect("sync");
                }
                drop(rx);
                rx = ChunkReceiver::open(fs.shared(), &staging, opts).expect("reopen staging");
            }
        }
    }
    let received = rx.received_chunks();
    assert!(received <= accepted.len());
    match rx.finish(&dest) {
        Ok(info) => {
            let mut bytes = vec![0u8; info.archive_bytes as usize];
            for c in &accepted {
                let at = c.offset as usize;
                bytes[at..at + c.payload.len()].copy_from_slice(&c.payload);
            }
            assert_eq!(fs.read_file(&dest).expect("published"), bytes);
            let file = fs.open(&dest).expect("open published");
            assert_eq!(
                verify_file(file.as_ref()).expect("published archive verifies"),
                info
            );
        }
        Err(_) => {
            assert!(
                !fs.exists(&dest).expect("exists"),
                "a failed import published"
            );
            for p in fs.all_paths() {
                assert!(
                    p == Path::new("/in") || p.starts_with(&staging),
                    "a failed import wrote {}",
                    p.display()
                );
            }
        }
    }
}
