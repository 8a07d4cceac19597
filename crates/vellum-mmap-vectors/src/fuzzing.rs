//! Entry points of the fuzz targets (`fuzz/fuzz_targets/vector_segment.rs`), kept here so
//! their committed corpora replay as ordinary tests.

use crate::segment::{SegmentHeader, validate_segment};
use crate::state::{IdMapView, StoreMeta};

/// Feeds arbitrary bytes to every decoder of this crate: the segment header, the segment
/// validator, the meta file, the id map and its delta. None may panic; whatever decodes
/// must re-encode to the same bytes. Then opens a store over them, as a segment file and
/// as the delta of a generation.
pub fn vector_segment(data: &[u8]) {
    if let Ok(header) = SegmentHeader::decode(data) {
        let fields = crate::segment::HEADER_FIELDS_BYTES;
        assert_eq!(&header.encode()[..fields], &data[..fields]);
    }
    let _ = validate_segment(data);
    if let Ok(meta) = StoreMeta::decode(data) {
        assert_eq!(meta.encode(), data);
    }
    if let Ok(view) = IdMapView::decode(data) {
        let entries: Vec<_> = view.iter().collect();
        assert_eq!(crate::state::encode_idmap(&entries), data);
    }
    if let Ok(view) = IdMapView::decode_delta(data) {
        let entries: Vec<_> = view.iter().collect();
        assert_eq!(crate::state::encode_idmap_delta(&entries), data);
    }
    store_over(Some(data), None);
    store_over(None, Some(data));
}

/// Opens a store whose checkpoint references slot 0 of segment 0 and whose segment 0 file is
/// `data`: open, `get`, `verify` and `iter` never panic, whatever the file holds.
pub fn store_over_segment(data: &[u8]) {
    store_over(Some(data), None);
}

/// Opens a store whose checkpoint's base maps id 7 to slot 0, with `delta` as its id map
/// delta (if any) and `segment` as segment 0 (a header and four zero slots if `None`).
fn store_over(segment: Option<&[u8]>, delta: Option<&[u8]>) {
    use std::path::Path;
    use vellum_checkpoint::{CheckpointConfig, Checkpointer, Codec, FileSpec};
    use vellum_fs::{Fs, SimFs};

    let fs = SimFs::new();
    let config = crate::StoreConfig {
        slots_per_segment: 4,
        ..crate::StoreConfig::new(4)
    };
    let meta = StoreMeta {
        element: crate::ElementType::F32,
        dimension: 4,
        slots_per_segment: 4,
        segment_count: 1,
        live_count: 1,
        pending: vec![],
    }
    .encode();
    let idmap = crate::state::encode_idmap(&[(7, 0, 0x1234_5678)]);
    let Ok((mut cp, _)) =
        Checkpointer::open(fs.shared(), Path::new("/ck"), CheckpointConfig::default())
    else {
        return;
    };
    let mut files = vec![
        FileSpec {
            name: crate::META_FILE,
            bytes: &meta,
            codec: Codec::None,
        },
        FileSpec {
            name: crate::IDMAP_FILE,
            bytes: &idmap,
            codec: Codec::None,
        },
    ];
    if let Some(delta) = delta {
        files.push(FileSpec {
            name: crate::IDMAP_DELTA_FILE,
            bytes: delta,
            codec: Codec::None,
        });
    }
    let owned: Vec<u8>;
    let data: &[u8] = match segment {
        Some(data) => data,
        None => {
            let header = crate::segment::SegmentHeader {
                element: crate::ElementType::F32,
                dimension: 4,
                slot_bytes: crate::segment::slot_bytes_for(crate::ElementType::F32, 4) as u32,
                slots_per_segment: 4,
                segment_index: 0,
            };
            let mut page = header.encode();
            page.resize(header.len_for_slots(4) as usize, 0);
            owned = page;
            &owned
        }
    };
    if cp.commit(1, b"", &files).is_err() {
        return;
    }
    let dir = Path::new("/vectors");
    if vellum_fs::create_dir_all_durable(&fs, dir).is_err() {
        return;
    }
    let Ok(file) = fs.create(&dir.join(crate::segment::segment_file_name(0))) else {
        return;
    };
    if file.write_at(data, 0).is_err() {
        return;
    }
    drop(file);
    let Ok((cp, loaded)) =
        Checkpointer::open(fs.shared(), Path::new("/ck"), CheckpointConfig::default())
    else {
        return;
    };
    if let Ok(store) = crate::VectorStore::open_from(fs.shared(), dir, config, &cp, loaded.as_ref())
    {
        let _ = store.get(7);
        let _ = store.verify();
        let _ = store.iter().count();
    }
}
