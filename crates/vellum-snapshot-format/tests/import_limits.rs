//! Restore within limits: archives built by the crate's own writer that would fill the disk
//! or write names nobody asked for are refused by their footer before anything is written,
//! and a section is never written past the size its footer declares. Every scenario runs on
//! the simulator (which also counts the bytes written) and on the real file system.

mod common;

use std::path::PathBuf;

use common::*;
use vellum_fs::{Fs, OpKind, RealFs, SimFs};
use vellum_snapshot_format::format::{FOOTER_HEAD_BYTES, TRAILER_BYTES, Trailer};
use vellum_snapshot_format::*;

/// Raw bytes per block in these archives (the writer's default).
const BLOCK: usize = 256 << 10;

/// Writes an archive with the crate's writer: each file is `(name, fill byte, length)`.
fn archive(files: &[(&str, u8, usize)]) -> Vec<u8> {
    let header = ArchiveHeader {
        kind: SnapshotKind::Full,
        block_bytes: BLOCK as u32,
        id: SnapshotId::from_seed(41),
        parent: None,
        lsn_start: 0,
        lsn_end: 1,
        created_unix_ms: 0,
    };
    let mut out = Vec::new();
    let mut w = ArchiveWriter::new(&mut out, header, 3).unwrap();
    let mut state = Vec::new();
    for &(name, fill, len) in files {
        w.begin_section(SectionKind::File, Compression::Zstd, name)
            .unwrap();
        let piece = vec![fill; BLOCK];
        let mut left = len;
        while left > 0 {
            let n = left.min(BLOCK);
            w.write(&piece[..n]).unwrap();
            left -= n;
        }
        let entry = w.end_section().unwrap();
        state.push(StateEntry {
            name: entry.name,
            len: entry.totals.raw_bytes,
            hash: entry.totals.content_hash,
        });
    }
    w.finish(state, Vec::new()).unwrap();
    out
}

/// Re-encodes the footer of a valid archive after `edit`, with a fresh trailer and hash:
/// the archive is well formed but its footer says what `edit` made it say.
fn rewrite_footer(bytes: &[u8], edit: impl FnOnce(&mut Footer)) -> Vec<u8> {
    let t_at = bytes.len() - TRAILER_BYTES;
    let trailer = Trailer::decode(bytes[t_at..].try_into().unwrap(), t_at as u64).unwrap();
    let f_at = trailer.footer_offset as usize;
    let f_end = f_at + trailer.footer_len as usize;
    let head = bytes[f_at..f_at + FOOTER_HEAD_BYTES].try_into().unwrap();
    let crc = u32::from_le_bytes(bytes[f_end - 4..f_end].try_into().unwrap());
    let body = &bytes[f_at + FOOTER_HEAD_BYTES..f_end - 4];
    let mut footer = Footer::decode(head, body, crc, f_at as u64).unwrap();
    edit(&mut footer);
    let encoded = footer.encode();
    let mut out = bytes[..f_at].to_vec();
    out.extend(&encoded);
    let trailer = Trailer {
        footer_offset: f_at as u64,
        footer_len: encoded.len() as u64,
        archive_bytes: (out.len() + TRAILER_BYTES) as u64,
        hash: [0; 32],
    };
    out.extend(trailer.encode_hashed_part());
    let hash = blake3::hash(&out);
    out.extend(hash.as_bytes());
    out
}

/// Sets the declared size of file `name` (section and state entry agree, as they must).
fn declare_size(footer: &mut Footer, name: &str, len: u64) {
    for s in footer.sections.iter_mut().filter(|s| s.name == name) {
        s.totals.raw_bytes = len;
    }
    for e in footer.state.iter_mut().filter(|e| e.name == name) {
        e.len = len;
    }
}

/// One disk to run a scenario on; `sim` is set on the simulator, which counts bytes.
struct Disk<'a> {
    fs: &'a dyn Fs,
    root: PathBuf,
    sim: Option<&'a SimFs>,
}

