//! Vectors owned in memory under arbitrary ids: the [`VectorSource`] for a user of the index
//! alone, who has no vector store of their own.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::source::VectorSource;

/// Vectors of one dimension, kept in memory by id; what [`IndexView::to_index`] returns
/// beside the index, and what a program that uses the index alone can hand it as its
/// [`VectorSource`].
///
/// To change the vector of an id the index holds, [`OwnedVectors::insert`] the new vector,
/// then [`Hnsw::upsert`] the id; to remove one, [`Hnsw::delete`] it first, then
/// [`OwnedVectors::remove`] it (the index may read a vector until its delete returns).
///
/// [`IndexView::to_index`]: crate::IndexView::to_index
/// [`Hnsw::upsert`]: crate::Hnsw::upsert
/// [`Hnsw::delete`]: crate::Hnsw::delete
#[derive(Debug, Clone, Default)]
pub struct OwnedVectors {
    dim: usize,
    /// `len() * dim` floats, row by row.
    rows: Vec<f32>,
    /// The id of each row.
    row_ids: Vec<u64>,
    /// Id to row.
    by_id: FxHashMap<u64, usize>,
}

impl OwnedVectors {
    /// No vectors yet, each to have `dim` floats.
    ///
    /// # Panics
    /// If `dim` is zero.
    pub fn new(dim: usize) -> OwnedVectors {
        assert!(dim > 0, "vectors need at least one dimension");
        OwnedVectors {
            dim,
            ..OwnedVectors::default()
        }
    }

    /// Room for `additional` more vectors without reallocating.
    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve(additional.saturating_mul(self.dim));
        self.row_ids.reserve(additional);
        self.by_id.reserve(additional);
    }

    /// Stores `vector` under `id`, replacing the vector it had; returns whether it had one.
    pub fn insert(&mut self, id: u64, vector: &[f32]) -> Result<bool> {
        if vector.len() != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                found: vector.len(),
            });
        }
        if let Some(&row) = self.by_id.get(&id) {
            self.rows[row * self.dim..(row + 1) * self.dim].copy_from_slice(vector);
            return Ok(true);
        }
        self.by_id.insert(id, self.row_ids.len());
        self.row_ids.push(id);
        self.rows.extend_from_slice(vector);
        Ok(false)
    }

    /// Removes the vector of `id`; returns whether there was one.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.by_id.remove(&id) else {
            return false;
        };
        // The last row moves into the hole.
        let last = self.row_ids.len() - 1;
        if row != last {
            let moved = self.row_ids[last];
            self.rows
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
            self.row_ids[row] = moved;
            self.by_id.insert(moved, row);
        }
        self.row_ids.pop();
        self.rows.truncate(last * self.dim);
        true
    }

    /// The vector of `id`, if it has one.
    pub fn get(&self, id: u64) -> Option<&[f32]> {
        let row = *self.by_id.get(&id)?;
        Some(&self.rows[row * self.dim..(row + 1) * self.dim])
    }

    /// Whether `id` has a vector.
    pub fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// The ids that have a vector, in no particular order.
    pub fn ids(&self) -> &[u64] {
        &self.row_ids
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.row_ids.len()
    }

    /// True when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.row_ids.is_empty()
    }
}

impl VectorSource for OwnedVectors {
    fn dim(&self) -> usize {
        self.dim
    }

    /// # Panics
    /// If `id` has no vector (the index asks only for ids it holds).
    fn vector(&self, id: u64) -> &[f32] {
        self.get(id)
            .unwrap_or_else(|| panic!("OwnedVectors holds no vector for id {id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_row_moves_the_last_one_into_its_place() {
        let mut v = OwnedVectors::new(2);
        for id in [10, 20, 30] {
            assert!(!v.insert(id, &[id as f32, 1.0]).unwrap());
        }
        assert!(v.insert(20, &[2.5, 2.5]).unwrap());
        assert!(v.remove(10));
        assert!(!v.remove(10));
        assert_eq!(v.len(), 2);
        assert_eq!(v.get(30), Some(&[30.0, 1.0][..]));
        assert_eq!(v.get(20), Some(&[2.5, 2.5][..]));
        assert_eq!(v.get(10), None);
        assert!(matches!(
            v.insert(1, &[1.0]),
            Err(Error::DimensionMismatch {
                expected: 2,
                found: 1
            })
        ));
    }
}
