//! Vector files the CLI reads: `.fvecs`, `.bvecs`, `.npy` (little-endian f4/f8/u1, C or
//! Fortran order), the fashion-mnist IDX files, and a generated clustered set.
//!
//! These read user input with `std::fs`; database files are only ever touched through the
//! engine.

use std::io::Read;
use std::path::Path;

mod npy;

/// Rows of `dim` floats, row-major.
#[derive(Debug, Clone)]
pub struct Vectors {
    /// Floats per row.
    pub dim: usize,
    /// `rows * dim` floats.
    pub data: Vec<f32>,
}

impl Vectors {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// An error reading a vector file, naming the file and offset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong, with the offset where it applies.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn format_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The largest dimension accepted from a file (bounds allocations on hostile input).
const MAX_FILE_DIM: usize = 1 << 16;

/// Reads `.fvecs` (each row: dim i32, then dim f32) or `.bvecs` (dim i32, then dim u8).
pub fn read_vecs(path: &Path, bytes_per_elem: usize) -> Result<Vectors, DataError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut pos = 0usize;
    let mut dim = None;
    let mut data = Vec::new();
    while pos < bytes.len() {
        if bytes.len() - pos < 4 {
            return Err(format_err(
                path,
                format!("row header cut short at offset {pos}"),
            ));
        }
        let d = i32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes"));
        if d <= 0 || d as usize > MAX_FILE_DIM {
            return Err(format_err(path, format!("dimension {d} at offset {pos}")));
        }
        let d = d as usize;
        if *dim.get_or_insert(d) != d {
            return Err(format_err(
                path,
                format!(
                    "row at offset {pos} has dimension {d}, earlier rows {}",
                    dim.unwrap_or(0)
                ),
            ));
        }
        pos += 4;
        let need = d * bytes_per_elem;
        if bytes.len() - pos < need {
            return Err(format_err(
                path,
                format!("row at offset {} cut short", pos - 4),
            ));
        }
        let row = &bytes[pos..pos + need];
        if bytes_per_elem == 4 {
            data.extend(
                row.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
            );
        } else {
            data.extend(row.iter().map(|&b| f32::from(b)));
        }
        pos += need;
    }
    Ok(Vectors {
        dim: dim.ok_or_else(|| format_err(path, "empty file"))?,
        data,
    })
}

/// Reads a 2-d `.npy` array of `<f4`, `<f8` or `|u1`, C or Fortran order.
pub fn read_npy(path: &Path) -> Result<Vectors, DataError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format_err(path, "not a .npy file (bad magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize,
            12,
        ),
        v => return Err(format_err(path, format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| format_err(path, "header cut short or not text"))?;
    let npy::NpyHeader {
        descr,
        fortran_order: fortran,
        shape,
    } = npy::parse_header(header)
        .map_err(|reason| format_err(path, format!("malformed .npy header: {reason}")))?;
    let [rows, dim] = shape[..] else {
        return Err(format_err(
            path,
            format!("expected a 2-d array, shape is {shape:?}"),
        ));
    };
    if dim == 0 || dim > MAX_FILE_DIM {
        return Err(format_err(path, format!("dimension {dim}")));
    }
    let elem = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        "|u1" => 1,
        other => {
            return Err(format_err(
                path,
                format!("element type {other:?} is not supported (use <f4, <f8 or |u1)"),
            ));
        }
    };
    let body = &bytes[start + header_len..];
    let n = rows
        .checked_mul(dim)
        .ok_or_else(|| format_err(path, "shape overflows"))?;
    if body.len() != n * elem {
        return Err(format_err(
            path,
            format!("data is {} bytes, the shape needs {}", body.len(), n * elem),
        ));
    }
    let flat: Vec<f32> = match elem {
        4 => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        8 => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => body.iter().map(|&b| f32::from(b)).collect(),
    };
    let data = if fortran {
        let mut t = vec![0f32; n];
        for c in 0..dim {
            for r in 0..rows {
                t[r * dim + c] = flat[c * rows + r];
            }
        }
        t
    } else {
        flat
    };
    Ok(Vectors { dim, data })
}

/// Reads a gzipped IDX image file (fashion-mnist): magic 0x00000803, then counts.
#[allow(clippy::big_endian_bytes)] // IDX is big-endian by its specification.
pub fn read_idx_images_gz(path: &Path) -> Result<Vectors, DataError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() < 16 || u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) != 0x0803 {
        return Err(format_err(path, "not an IDX image file (magic 0x00000803)"));
    }
    let n = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    let rows = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let cols = u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let dim = rows * cols;
    if dim == 0 || bytes.len() - 16 != n * dim {
        return Err(format_err(
            path,
            format!(
                "{} data bytes do not hold {n} images of {rows}x{cols}",
                bytes.len() - 16
            ),
        ));
    }
    Ok(Vectors {
        dim,
        data: bytes[16..].iter().map(|&b| f32::from(b)).collect(),
    })
}

/// A clustered set: `rows` vectors of `dim` around `clusters` random centres, deterministic
/// from `seed` (the demo's data when no real data set is installed).
pub fn clustered(rows: usize, dim: usize, clusters: usize, seed: u64) -> Vectors {
    let mut rng = vellum::fs::rng::SplitMix64::new(seed);
    let mut unit = move || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    let centres: Vec<f32> = (0..clusters * dim).map(|_| unit() * 2.0 - 1.0).collect();
    let mut data = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        let c = ((unit() * clusters as f32) as usize).min(clusters - 1);
        for d in 0..dim {
            data.push(centres[c * dim + d] + (unit() - 0.5) * 0.35);
        }
    }
    Vectors { dim, data }
}