fn on_every_disk(scenario: impl Fn(&Disk<'_>)) {
    let sim = SimFs::new();
    scenario(&Disk {
        fs: &sim,
        root: p("/work"),
        sim: Some(&sim),
    });
    let dir = tempfile::tempdir().unwrap();
    scenario(&Disk {
        fs: &RealFs::new(),
        root: dir.path().to_path_buf(),
        sim: None,
    });
}

impl Disk<'_> {
    /// Restores `bytes` over a target holding an old file and expects a failure that wrote
    /// at most `allowed_bytes` (and, when that is 0, created nothing at all), left no
    /// staging directory and kept the old state. Returns the error.
    fn restore_fails(
        &self,
        bytes: &[u8],
        limits: &ImportLimits,
        accept: &dyn Fn(&str) -> bool,
        allowed_bytes: u64,
    ) -> Error {
        let fs = self.fs;
        let archive = self.root.join("in.vsnap");
        let target = self.root.join("db");
        let old = tree(&[("old", pattern(5, 300))]);
        write_tree(fs, &target, &old);
        let f = fs.create(&archive).unwrap();
        f.write_at(bytes, 0).unwrap();
        f.sync_data().unwrap();
        let before = self.sim.map(|s| {
            s.record_ops();
            s.stats().bytes_written
        });
        let err = restore_chain_with(fs, std::slice::from_ref(&archive), &target, limits, accept)
            .expect_err("the restore must be refused");
        if let (Some(sim), Some(before)) = (self.sim, before) {
            let written = sim.stats().bytes_written - before;
            assert!(
                written <= allowed_bytes,
                "{err}: wrote {written} bytes, allowed {allowed_bytes}"
            );
            if allowed_bytes == 0 {
                let made: Vec<OpKind> = sim
                    .op_log()
                    .into_iter()
                    .filter(|k| matches!(k, OpKind::Create | OpKind::CreateDir | OpKind::Write))
                    .collect();
                assert!(made.is_empty(), "{err}: {made:?} before the refusal");
            }
        }
        assert_eq!(read_tree(fs, &target).unwrap(), old, "{err}: old state");
        let staging = self.root.join(".db.restore-staging");
        assert!(!fs.exists(&staging).unwrap(), "{err}: staging left behind");
        // Clean slate for the next case on this disk.
        remove_tree(fs, &target).unwrap();
        fs.remove_file(&archive).unwrap();
        err
    }
}

fn any_name(_: &str) -> bool {
    true
}

#[test]
fn a_file_growing_past_its_declared_size_is_stopped_at_that_size() {
    // 128 zstd frames of zeros (32 MiB raw, a few KiB stored) whose footer says 256 KiB.
    let honest = archive(&[("keep", 7, 1000), ("bomb", 0, 128 * BLOCK)]);
    assert!(honest.len() < 64 << 10, "{} bytes", honest.len());
    let lying = rewrite_footer(&honest, |f| declare_size(f, "bomb", BLOCK as u64));
    on_every_disk(|disk| {
        let err = disk.restore_fails(
            &lying,
            &ImportLimits::default(),
            &any_name,
            (1000 + BLOCK) as u64,
        );
        match &err {
            Error::SectionOverrun { name, declared, .. } => {
                assert_eq!((name.as_str(), *declared), ("bomb", BLOCK as u64));
            }
            other => panic!("expected an overrun naming the file, got {other}"),
        }
        assert!(err.to_string().contains("\"bomb\""), "{err}");
    });
}

