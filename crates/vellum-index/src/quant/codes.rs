//! Where a quantized search reads codes from.

use rayon::prelude::*;

use super::Quantizer;
use crate::error::{Error, Result};

/// Read access to the codes of the vectors an index searches, by external id, with the
/// quantizer that encoded them.
///
/// Contract: `code(id)` returns `quantizer().code_len()` bytes for every id the index
/// holds live, encoded from the vector the paired [`VectorSource`](crate::VectorSource)
/// returns for it.
pub trait CodeSource: Sync {
    /// The quantizer the codes were encoded with.
    fn quantizer(&self) -> &Quantizer;

    /// The code stored under `id`. Implementations may panic for ids never encoded.
    fn code(&self, id: u64) -> &[u8];
}

impl<T: CodeSource + ?Sized> CodeSource for &T {
    fn quantizer(&self) -> &Quantizer {
        (**self).quantizer()
    }

    #[inline]
    fn code(&self, id: u64) -> &[u8] {
        (**self).code(id)
    }
}

/// Codes in memory; id `i` is row `i` (the quantized twin of
/// [`FlatVectors`](crate::FlatVectors)).
#[derive(Debug, Clone)]
pub struct FlatCodes {
    quantizer: Quantizer,
    codes: Vec<u8>,
}

impl FlatCodes {
    /// Encodes every row of `data` (rows of `quantizer.dim()` floats), in parallel.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `data` is not whole rows.
    pub fn encode_rows(quantizer: Quantizer, data: &[f32]) -> Result<FlatCodes> {
        let dim = quantizer.dim();
        if !data.len().is_multiple_of(dim) {
            return Err(Error::DimensionMismatch {
                expected: dim,
                found: data.len() % dim,
            });
        }
        let len = quantizer.code_len();
        let mut codes = vec![0u8; data.len() / dim * len];
        codes
            .par_chunks_mut(len)
            .zip(data.par_chunks(dim))
            .try_for_each(|(out, row)| quantizer.encode(row, out))?;
        Ok(FlatCodes { quantizer, codes })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.codes.len() / self.quantizer.code_len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Bytes the codes take.
    pub fn bytes(&self) -> usize {
        self.codes.len()
    }
}

impl CodeSource for FlatCodes {
    fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    #[inline]
    fn code(&self, id: u64) -> &[u8] {
        let len = self.quantizer.code_len();
        let start = id as usize * len;
        &self.codes[start..start + len]
    }
}
