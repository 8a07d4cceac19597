//! Where the index reads vectors from.
//!
//! The index never owns or copies vectors: each search or insert is handed a
//! [`VectorSource`] and reads vector bytes through it. The facade implements it over the
//! memory-mapped vector store; tests and benchmarks use [`FlatVectors`].

/// Read access to the vectors an index searches, by external id.
///
/// Contract the index relies on: `vector(id)` returns `dim()` floats for every id that was
/// inserted and not yet deleted, and the same floats every time for the lifetime of the
/// index (an upsert of new data under an id is a delete followed by an insert).
pub trait VectorSource: Sync {
    /// Number of floats per vector.
    fn dim(&self) -> usize;

    /// The vector stored under `id`.
    ///
    /// Implementations may panic for ids that were never inserted; the index only asks for
    /// ids it holds.
    fn vector(&self, id: u64) -> &[f32];
}

/// Row-major vectors in one slice; id `i` is row `i`.
#[derive(Debug, Clone, Copy)]
pub struct FlatVectors<'a> {
    data: &'a [f32],
    dim: usize,
}

impl<'a> FlatVectors<'a> {
    /// Wraps `data` holding `data.len() / dim` rows of `dim` floats.
    ///
    /// # Panics
    /// If `dim` is zero or does not divide `data.len()`.
    pub fn new(data: &'a [f32], dim: usize) -> FlatVectors<'a> {
        assert!(
            dim > 0 && data.len().is_multiple_of(dim),
            "data is not rows of {dim} floats"
        );
        FlatVectors { data, dim }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl VectorSource for FlatVectors<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    #[inline]
    fn vector(&self, id: u64) -> &[f32] {
        let start = id as usize * self.dim;
        &self.data[start..start + self.dim]
    }
}

impl<T: VectorSource + ?Sized> VectorSource for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }

    #[inline]
    fn vector(&self, id: u64) -> &[f32] {
        (**self).vector(id)
    }
}
