//! Maps of simulated files: read-only maps (a copy the simulator keeps from going stale) and
//! writable maps (anonymous memory kept coherent with the file, whose stores become pending
//! page writes). The simulator's only `unsafe` is here: copying between a writable map's
//! memory and the file's bytes.
#![allow(unsafe_code)]

use std::path::Path;
use std::sync::{Arc, Weak};

use super::sim_fs::{SimFs, SimInner};
use super::state::{FileNode, Ino, Inode, Pending, State, apply_pending};
use crate::error::{Error, OpKind, Result};
use crate::fs::{MapBackend, MapMut, ReadMap, ReadMapInner};

/// Page size used to find dirty pages of writable maps.
const MAP_PAGE_BYTES: usize = 4096;

impl State {
    /// Turns stores through live writable maps into pending page writes.
    pub(crate) fn absorb_maps(&mut self, ino: Ino) {
        let file = self.file_mut(ino);
        file.maps.retain(|w| w.strong_count() > 0);
        let maps: Vec<Arc<memmap2::MmapRaw>> = file.maps.iter().filter_map(Weak::upgrade).collect();
        for raw in maps {
            let len = raw.len().min(file.live.len());
            let mut page_start = 0;
            while page_start < len {
                let page_end = (page_start + MAP_PAGE_BYTES).min(len);
                let n = page_end - page_start;
                let mut page = vec![0u8; n];
                // SAFETY: `raw` is alive (we hold an Arc) and at least `len` bytes long; the
                // destination is a fresh buffer. Stores racing this copy from another thread
                // give torn bytes, which is what a disk could see too (documented on
                // `MapMut`); no reference to the map memory is created here.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        raw.as_ptr().add(page_start),
                        page.as_mut_ptr(),
                        n,
                    )
                };
                if page[..] != file.live[page_start..page_end] {
                    file.live[page_start..page_end].copy_from_slice(&page);
                    file.pending.push(Pending::Write {
                        offset: page_start as u64,
                        data: page,
                    });
                }
                page_start = page_end;
            }
        }
    }

    pub(super) fn any_live_map(&mut self, ino: Ino) -> usize {
        let file = self.file_mut(ino);
        file.maps.retain(|w| w.strong_count() > 0);
        file.maps
            .iter()
            .filter_map(Weak::upgrade)
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    }
}

impl FileNode {
    /// Keeps live writable maps coherent with a write of `data` at `offset`, as the page
    /// cache is.
    pub(super) fn write_through_maps(&self, offset: u64, data: &[u8]) {
        for raw in self.maps.iter().filter_map(Weak::upgrade) {
            let start = offset as usize;
            if start < raw.len() {
                let n = (raw.len() - start).min(data.len());
                // SAFETY: `start + n <= raw.len()`; the map is alive (Arc held). The
                // `MapMut` contract forbids live slices over a range written through the
                // file, so no reference aliases these bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), raw.as_mut_ptr().add(start), n)
                };
            }
        }
    }
}

/// The simulator's read-only map: a copy of the file taken when mapped. The simulator
/// refuses writes to the file while it lives, so the copy never goes stale.
pub(crate) struct SimReadMap {
    bytes: Vec<u8>,
    fs: Weak<SimInner>,
    ino: Ino,
}

impl SimReadMap {
    /// Maps the non-empty file `ino`: copies its live bytes and counts the map, so the file
    /// refuses writes until the map is dropped.
    pub(super) fn map(fs: &SimFs, ino: Ino, file: &mut FileNode) -> ReadMap {
        file.read_maps += 1;
        ReadMap {
            inner: ReadMapInner::Sim(SimReadMap {
                bytes: file.live.clone(),
                fs: Arc::downgrade(&fs.inner),
                ino,
            }),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for SimReadMap {
    fn drop(&mut self) {
        if let Some(inner) = self.fs.upgrade() {
            let mut st = inner.lock();
            if let Some(Inode::File(f)) = st.inodes.get_mut(&self.ino) {
                f.read_maps = f.read_maps.saturating_sub(1);
            }
        }
    }
}

/// Ties a simulated writable map to its file.
pub(crate) struct SimMapLink {
    fs: SimFs,
    ino: Ino,
}

impl SimMapLink {
    /// Maps the first `len_bytes` (at most the file's length) of the file `ino` writably:
    /// anonymous memory holding a copy of the live bytes, registered with the file so that
    /// writes through the file reach it and its stores reach the file.
    pub(super) fn map(
        fs: &SimFs,
        ino: Ino,
        path: &Path,
        file: &mut FileNode,
        len_bytes: usize,
    ) -> Result<MapMut> {
        let mut anon = memmap2::MmapOptions::new()
            .len(len_bytes)
            .map_anon()
            .map_err(|e| Error::io(OpKind::Map, path, e))?;
        anon.copy_from_slice(&file.live[..len_bytes]);
        let raw = Arc::new(memmap2::MmapRaw::from(anon));
        file.maps.push(Arc::downgrade(&raw));
        Ok(MapMut {
            raw,
            len: len_bytes,
            path: path.to_path_buf(),
            backend: MapBackend::Sim(SimMapLink {
                fs: fs.clone(),
                ino,
            }),
        })
    }

    /// The map is going: its stores stay in the file (pending, not durable), as an unmapped
    /// page cache keeps them. Before 2026-12 they were dropped with the map, and a reopen
    /// after an unmap without a flush read the file as if the stores never happened.
    pub(crate) fn unmapped(&self) {
        let mut st = self.fs.lock();
        if st.inodes.contains_key(&self.ino) {
            st.absorb_maps(self.ino);
        }
    }

    pub(crate) fn flush(&self, map: &MapMut, offset: usize, len: usize) -> Result<()> {
        let mut st = self.fs.lock();
        match st.begin(OpKind::FlushMap, &map.path) {
            Ok(_) => {
                // msync makes durable only the range asked for: pending writes (map pages
                // and positioned writes alike) are split, the parts inside the range applied
                // in order, the rest left pending.
                st.absorb_maps(self.ino);
                let start = offset as u64;
                let end = start.saturating_add(len as u64);
                let file = st.file_mut(self.ino);
                let mut keep = Vec::new();
                for p in std::mem::take(&mut file.pending) {
                    match p {
                        Pending::Write { offset: w, data } => {
                            let w_end = w + data.len() as u64;
                            let lo = w.max(start);
                            let hi = w_end.min(end);
                            if lo < hi {
                                let inside = Pending::Write {
                                    offset: lo,
                                    data: data[(lo - w) as usize..(hi - w) as usize].to_vec(),
                                };
                                apply_pending(&mut file.durable, &inside);
                                if w < lo {
                                    keep.push(Pending::Write {
                                        offset: w,
                                        data: data[..(lo - w) as usize].to_vec(),
                                    });
                                }
                                if hi < w_end {
                                    keep.push(Pending::Write {
                                        offset: hi,
                                        data: data[(hi - w) as usize..].to_vec(),
                                    });
                                }
                            } else {
                                keep.push(Pending::Write { offset: w, data });
                            }
                        }
                        other => keep.push(other),
                    }
                }
                file.pending = keep;
                st.stats.file_syncs += 1;
                Ok(())
            }
            Err(e) => {
                st.drop_pending_after_failed_sync(self.ino);
                Err(e)
            }
        }
    }
}
