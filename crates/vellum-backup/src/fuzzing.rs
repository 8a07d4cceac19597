//! The catalog decoder on arbitrary bytes (the `backup_catalog` fuzz target, whose corpus
//! `cargo test` replays): a typed error or a catalog; for a catalog, every entry's hash and
//! chain give a value or a typed error (parent cycles included), and it re-encodes to
//! itself.

use std::sync::Arc;

use crate::catalog::parse;
use crate::summary::{catalog_hash, chain};
use crate::target::BackupTarget;

/// Decodes `data` as a catalog object and checks what a restore would derive from it.
pub fn fuzz_catalog(data: &[u8]) {
    let Ok(catalog) = parse(data, "fuzz/catalog.json") else {
        return;
    };
    let target = BackupTarget::new(Arc::new(object_store::memory::InMemory::new()), "fuzz");
    for entry in &catalog.backups {
        let _ = catalog_hash(entry);
        if let Ok(links) = chain(&catalog, &entry.id, &target) {
            assert!(
                links.len() <= catalog.backups.len(),
                "a chain longer than the catalog"
            );
            assert_eq!(links.last().map(|b| &b.id), Some(&entry.id));
            assert!(links[0].parent.is_none(), "a chain starts at a full backup");
        }
    }
    let again = serde_json::to_vec(&catalog).expect("a parsed catalog encodes");
    let reparsed = parse(&again, "fuzz/catalog.json").expect("an encoded catalog parses");
    assert_eq!(reparsed, catalog);
}
