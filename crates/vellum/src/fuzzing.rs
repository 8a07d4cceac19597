//! Entry point of the `collection_files` fuzz target, kept here so its committed corpus
//! replays as an ordinary test.

use std::path::Path;

use crate::{CollectionConfig, Metric, meta};

/// Feeds arbitrary bytes to one of the decoders of a generation's own files, chosen by the
/// first byte: the pending tail (whatever decodes re-encodes to the same bytes), the
/// payload map (whatever decodes survives an encode/decode round trip), the collection
/// metadata check and the quantizer file (whatever decodes re-encodes to the same bytes).
/// Never a panic, a hang or an allocation beyond the input's size.
pub fn collection_files(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz");
    match which % 4 {
        0 => {
            if let Ok(slots) = meta::decode_pending(bytes, path) {
                assert_eq!(meta::encode_pending(&slots), bytes);
            }
        }
        1 => {
            if let Ok(payloads) = meta::decode_payloads(bytes, path) {
                let again = meta::decode_payloads(&meta::encode_payloads(&payloads), path)
                    .expect("an encoded payload map decodes");
                assert_eq!(again, payloads);
            }
        }
        2 => {
            let config = CollectionConfig::new(4, Metric::L2);
            let _ = meta::check_meta(bytes, 1, &config, path);
        }
        _ => crate::collection::fuzz_quantizer_file(bytes),
    }
}

/// Entry point of the `payload_files` fuzz target: the first byte chooses the payload
/// location table, a payload run or a payload index (docs/format/payloads.md,
/// payload-index.md), the rest is the file.
pub fn payload_files(data: &[u8]) {
    if let Some((&which, bytes)) = data.split_first() {
        crate::payloads::fuzz_decoders(which, bytes);
    }
}
