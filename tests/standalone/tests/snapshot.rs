//! vellum-snapshot-format alone: write an archive of a directory, verify it and restore it,
//! by path on the real file system.

use std::fs;
use std::path::Path;

use vellum_snapshot_format::{
    Catalog, ExportOptions, SnapshotId, SwapRecovery, export_dir_to_path, list_generation_path,
    recover_swap_path, restore_chain_path, verify_path,
};

fn write_generation(dir: &Path, segment: &[u8]) {
    fs::create_dir_all(dir.join("vectors")).unwrap();
    fs::write(dir.join("meta"), b"dim=3").unwrap();
    fs::write(dir.join("vectors/segment-0"), segment).unwrap();
}

#[test]
fn an_archive_of_a_directory_verifies_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("generation");
    write_generation(&source, &[7u8; 100_000]);
    let names: Vec<String> = list_generation_path(&source)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["meta", "vectors/segment-0"]);

    let archive = dir.path().join("full.vsnap");
    let opts = ExportOptions::full(SnapshotId::from_seed(1), 42);
    let summary = export_dir_to_path(&source, &opts, &archive).unwrap();
    let info = verify_path(&archive).unwrap();
    assert_eq!(info.archive_hash, summary.archive_hash);
    assert_eq!(info.footer.state.len(), 2);

    let target = dir.path().join("restored");
    let report = restore_chain_path(&[&archive], &target).unwrap();
    assert_eq!(report.files, 2);
    assert_eq!(fs::read(target.join("meta")).unwrap(), b"dim=3");
    assert_eq!(
        fs::read(target.join("vectors/segment-0")).unwrap(),
        vec![7u8; 100_000]
    );
    assert_eq!(recover_swap_path(&target).unwrap(), SwapRecovery::Clean);
}

#[test]
fn a_full_and_an_incremental_restore_as_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("generation");
    write_generation(&source, &[1u8; 10_000]);
    let full = dir.path().join("full.vsnap");
    let summary = export_dir_to_path(
        &source,
        &ExportOptions::full(SnapshotId::from_seed(1), 10),
        &full,
    )
    .unwrap();

    fs::write(source.join("vectors/segment-0"), [2u8; 10_000]).unwrap();
    fs::remove_file(source.join("meta")).unwrap();
    let inc = dir.path().join("inc.vsnap");
    let opts = ExportOptions::incremental(SnapshotId::from_seed(2), 20, summary.as_parent());
    export_dir_to_path(&source, &opts, &inc).unwrap();
    verify_path(&inc).unwrap();

    let target = dir.path().join("restored");
    let report = restore_chain_path(&[&full, &inc], &target).unwrap();
    assert_eq!(report.applied.len(), 2);
    assert!(!target.join("meta").exists());
    assert_eq!(
        fs::read(target.join("vectors/segment-0")).unwrap(),
        [2u8; 10_000]
    );
}

#[test]
fn a_damaged_archive_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("generation");
    write_generation(&source, &[3u8; 50_000]);
    let archive = dir.path().join("full.vsnap");
    export_dir_to_path(
        &source,
        &ExportOptions::full(SnapshotId::from_seed(1), 1),
        &archive,
    )
    .unwrap();
    let mut bytes = fs::read(&archive).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&archive, &bytes).unwrap();
    assert!(verify_path(&archive).is_err());
    assert!(restore_chain_path(&[&archive], dir.path().join("restored")).is_err());
    assert!(!dir.path().join("restored").exists());
}

#[test]
fn a_catalog_opens_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("generation");
    write_generation(&source, &[4u8; 1_000]);
    let mut catalog = Catalog::open_path(dir.path().join("snapshots")).unwrap();
    let files = list_generation_path(&source).unwrap();
    let meta = catalog
        .create(&files, &ExportOptions::full(SnapshotId::from_seed(9), 5))
        .unwrap();
    drop(catalog);
    let catalog = Catalog::open_path(dir.path().join("snapshots")).unwrap();
    assert_eq!(catalog.list(), [meta]);
}
