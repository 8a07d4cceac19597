//! Entry points of the fuzz targets (`fuzz/fuzz_targets/vector_segment.rs`), kept here so
//! their committed corpora replay as ordinary tests.

use crate::segment::{SegmentHeader, validate_segment};
use crate::state::{IdMapView, StoreMeta};

/// Feeds arbitrary bytes to every decoder of this crate: the segment header, the segment
/// validator, the meta file and the id map. None may panic; whatever decodes must re-encode
/// to the same bytes.
pub fn vector_segment(data: &[u8]) {
    if let Ok(header) = SegmentHeader::decode(data) {
        assert_eq!(&header.encode()[..], &data[..crate::segment::HEADER_BYTES]);
    }
    let _ = validate_segment(data);
    if let Ok(meta) = StoreMeta::decode(data) {
        assert_eq!(meta.encode(), data);
    }
    if let Ok(view) = IdMapView::decode(data) {
        let entries: Vec<_> = view.iter().collect();
        assert_eq!(crate::state::encode_idmap(&entries), data);
    }
}
