//! Reading one file of a generation back: its length and checksums against the manifest
//! record (a mapped file's checksum only on request, `verify_file`), decoded with its codec
//! and bounded by the recorded length.

use crate::checkpointer::Checkpointer;
use crate::codec;
use crate::error::{Error, Result};
use crate::generation::FileBytes;
use crate::manifest::{Codec, FileEntry};
use crate::names::data_file_name;

impl Checkpointer {
    /// Reads and verifies one file of a manifest (from the generation that wrote it).
    pub(crate) fn read_entry(&self, entry: &FileEntry) -> Result<FileBytes> {
        let generation = entry.origin_generation;
        let path = self.dir.join(data_file_name(generation, &entry.name));
        let corrupt = |reason: String| Error::FileCorrupt {
            path: path.clone(),
            generation,
            reason,
        };
        let file = match self.fs.open(&path) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => {
                return Err(Error::FileMissing {
                    path: path.clone(),
                    generation,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.len()?;
        if len != entry.stored_len_bytes {
            return Err(corrupt(format!(
                "it is {len} bytes long, the manifest says {}",
                entry.stored_len_bytes
            )));
        }
        if entry.codec == Codec::Mapped {
            // Stored as is, its records checked as they are read: the length is all that is
            // checked here (`verify_file` checks the whole-file checksum).
            if entry.raw_len_bytes != entry.stored_len_bytes {
                return Err(corrupt(format!(
                    "the manifest says {} bytes decoded and {} stored for a mapped file",
                    entry.raw_len_bytes, entry.stored_len_bytes
                )));
            }
            return Ok(FileBytes(std::sync::Arc::new(file.map_read()?)));
        }
        if entry.codec == Codec::None {
            // Stored as is: map it instead of copying it, and check the one checksum over
            // the mapped bytes (stored and decoded bytes are the same).
            let map = file.map_read()?;
            let crc = crc32fast::hash(&map);
            if crc != entry.stored_crc32 || crc != entry.raw_crc32 {
                return Err(corrupt(format!(
                    "stored checksum {crc:#010x}, the manifest says {:#010x}",
                    entry.stored_crc32
                )));
            }
            if map.len() as u64 != entry.raw_len_bytes {
                return Err(corrupt(format!(
                    "it is {} bytes, the manifest says {} decoded",
                    map.len(),
                    entry.raw_len_bytes
                )));
            }
            return Ok(FileBytes(std::sync::Arc::new(map)));
        }
        let mut source = codec::FileSource::new(file.as_ref(), len);
        let decoded = codec::decode_from(entry.codec, &mut source, entry.raw_len_bytes);
        if let Some(e) = source.error.take() {
            return Err(e.into());
        }
        let (read, stored_crc) = source.drain()?;
        if read != len || stored_crc != entry.stored_crc32 {
            return Err(corrupt(format!(
                "stored checksum {stored_crc:#010x}, the manifest says {:#010x}",
                entry.stored_crc32
            )));
        }
        let bytes =
            decoded.map_err(|e| corrupt(format!("{} decoding failed: {e}", entry.codec)))?;
        if bytes.len() as u64 != entry.raw_len_bytes {
            return Err(corrupt(format!(
                "it decodes to {}{} bytes, the manifest says {}",
                bytes.len(),
                if bytes.len() as u64 > entry.raw_len_bytes {
                    "+"
                } else {
                    ""
                },
                entry.raw_len_bytes
            )));
        }
        let raw_crc = crc32fast::hash(&bytes);
        if raw_crc != entry.raw_crc32 {
            return Err(corrupt(format!(
                "decoded checksum {raw_crc:#010x}, the manifest says {:#010x}",
                entry.raw_crc32
            )));
        }
        Ok(bytes.into())
    }

    /// Reads the current generation's file `name` whole and checks it against its manifest
    /// record (length and checksums): what open skips for a [`Codec::Mapped`] file. `Ok(None)`
    /// if the current generation has no such file.
    pub fn verify_file(&self, name: &str) -> Result<Option<()>> {
        let Some(entry) = self.current.as_ref().and_then(|m| m.file(name)) else {
            return Ok(None);
        };
        let mut checked = entry.clone();
        if checked.codec == Codec::Mapped {
            checked.codec = Codec::None;
        }
        self.read_entry(&checked).map(|_| Some(()))
    }
}
