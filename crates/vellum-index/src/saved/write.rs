//! Saving an index with its vectors: one file, written through `vellum_fs` so that it is
//! durable and atomic (and so a `SimFs` can crash it at every step in the tests).

use std::path::Path;

use vellum_fs::{File, Fs, OpKind};

use super::format::{FILE_HEADER_LEN, FileLayout};
use crate::error::{Error, Result};
use crate::hnsw::Hnsw;
use crate::source::VectorSource;

/// Vectors are encoded and written this many bytes at a time (at least one vector).
const WRITE_CHUNK_BYTES: usize = 1 << 20;

impl Hnsw {
    /// Writes the index and the vectors of its ids, read from `source`, to one file at
    /// `path` (docs/format/index-file.md) that [`IndexView::open`](crate::IndexView::open)
    /// maps and searches in place and [`Hnsw::load`] reads back.
    ///
    /// Durable and atomic ([`vellum_fs::atomic_replace_with`]): the file is written under a
    /// temporary name next to `path`, synced, renamed over `path` and the directory synced.
    /// When this returns `Ok` the new file survives any crash; a crash before that leaves
    /// `path` exactly as it was (or absent if it was), never a mix. The parent directory
    /// must exist. A view open on the old file keeps reading the old file.
    ///
    /// Memory: the graph is encoded in memory ([`Hnsw::to_bytes`]); the vectors are
    /// streamed from `source` 1 MiB at a time. Like `to_bytes`, the saved graph is one
    /// point in time only if no change runs meanwhile; every id it holds must stay readable
    /// in `source` until this returns.
    pub fn save<S: VectorSource + ?Sized>(
        &self,
        fs: &dyn Fs,
        path: impl AsRef<Path>,
        source: &S,
    ) -> Result<()> {
        self.check_source(source)?;
        let path = path.as_ref();
        let dim = self.dim();
        let mut graph = self.to_bytes()?;
        let ids: Vec<u64> = crate::format::encoded_ids(&graph).collect();
        // Only reachable where a usize is narrower than the file's u64 lengths.
        let too_large = || Error::InvalidParameter {
            name: "index",
            reason: format!(
                "{} vectors of {dim} floats do not fit an index file on this platform",
                ids.len()
            ),
        };
        let layout = FileLayout::new(dim, ids.len(), graph.len()).ok_or_else(too_large)?;
        let header = layout.fields().ok_or_else(too_large)?;
        graph.resize(graph.len() + layout.padding.len(), 0);
        // A source that breaks its contract (a vector of the wrong length) stops the write
        // with this error instead of an I/O one.
        let mut refused: Option<Error> = None;
        let written = vellum_fs::atomic_replace_with(fs, path, |file: &dyn File| {
            file.write_at(&graph, FILE_HEADER_LEN as u64)?;
            let mut crc = crc32fast::Hasher::new();
            let mut offset = layout.vectors.start as u64;
            let mut chunk = Vec::with_capacity(WRITE_CHUNK_BYTES + 4 * dim);
            for &id in &ids {
                let vector = source.vector(id);
                if vector.len() != dim {
                    refused = Some(Error::DimensionMismatch {
                        expected: dim,
                        found: vector.len(),
                    });
                    return Err(vellum_fs::Error::io(
                        OpKind::Write,
                        file.path(),
                        std::io::Error::other("stopped: the vector source broke its contract"),
                    ));
                }
                for value in vector {
                    chunk.extend_from_slice(&value.to_le_bytes());
                }
                if chunk.len() >= WRITE_CHUNK_BYTES {
                    crc.update(&chunk);
                    file.write_at(&chunk, offset)?;
                    offset += chunk.len() as u64;
                    chunk.clear();
                }
            }
            if !chunk.is_empty() {
                crc.update(&chunk);
                file.write_at(&chunk, offset)?;
            }
            // The header last: it carries the vectors' checksum. (Order inside the temporary
            // file does not matter for safety: nothing names it until it is synced.)
            file.write_at(&header.encode(crc.finalize()), 0)
        });
        match (written, refused) {
            (_, Some(error)) => {
                // Best effort: the temporary file is useless (and the next save overwrites
                // it anyway).
                let _ = fs.remove_file(&vellum_fs::tmp_path(path));
                Err(error)
            }
            (written, None) => Ok(written?),
        }
    }
}
