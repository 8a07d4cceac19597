//! Checking a store against its checksums: [`VectorStore::verify`] (every segment header
//! and every live slot), or a header pass and then a page of ids at a time.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::segment::{HeaderError, SegmentHeader};
use crate::store::VectorStore;
/// A damaged slot found by [`VectorStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFault {
    /// The id whose vector is damaged.
    pub id: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Byte offset of the slot.
    pub offset: u64,
}

/// What [`VectorStore::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Live vectors checked.
    pub checked: u64,
    /// Vectors whose bytes do not match their checksum.
    pub damaged: Vec<SlotFault>,
}

impl VectorStore {
    /// Checks every segment header and every live slot against its CRC (and marks the good
    /// ones checked).
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_headers()?;
        let ids: Vec<u64> = self.ids.keys().copied().collect();
        self.verify_ids(&ids)
    }

    /// Checks that every segment file's header names this store's shape and its index.
    pub fn verify_headers(&self) -> Result<()> {
        for (index, seg) in self.segments.iter().enumerate() {
            let header = SegmentHeader::decode(&seg.header_page()).map_err(|detail| {
                Error::SegmentHeader {
                    path: seg.path.clone(),
                    detail,
                }
            })?;
            if header != self.expected_header(index as u32) {
                return Err(Error::SegmentHeader {
                    path: seg.path.clone(),
                    detail: HeaderError::InvalidField {
                        field: "segment shape or index",
                        value: u64::from(header.segment_index),
                    },
                });
            }
        }
        Ok(())
    }

    /// Checks the slots of those `ids` that are live against their CRCs (ids not stored
    /// are skipped), so a caller can verify a large store a page at a time.
    pub fn verify_ids(&self, ids: &[u64]) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for &id in ids {
            let Some(&slot) = self.ids.get(&id) else {
                continue;
            };
            report.checked += 1;
            match self.checked_vector(id, slot) {
                Ok(_) => {}
                Err(Error::SlotCorrupt { path, offset, .. }) => {
                    report.damaged.push(SlotFault { id, path, offset })
                }
                Err(other) => return Err(other),
            }
        }
        report.damaged.sort_by_key(|f| f.id);
        Ok(report)
    }
}