#[test]
fn a_chain_declaring_more_than_the_budget_is_refused_before_anything_is_written() {
    let honest = archive(&[("keep", 7, 1000), ("bomb", 0, 128 * BLOCK)]);
    // Beyond the default budget of 1 TiB, as declared by the footer.
    let huge = rewrite_footer(&honest, |f| declare_size(f, "bomb", 2 << 40));
    on_every_disk(|disk| {
        let err = disk.restore_fails(&huge, &ImportLimits::default(), &any_name, 0);
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("\"bomb\"") && text.contains(&(1u64 << 40).to_string()));
        // Honest sizes over a budget the caller lowered.
        let limits = ImportLimits::default().with_max_total_bytes(16 << 20);
        let err = disk.restore_fails(&honest, &limits, &any_name, 0);
        match err {
            Error::LimitExceeded { value, limit, .. } => {
                assert_eq!((value, limit), (1000 + 128 * BLOCK as u64, 16 << 20));
            }
            other => panic!("expected the budget, got {other}"),
        }
    });
}

#[test]
fn thousands_of_extra_files_are_refused_before_anything_is_written() {
    let names: Vec<String> = (0..3000).map(|i| format!("extra/{i:04}")).collect();
    let mut files = vec![("keep", 1u8, 10usize)];
    files.extend(names.iter().map(|n| (n.as_str(), 2u8, 1usize)));
    let bytes = archive(&files);
    on_every_disk(|disk| {
        let limits = ImportLimits::default().with_max_files(1000);
        let err = disk.restore_fails(&bytes, &limits, &any_name, 0);
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    value: 3001,
                    limit: 1000,
                    ..
                }
            ),
            "{err}"
        );
        // An allow-list refuses the first extra file by name.
        let only_keep = |n: &str| n == "keep";
        let err = disk.restore_fails(&bytes, &ImportLimits::default(), &only_keep, 0);
        match err {
            Error::RefusedName { name, .. } => assert_eq!(name, "extra/0000"),
            other => panic!("expected a refused name, got {other}"),
        }
    });
}

#[test]
fn deep_names_and_names_with_controls_or_overrides_are_refused_before_anything_is_written() {
    let deep = vec!["d"; 512].join("/");
    let hostile = [
        deep.as_str(),
        "new\nline",
        "carriage\rreturn",
        "invoice\u{202E}fdp.exe",
        "dir/\u{2066}isolate",
    ];
    on_every_disk(|disk| {
        for name in hostile {
            let bytes = archive(&[("keep", 1, 10), (name, 2, 10)]);
            let err = disk.restore_fails(&bytes, &ImportLimits::default(), &any_name, 0);
            match &err {
                Error::RefusedName { name: n, .. } => assert_eq!(n, name),
                other => panic!("{name:?}: expected a refused name, got {other}"),
            }
            // The message shows the name escaped: the newline or override is visible.
            assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
        }
    });
}

#[test]
fn an_archive_within_the_limits_and_the_allow_list_restores() {
    let bytes = archive(&[("keep", 1, 10), ("dir/also", 2, 3 * BLOCK + 5)]);
    on_every_disk(|disk| {
        let path = disk.root.join("ok.vsnap");
        disk.fs.create_dir_all(&disk.root).unwrap();
        let f = disk.fs.create(&path).unwrap();
        f.write_at(&bytes, 0).unwrap();
        f.sync_data().unwrap();
        let limits = ImportLimits::default()
            .with_max_total_bytes(3 * BLOCK as u64 + 15)
            .with_max_files(2)
            .with_max_name_depth(2)
            .with_max_name_bytes(8);
        let accept = |n: &str| n == "keep" || n == "dir/also";
        let target = disk.root.join("restored");
        let report = restore_chain_with(disk.fs, &[path], &target, &limits, &accept).unwrap();
        assert_eq!(report.bytes_written, 3 * BLOCK as u64 + 15);
        let got = read_tree(disk.fs, &target).unwrap();
        assert_eq!(got["dir/also"].len(), 3 * BLOCK + 5);
        assert_eq!(got["keep"], vec![1u8; 10]);
    });
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let d = ImportLimits::default();
    assert_eq!(d.max_total_bytes, 1 << 40);
    assert_eq!(d.max_files, 65_536);
    assert_eq!(d.max_name_bytes, 255);
    assert_eq!(d.max_name_depth, 8);
}
