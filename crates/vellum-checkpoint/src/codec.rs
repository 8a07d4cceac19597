//! Streaming encode (into a file) and bounded decode (out of a file) of checkpoint files.

use std::io::{self, Read, Write};

use vellum_fs::File;

use crate::manifest::Codec;

/// Bytes moved per positioned read or write.
const CHUNK_BYTES: usize = 1 << 20;
/// The largest zstd window the decoder accepts (2^23 = 8 MiB), so a crafted frame cannot
/// make it allocate more. Levels 1..=19 never use a larger window.
pub(crate) const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// The highest zstd level accepted (levels above use windows beyond the decoder's limit).
pub const ZSTD_MAX_LEVEL: i32 = 19;
/// The largest buffer reserved up front for a decoded compressed file; beyond it the buffer
/// grows as bytes actually arrive, so a lying length field cannot reserve much memory by
/// itself. (Uncompressed files reserve their length, which was checked against the file.)
const MAX_PREALLOC_BYTES: u64 = 8 << 20;

/// An `io::Write` into a `vellum_fs::File` at increasing offsets, buffered, hashing what it
/// writes. An I/O error is kept so the caller gets the typed `vellum_fs::Error` back.
pub(crate) struct FileSink<'a> {
    file: &'a dyn File,
    offset: u64,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    pub(crate) error: Option<vellum_fs::Error>,
}

impl<'a> FileSink<'a> {
    pub(crate) fn new(file: &'a dyn File) -> Self {
        FileSink {
            file,
            offset: 0,
            buf: Vec::with_capacity(CHUNK_BYTES),
            crc: crc32fast::Hasher::new(),
            error: None,
        }
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_at(&self.buf, self.offset) {
            let text = e.to_string();
            self.error = Some(e);
            return Err(io::Error::other(text));
        }
        self.crc.update(&self.buf);
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes out what is buffered; returns (bytes written, their CRC).
    pub(crate) fn finish(mut self) -> Result<(u64, u32), vellum_fs::Error> {
        if self.write_out().is_err() {
            return Err(self.error.take().expect("write_out keeps its error"));
        }
        Ok((self.offset, self.crc.finalize()))
    }
}

impl Write for FileSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.buf.len() >= CHUNK_BYTES {
            self.write_out()?;
        }
        let n = data.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Buffered bytes go out in `finish`; durability is the caller's sync.
        Ok(())
    }
}

/// Encodes `raw` with `codec` into `sink`. Returns the error to report: the file system's if
/// it failed, else the codec's.
pub(crate) fn encode_into(
    codec: Codec,
    raw: &[u8],
    mut sink: FileSink<'_>,
) -> Result<(u64, u32), EncodeError> {
    let result: io::Result<FileSink<'_>> = match codec {
        Codec::None | Codec::Mapped => sink.write_all(raw).map(|()| sink),
        Codec::Zstd { level } => (|| {
            let mut enc = zstd::stream::write::Encoder::new(sink, level)?;
            enc.include_checksum(false)?;
            enc.set_pledged_src_size(Some(raw.len() as u64))?;
            enc.write_all(raw)?;
            enc.finish()
        })(),
        Codec::Gzip { level } => (|| {
            let mut enc = flate2::write::GzEncoder::new(sink, flate2::Compression::new(level));
            enc.write_all(raw)?;
            enc.finish()
        })(),
    };
    match result {
        Ok(sink) => sink.finish().map_err(EncodeError::Fs),
        Err(e) => Err(EncodeError::Codec(e)),
    }
}

/// Why encoding failed.
pub(crate) enum EncodeError {
    Fs(vellum_fs::Error),
    Codec(io::Error),
}

/// An `io::Read` over `len` bytes of a `vellum_fs::File`, hashing what it reads.
pub(crate) struct FileSource<'a> {
    file: &'a dyn File,
    offset: u64,
    len: u64,
    crc: crc32fast::Hasher,
    pub(crate) error: Option<vellum_fs::Error>,
}

impl<'a> FileSource<'a> {
    pub(crate) fn new(file: &'a dyn File, len: u64) -> Self {
        FileSource {
            file,
            offset: 0,
            len,
            crc: crc32fast::Hasher::new(),
            error: None,
        }
    }

    /// Reads whatever the decoder left unread, then gives (bytes read, CRC of all of them).
    pub(crate) fn drain(mut self) -> Result<(u64, u32), vellum_fs::Error> {
        let mut scratch = vec![0u8; CHUNK_BYTES.min(self.len as usize)];
        loop {
            match self.read(&mut scratch) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    return Err(self
                        .error
                        .take()
                        .unwrap_or_else(|| vellum_fs::Error::Contract {
                            path: self.file.path().to_path_buf(),
                            rule: "read failed without an error",
                        }));
                }
            }
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        Ok((self.offset, self.crc.finalize()))
    }
}

impl Read for FileSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("earlier read failed"));
        }
        let left = self.len - self.offset;
        let n = (buf.len() as u64).min(left).min(CHUNK_BYTES as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        if let Err(e) = self.file.read_at(&mut buf[..n], self.offset) {
            let text = e.to_string();
            self.error = Some(e);
            return Err(io::Error::other(text));
        }
        self.crc.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

/// Decodes from `source` with `codec`, producing at most `raw_len + 1` bytes (one more than
/// the manifest allows, so an overlong stream is detected without reading it all).
pub(crate) fn decode_from(
    codec: Codec,
    source: &mut FileSource<'_>,
    raw_len: u64,
) -> io::Result<Vec<u8>> {
    let limit = raw_len.saturating_add(1);
    let reserve = match codec {
        // The caller checked the file's length against the manifest; for an uncompressed file
        // that is also the decoded length, bounded by what is on disk.
        Codec::None | Codec::Mapped => raw_len.min(source.len),
        _ => raw_len.min(MAX_PREALLOC_BYTES),
    };
    let mut out = Vec::with_capacity(reserve as usize);
    match codec {
        Codec::None | Codec::Mapped => {
            source.take(limit).read_to_end(&mut out)?;
        }
        Codec::Zstd { .. } => {
            let mut dec = zstd::stream::read::Decoder::new(&mut *source)?;
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            dec.take(limit).read_to_end(&mut out)?;
        }
        Codec::Gzip { .. } => {
            flate2::read::GzDecoder::new(&mut *source)
                .take(limit)
                .read_to_end(&mut out)?;
        }
    }
    Ok(out)
}
