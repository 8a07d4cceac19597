//! Open files of a [`SimFs`]: [`SimFile`] and its [`File`] implementation.

use std::path::{Path, PathBuf};

use super::fault::Fault;
use super::maps::{SimMapLink, SimReadMap};
use super::sim_fs::SimFs;
use super::state::{Ino, Pending, State, apply_pending};
use crate::error::{Error, OpKind, Result};
use crate::fs::{File, MapMut, ReadMap, ReadMapInner};

/// An open file of a [`SimFs`].
#[derive(Debug)]
pub(super) struct SimFile {
    fs: SimFs,
    ino: Ino,
    path: PathBuf,
    /// Tells this handle's advisory lock from another handle's.
    handle: u64,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        self.fs.unlock(self.ino, self.handle);
    }
}

impl SimFs {
    /// A new handle on the file `ino`, opened as `path`.
    pub(super) fn handle(&self, ino: Ino, path: &Path) -> SimFile {
        SimFile {
            fs: self.clone(),
            ino,
            path: path.to_path_buf(),
            handle: self.next_handle(),
        }
    }

    fn file_op<T>(
        &self,
        handle: &SimFile,
        op: OpKind,
        f: impl FnOnce(&mut State, Option<Fault>) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.lock();
        let fault = st.begin(op, &handle.path)?;
        f(&mut st, fault)
    }
}

impl SimFile {
    fn check_writable(&self, st: &mut State, new_len: Option<u64>) -> Result<()> {
        let mapped = st.any_live_map(self.ino);
        let file = st.file_mut(self.ino);
        if file.read_maps > 0 {
            return Err(Error::Contract {
                path: self.path.clone(),
                rule: "a file with a live read map may not be written",
            });
        }
        if new_len.is_some_and(|l| l < mapped as u64) {
            return Err(Error::Contract {
                path: self.path.clone(),
                rule: "a file may not shrink below a live writable map",
            });
        }
        Ok(())
    }

    fn do_write(
        &self,
        st: &mut State,
        buf: &[u8],
        offset: u64,
        fault: Option<Fault>,
    ) -> Result<()> {
        self.check_writable(st, None)?;
        st.absorb_maps(self.ino);
        let (data, short) = match fault {
            Some(Fault::ShortWrite) => (&buf[..buf.len() / 2], true),
            _ => (buf, false),
        };
        let cur = st.file_mut(self.ino).live.len() as u64;
        let end = offset.saturating_add(data.len() as u64);
        st.check_space(OpKind::Write, &self.path, end.saturating_sub(cur))?;
        st.stats.bytes_written += data.len() as u64;
        let file = st.file_mut(self.ino);
        if !data.is_empty() {
            let p = Pending::Write {
                offset,
                data: data.to_vec(),
            };
            apply_pending(&mut file.live, &p);
            file.pending.push(p);
        }
        file.write_through_maps(offset, data);
        if short {
            return Err(Error::io(
                OpKind::Write,
                &self.path,
                Fault::ShortWrite.to_io_error(),
            ));
        }
        Ok(())
    }
}

impl File for SimFile {
    fn try_lock_exclusive(&self) -> Result<bool> {
        self.fs.file_op(self, OpKind::Lock, |_, _| Ok(()))?;
        Ok(self.fs.try_lock(self.ino, self.handle))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.fs.file_op(self, OpKind::Read, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            let file_len = file.live.len() as u64;
            let end = offset.checked_add(buf.len() as u64);
            match end {
                // Nothing asked for, nothing read: as `pread` of zero bytes on the real file
                // system, wherever the offset is (the differential test found the two apart).
                _ if buf.is_empty() => Ok(()),
                Some(end) if end <= file_len => {
                    buf.copy_from_slice(&file.live[offset as usize..end as usize]);
                    Ok(())
                }
                _ => Err(Error::ReadPastEnd {
                    path: self.path.clone(),
                    offset,
                    len: buf.len() as u64,
                    file_len,
                }),
            }
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.fs.file_op(self, OpKind::Write, |st, fault| {
            self.do_write(st, buf, offset, fault)
        })
    }

    fn append(&self, buf: &[u8]) -> Result<u64> {
        self.fs.file_op(self, OpKind::Write, |st, fault| {
            let offset = st.file_mut(self.ino).live.len() as u64;
            self.do_write(st, buf, offset, fault)?;
            Ok(offset)
        })
    }

    fn len(&self) -> Result<u64> {
        self.fs.file_op(self, OpKind::Len, |st, _| {
            Ok(st.file_mut(self.ino).live.len() as u64)
        })
    }

    fn set_len(&self, len_bytes: u64) -> Result<()> {
        self.fs.file_op(self, OpKind::SetLen, |st, _| {
            self.check_writable(st, Some(len_bytes))?;
            st.absorb_maps(self.ino);
            let cur = st.file_mut(self.ino).live.len() as u64;
            st.check_space(OpKind::SetLen, &self.path, len_bytes.saturating_sub(cur))?;
            let file = st.file_mut(self.ino);
            let p = Pending::SetLen(len_bytes);
            apply_pending(&mut file.live, &p);
            file.pending.push(p);
            Ok(())
        })
    }

    fn allocate(&self, len_bytes: u64) -> Result<()> {
        let mut needed = 0;
        self.fs
            .file_op(self, OpKind::SetLen, |st, _| {
                self.check_writable(st, None)?;
                st.absorb_maps(self.ino);
                let cur = st.file_mut(self.ino).live.len() as u64;
                needed = len_bytes.saturating_sub(cur);
                st.check_space(OpKind::SetLen, &self.path, needed)?;
                let file = st.file_mut(self.ino);
                if cur < len_bytes {
                    let p = Pending::Write {
                        offset: cur,
                        data: vec![0; (len_bytes - cur) as usize],
                    };
                    apply_pending(&mut file.live, &p);
                    file.pending.push(p);
                    st.stats.bytes_written += len_bytes - cur;
                }
                Ok(())
            })
            .map_err(|e| e.with_needed_bytes(needed))
    }

    fn sync_data(&self) -> Result<()> {
        let mut st = self.fs.lock();
        match st.begin(OpKind::SyncData, &self.path) {
            Ok(_) => {
                st.sync_file(self.ino);
                Ok(())
            }
            Err(e) => {
                st.drop_pending_after_failed_sync(self.ino);
                Err(e)
            }
        }
    }

    fn map_read(&self) -> Result<ReadMap> {
        self.fs.file_op(self, OpKind::Map, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            if file.live.is_empty() {
                return Ok(ReadMap {
                    inner: ReadMapInner::Empty,
                });
            }
            Ok(SimReadMap::map(&self.fs, self.ino, file))
        })
    }

    fn map_private(&self, len_bytes: usize) -> Result<MapMut> {
        self.fs.file_op(self, OpKind::Map, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            if len_bytes > file.live.len() {
                return Err(Error::Contract {
                    path: self.path.clone(),
                    rule: "map_private longer than the file",
                });
            }
            MapMut::private_copy(&self.path, &file.live[..len_bytes], len_bytes)
        })
    }

    fn map_mut(&self, len_bytes: usize) -> Result<MapMut> {
        self.fs.file_op(self, OpKind::Map, |st, _| {
            st.absorb_maps(self.ino);
            let file = st.file_mut(self.ino);
            if len_bytes == 0 || len_bytes > file.live.len() {
                return Err(Error::Contract {
                    path: self.path.clone(),
                    rule: "map_mut must cover 1..=file length bytes",
                });
            }
            SimMapLink::map(&self.fs, self.ino, &self.path, file, len_bytes)
        })
    }
}
