//! Writable and read-only maps: coherence with positioned I/O, dirty pages that may reach
//! the disk at any time, flush as a durability barrier, and the map contract checks.

mod common;

use std::path::Path;

use common::read_all;
use vellum_fs::{CrashModel, Error, File, Fs, MapMut, RealFs, SimFs, create_dir_all_durable};

const PAGE: usize = 4096;

fn store(map: &MapMut, offset: usize, data: &[u8]) {
    // SAFETY: these tests hold no slices of the map while storing.
    unsafe { map.write(offset, data) };
}

fn load(map: &MapMut, offset: usize, len: usize) -> Vec<u8> {
    assert!(offset + len <= map.len());
    // SAFETY: in bounds (asserted), the map outlives the copy, and nothing stores
    // concurrently in these single-threaded tests.
    unsafe { std::slice::from_raw_parts(map.as_ptr().add(offset), len) }.to_vec()
}

fn mapped_file(fs: &dyn Fs, root: &Path, pages: usize) -> (Box<dyn File>, MapMut) {
    create_dir_all_durable(fs, root).unwrap();
    let file = fs.create(&root.join("seg")).unwrap();
    file.allocate((pages * PAGE) as u64).unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(root).unwrap();
    let map = file.map_mut(pages * PAGE).unwrap();
    (file, map)
}

fn stores_through_a_map_are_seen_by_reads_and_flush_makes_them_durable(fs: &dyn Fs, root: &Path) {
    let (file, map) = mapped_file(fs, root, 2);
    store(&map, 10, b"hello");
    let mut buf = [0; 5];
    file.read_at(&mut buf, 10).unwrap();
    assert_eq!(&buf, b"hello");
    file.write_at(b"WORLD", PAGE as u64 + 1).unwrap();
    assert_eq!(load(&map, PAGE + 1, 5), b"WORLD");
    map.flush().unwrap();
    file.sync_data().unwrap();
}

#[test]
fn maps_are_coherent_with_reads_and_writes_on_the_simulator() {
    let fs = SimFs::new();
    stores_through_a_map_are_seen_by_reads_and_flush_makes_them_durable(&fs, Path::new("/m"));
    fs.cut_power();
    let image = fs.crash_drop_unsynced();
    let bytes = read_all(&image, Path::new("/m/seg")).unwrap().unwrap();
    assert_eq!(&bytes[10..15], b"hello");
    assert_eq!(&bytes[PAGE + 1..PAGE + 6], b"WORLD");
}

#[test]
fn maps_are_coherent_with_reads_and_writes_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let fs = RealFs::new();
    stores_through_a_map_are_seen_by_reads_and_flush_makes_them_durable(&fs, dir.path());
    let bytes = read_all(&fs, &dir.path().join("seg")).unwrap().unwrap();
    assert_eq!(&bytes[10..15], b"hello");
    assert_eq!(&bytes[PAGE + 1..PAGE + 6], b"WORLD");
}

#[test]
fn unflushed_dirty_pages_may_or_may_not_reach_the_disk_each_on_its_own() {
    let fs = SimFs::new();
    let (_file, map) = mapped_file(&fs, Path::new("/m"), 3);
    store(&map, 0, &[1; 8]);
    store(&map, 2 * PAGE, &[3; 8]);
    fs.cut_power();
    let mut seen = std::collections::BTreeSet::new();
    for image in fs.crash_images(&CrashModel::torn_4k(), 64, 0) {
        let bytes = read_all(&image, Path::new("/m/seg")).unwrap().unwrap();
        assert_eq!(
            bytes.len(),
            3 * PAGE,
            "a mapped file keeps its synced length"
        );
        seen.insert((bytes[0], bytes[PAGE], bytes[2 * PAGE]));
    }
    let expected = [(0, 0, 0), (1, 0, 0), (0, 0, 3), (1, 0, 3)]
        .into_iter()
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn flushing_a_range_makes_only_that_range_durable() {
    let fs = SimFs::new();
    let (_file, map) = mapped_file(&fs, Path::new("/m"), 2);
    store(&map, 0, &[1; 8]);
    store(&map, PAGE, &[2; 8]);
    map.flush_range(0, PAGE).unwrap();
    fs.cut_power();
    let image = fs.crash_drop_unsynced();
    let bytes = read_all(&image, Path::new("/m/seg")).unwrap().unwrap();
    assert_eq!(bytes[0], 1);
    assert_eq!(bytes[PAGE], 0, "the second page was never flushed");
}

#[test]
fn the_simulator_refuses_writes_to_a_file_with_a_live_read_map() {
    let fs = SimFs::new();
    let file = fs.create(Path::new("/f")).unwrap();
    file.write_at(b"graph bytes", 0).unwrap();
    let view = file.map_read().unwrap();
    assert_eq!(&*view, b"graph bytes");
    let e = file.write_at(b"x", 0).unwrap_err();
    assert!(matches!(e, Error::Contract { .. }), "{e}");
    drop(view);
    file.write_at(b"G", 0).unwrap();
}

#[test]
fn the_simulator_refuses_to_shrink_a_file_below_a_live_map() {
    let fs = SimFs::new();
    let (file, map) = mapped_file(&fs, Path::new("/m"), 2);
    let e = file.set_len(PAGE as u64).unwrap_err();
    assert!(matches!(e, Error::Contract { .. }), "{e}");
    file.set_len(3 * PAGE as u64).unwrap();
    drop(map);
    file.set_len(PAGE as u64).unwrap();
}

/// Stores through a map that is then dropped without a flush: a new map and a read see
/// them (the page cache kept them), and only a crash may lose them.
fn stores_survive_an_unmap_without_a_flush(fs: &dyn Fs, root: &Path) {
    let (file, map) = mapped_file(fs, root, 2);
    store(&map, PAGE + 7, b"kept");
    drop(map);
    let mut buf = [0; 4];
    file.read_at(&mut buf, PAGE as u64 + 7).unwrap();
    assert_eq!(&buf, b"kept", "a read after the unmap");
    drop(file);
    let again = fs.open(&root.join("seg")).unwrap();
    let map = again.map_mut(2 * PAGE).unwrap();
    assert_eq!(load(&map, PAGE + 7, 4), b"kept", "a new map of the file");
}

#[test]
fn stores_survive_an_unmap_without_a_flush_on_the_simulator_until_a_crash() {
    let fs = SimFs::new();
    stores_survive_an_unmap_without_a_flush(&fs, Path::new("/m"));
    fs.cut_power();
    let image = fs.crash_drop_unsynced();
    let bytes = read_all(&image, Path::new("/m/seg")).unwrap().unwrap();
    assert_eq!(
        &bytes[PAGE + 7..PAGE + 11],
        [0; 4],
        "never flushed, so never durable"
    );
}

#[test]
fn stores_survive_an_unmap_without_a_flush_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    stores_survive_an_unmap_without_a_flush(&RealFs::new(), dir.path());
}
