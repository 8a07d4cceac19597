//! Verification of an archive on a second thread while its chunks arrive in order, so the
//! import does not need a second pass over the data (the CPU work of CRC32 and BLAKE3
//! overlaps the writes and syncs of the receiving thread).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::reader::{ArchiveInfo, ByteSource, NullSink, decode_archive};

/// Chunks buffered between the receiving and the verifying thread (bounds memory).
const QUEUE_CHUNKS: usize = 4;

/// Feeds in-order archive bytes to [`decode_archive`] running on its own thread.
#[derive(Debug)]
pub(crate) struct StreamVerifier {
    tx: Option<SyncSender<Vec<u8>>>,
    handle: Option<JoinHandle<Result<ArchiveInfo>>>,
    fed: u64,
}

impl StreamVerifier {
    /// Starts the verifying thread (if the thread cannot start, every `feed` says no and
    /// the caller verifies the file instead).
    pub(crate) fn start() -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE_CHUNKS);
        let handle = std::thread::Builder::new()
            .name("snapshot-verify".into())
            .spawn(move || {
                let mut src = ChannelSource {
                    rx,
                    buf: Vec::new(),
                    pos: 0,
                };
                decode_archive(&mut src, None, &mut NullSink)
            })
            .ok();
        StreamVerifier {
            tx: handle.as_ref().map(|_| tx),
            handle,
            fed: 0,
        }
    }

    /// Hands over the bytes at `offset`; `false` (and nothing fed) unless they continue
    /// exactly where the previous ones ended and the verifier is still running.
    pub(crate) fn feed(&mut self, offset: u64, bytes: &[u8]) -> bool {
        if offset != self.fed {
            return false;
        }
        let Some(tx) = &self.tx else {
            return false;
        };
        if tx.send(bytes.to_vec()).is_err() {
            return false;
        }
        self.fed += bytes.len() as u64;
        true
    }

    /// Bytes fed so far (all of them contiguous from offset 0).
    pub(crate) fn fed_bytes(&self) -> u64 {
        self.fed
    }

    /// Ends the input and returns the verifier's verdict (`None` if its thread panicked).
    pub(crate) fn finish(mut self) -> Option<Result<ArchiveInfo>> {
        self.tx = None;
        self.handle.take()?.join().ok()
    }
}

impl Drop for StreamVerifier {
    fn drop(&mut self) {
        // Closing the channel ends the decoder (with a truncation error nobody reads).
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct ChannelSource {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ByteSource for ChannelSource {
    fn read_exact(&mut self, mut out: &mut [u8]) -> Result<()> {
        while !out.is_empty() {
            if self.pos == self.buf.len() {
                match self.rx.recv() {
                    Ok(next) => {
                        self.buf = next;
                        self.pos = 0;
                        continue;
                    }
                    Err(_) => {
                        return Err(Error::Truncated {
                            offset: 0,
                            wanted: out.len() as u64,
                        });
                    }
                }
            }
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            out = &mut out[n..];
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.buf = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(true),
            }
        }
        Ok(false)
    }
}
