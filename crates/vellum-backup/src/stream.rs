//! An archive object read as one stream (a `ByteSource` for the snapshot decoder), resumed
//! where it stopped when the connection breaks: a ranged read from the first byte not yet
//! received, of the same object version (If-Match on its ETag, so a replaced object is an
//! error, never a splice of two archives).
//!
//! An async task (the pump) reads the store and hands pieces through a channel of
//! [`PIECES_IN_FLIGHT`] to the decoder on a blocking thread: memory is bounded by that many
//! of the store's stream pieces, and the decoder never waits on the runtime's threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::sync::{Notify, mpsc};
use vellum_snapshot_format::{ByteSource, Error as FormatError};

/// Pieces of the store's stream waiting for the decoder.
pub const PIECES_IN_FLIGHT: usize = 4;
/// First pause before a broken read is resumed (doubling up to [`MAX_RESUME_DELAY`]).
const FIRST_RESUME_DELAY: Duration = Duration::from_millis(100);
const MAX_RESUME_DELAY: Duration = Duration::from_secs(2);

/// Counters shared by the pumps of one restore and the task reporting progress.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Bytes read from the store.
    pub downloaded: AtomicU64,
    /// Reads resumed after a broken connection or a failed request.
    pub resumed: AtomicU64,
    /// Woken after every piece.
    pub notify: Notify,
}

/// One archive object to stream.
pub(crate) struct ObjectStream {
    pub store: Arc<dyn ObjectStore>,
    pub path: Path,
    pub len: u64,
    pub e_tag: Option<String>,
    /// How long a read may go without receiving a byte (retrying) before the restore fails.
    pub resume_window: Duration,
    pub progress: Arc<Progress>,
}

/// Whether a read that failed this way may succeed if repeated.
fn retryable(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
    )
}

impl ObjectStream {
    /// Starts the pump on `runtime` and returns the decoder's end.
    pub fn start(self, runtime: &tokio::runtime::Handle) -> ObjectSource {
        let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
        let len = self.len;
        runtime.spawn(self.pump(tx));
        ObjectSource {
            rx,
            piece: Bytes::new(),
            pos: 0,
            len,
        }
    }

    async fn pump(self, tx: mpsc::Sender<Result<Bytes, FormatError>>) {
        let mut at = 0u64;
        let mut delay = FIRST_RESUME_DELAY;
        let mut last_progress = Instant::now();
        let mut attempt = 0u64;
        while at < self.len {
            if attempt > 0 {
                if last_progress.elapsed() > self.resume_window {
                    let _ = tx
                        .send(Err(FormatError::Source {
                            offset: at,
                            reason: format!(
                                "{}: no byte received for {:?} while retrying",
                                self.path, self.resume_window
                            ),
                        }))
                        .await;
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RESUME_DELAY);
                self.progress.resumed.fetch_add(1, Ordering::Relaxed);
            }
            attempt += 1;
            let options = GetOptions {
                range: Some(GetRange::Bounded(at..self.len)),
                if_match: self.e_tag.clone(),
                ..GetOptions::default()
            };
            let fail = |e: object_store::Error, at: u64| FormatError::Source {
                offset: at,
                reason: format!("{}: {e}", self.path),
            };
            let mut stream = match self.store.get_opts(&self.path, options).await {
                Ok(got) => got.into_stream(),
                Err(e) if retryable(&e) => {
                    tracing::debug!(path = %self.path, at, error = %e, "read failed: resuming");
                    continue;
                }
                Err(e) => {
                    let _ = tx.send(Err(fail(e, at))).await;
                    return;
                }
            };
            while let Some(piece) = stream.next().await {
                match piece {
                    Ok(piece) => {
                        let n = piece.len() as u64;
                        if n > self.len - at {
                            let _ = tx
                                .send(Err(FormatError::TrailingBytes { offset: self.len }))
                                .await;
                            return;
                        }
                        at += n;
                        if n > 0 {
                            last_progress = Instant::now();
                            delay = FIRST_RESUME_DELAY;
                        }
                        self.progress.downloaded.fetch_add(n, Ordering::Relaxed);
                        self.progress.notify.notify_one();
                        if tx.send(Ok(piece)).await.is_err() {
                            return; // the decoder stopped (an error, or it is done)
                        }
                    }
                    Err(e) if retryable(&e) => {
                        tracing::debug!(path = %self.path, at, error = %e, "stream broke: resuming");
                        break;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(fail(e, at))).await;
                        return;
                    }
                }
            }
        }
    }
}

/// The decoder's end of an [`ObjectStream`] (blocking reads).
pub(crate) struct ObjectSource {
    rx: mpsc::Receiver<Result<Bytes, FormatError>>,
    piece: Bytes,
    pos: u64,
    len: u64,
}

impl ObjectSource {
    fn next_piece(&mut self) -> vellum_snapshot_format::Result<()> {
        match self.rx.blocking_recv() {
            Some(Ok(piece)) => {
                self.piece = piece;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(FormatError::Source {
                offset: self.pos,
                reason: "the read stopped".into(),
            }),
        }
    }
}

impl ByteSource for ObjectSource {
    fn read_exact(&mut self, buf: &mut [u8]) -> vellum_snapshot_format::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.piece.is_empty() {
                if self.pos >= self.len {
                    return Err(FormatError::Truncated {
                        offset: self.pos,
                        wanted: (buf.len() - filled) as u64,
                    });
                }
                self.next_piece()?;
                continue;
            }
            let n = (buf.len() - filled).min(self.piece.len());
            buf[filled..filled + n].copy_from_slice(&self.piece.split_to(n));
            filled += n;
            self.pos += n as u64;
        }
        Ok(())
    }

    fn at_end(&mut self) -> vellum_snapshot_format::Result<bool> {
        Ok(self.piece.is_empty() && self.pos >= self.len)
    }
}
