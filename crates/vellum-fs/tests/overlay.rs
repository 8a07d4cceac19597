//! The copy-on-write overlay: every change is visible through it and none reaches the base,
//! on both file systems.

use std::path::Path;

use vellum_fs::{DynFs, Fs, OverlayFs, RealFs, SimFs};

fn read(fs: &dyn Fs, path: &Path) -> Vec<u8> {
    let f = fs.open(path).unwrap();
    let mut b = vec![0; f.len().unwrap() as usize];
    f.read_at(&mut b, 0).unwrap();
    b
}

fn changes_stay_in_the_overlay(base: DynFs, root: &Path) {
    let a = root.join("a");
    let b = root.join("b");
    let gone = root.join("gone");
    for (p, bytes) in [(&a, &b"base a"[..]), (&gone, b"to remove")] {
        let f = base.create(p).unwrap();
        f.write_at(bytes, 0).unwrap();
        f.sync_data().unwrap();
    }
    base.sync_dir(root).unwrap();
    let over = OverlayFs::new(base.clone());
    // A handle opened before the first change sees the change too.
    let early = over.open(&a).unwrap();
    over.open(&a).unwrap().write_at(b"OVER", 0).unwrap();
    let mut buf = [0u8; 6];
    early.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"OVER a");
    early.set_len(2).unwrap();
    assert_eq!(read(&over, &a), b"OV");
    over.create(&b).unwrap().append(b"new").unwrap();
    over.remove_file(&gone).unwrap();
    over.create_dir_all(&root.join("d/e")).unwrap();
    over.rename(&b, &root.join("d/e/b")).unwrap();
    assert_eq!(read(&over, &root.join("d/e/b")), b"new");
    assert!(!over.exists(&gone).unwrap() && !over.exists(&b).unwrap());
    assert_eq!(over.list_dir(root).unwrap(), vec!["a", "d"]);
    assert!(over.open(&a).unwrap().map_read().unwrap().as_slice() == b"OV");
    let map = over.open(&a).unwrap().map_mut(2).unwrap();
    // SAFETY: nothing else reads or writes this private map.
    unsafe { map.write(0, b"XY") };
    map.flush().unwrap();
    // The base is exactly as it was.
    assert_eq!(read(base.as_ref(), &a), b"base a");
    assert_eq!(read(base.as_ref(), &gone), b"to remove");
    assert!(!base.exists(&b).unwrap() && !base.exists(&root.join("d")).unwrap());
    let mut names = base.list_dir(root).unwrap();
    names.sort();
    assert_eq!(names, vec!["a", "gone"]);
    // A private map of a base file changes only memory.
    let base_map = over.open(&gone).err();
    assert!(base_map.is_some(), "a removed file cannot be opened");
}

#[test]
fn changes_stay_in_the_overlay_on_sim() {
    let sim = SimFs::new();
    sim.create_dir_all(Path::new("/r")).unwrap();
    changes_stay_in_the_overlay(sim.shared(), Path::new("/r"));
}

#[test]
fn changes_stay_in_the_overlay_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    changes_stay_in_the_overlay(RealFs::shared(), dir.path());
}

#[test]
fn a_private_map_of_a_real_file_never_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, [7u8; 4096]).unwrap();
    let fs = RealFs::new();
    let f = fs.open_read(&p).unwrap();
    let map = f.map_private(4096).unwrap();
    // SAFETY: nothing else reads or writes this private map.
    unsafe { map.write(100, &[1, 2, 3]) };
    map.flush().unwrap();
    drop(map);
    assert_eq!(std::fs::read(&p).unwrap(), vec![7u8; 4096]);
}

/// Stores through a writable map of an overlay file behave as through a shared map: a
/// later read, a longer map made after the file grew, and a rename all see them, and a
/// write through the file reaches the live map. (The vector store writes slots through one
/// map, grows the file and maps it again: a replay over the overlay used to lose them.)
fn maps_stay_coherent_with_the_file(base: DynFs, root: &Path) {
    let path = root.join("seg");
    let f = base.create(&path).unwrap();
    f.write_at(&[1u8; 64], 0).unwrap();
    f.sync_data().unwrap();
    base.sync_dir(root).unwrap();
    let over = OverlayFs::new(base.clone());
    let file = over.open(&path).unwrap();
    let first = file.map_mut(64).unwrap();
    // SAFETY: no slice of the map exists and no other thread writes it.
    #[allow(unsafe_code)]
    unsafe {
        first.write(8, b"slot one")
    };
    let mut buf = [0u8; 8];
    file.read_at(&mut buf, 8).unwrap();
    assert_eq!(&buf, b"slot one", "a read missed a store through the map");
    file.allocate(128).unwrap();
    let second = file.map_mut(128).unwrap();
    // SAFETY: as above.
    #[allow(unsafe_code)]
    let grown = unsafe { std::slice::from_raw_parts(second.as_ptr(), 128) }.to_vec();
    assert_eq!(
        &grown[8..16],
        b"slot one",
        "the new map lost the old map's store"
    );
    assert_eq!(&grown[..8], &[1u8; 8]);
    assert_eq!(&grown[64..], &[0u8; 64][..]);
    file.write_at(b"written", 100).unwrap();
    // SAFETY: as above.
    #[allow(unsafe_code)]
    let seen = unsafe { std::slice::from_raw_parts(second.as_ptr().add(100), 7) }.to_vec();
    assert_eq!(
        &seen, b"written",
        "a write through the file missed the live map"
    );
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        second.write(16, b"slot two")
    };
    drop(first);
    over.rename(&path, &root.join("moved")).unwrap();
    drop(second);
    let moved = read(&over, &root.join("moved"));
    assert_eq!(
        (&moved[8..16], &moved[16..24]),
        (&b"slot one"[..], &b"slot two"[..])
    );
    assert_eq!(
        read(base.as_ref(), &path),
        vec![1u8; 64],
        "the base changed"
    );
}

#[test]
fn maps_stay_coherent_with_the_file_on_sim() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/r")).unwrap();
    maps_stay_coherent_with_the_file(fs.shared(), Path::new("/r"));
}

#[test]
fn maps_stay_coherent_with_the_file_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    maps_stay_coherent_with_the_file(RealFs::shared(), dir.path());
}
