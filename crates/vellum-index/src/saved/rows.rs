//! The vectors of an index file as a [`VectorSource`]: row `i` belongs to the graph's node
//! `i`, whose id is the `i`-th of the graph's ids (ascending), so the rows need no id list
//! of their own, only a way from an id to its row.

use rustc_hash::FxHashMap;

use crate::source::VectorSource;

/// From an id to its row.
#[derive(Debug)]
pub(crate) enum RowLookup {
    /// The ids are `first, first + 1, ...` (the common case): the row is `id - first`, with
    /// nothing built at open.
    Consecutive { first: u64 },
    /// Any other ids: a map built at open (O(rows), about 16 bytes a row), so a search does
    /// not pay a binary search for every vector it reads.
    Map(FxHashMap<u64, u32>),
}

impl RowLookup {
    /// The lookup for `ids`, which are strictly increasing (the graph decoder checked it)
    /// and fewer than 2^32 (graph node numbers are u32).
    pub(crate) fn new(ids: &[u64]) -> RowLookup {
        match (ids.first(), ids.last()) {
            (Some(&first), Some(&last)) if last - first != ids.len() as u64 - 1 => {
                RowLookup::Map((0u32..).zip(ids).map(|(row, &id)| (id, row)).collect())
            }
            (first, _) => RowLookup::Consecutive {
                first: first.copied().unwrap_or(0),
            },
        }
    }

    #[inline]
    fn row(&self, id: u64, rows: usize) -> Option<usize> {
        match self {
            RowLookup::Consecutive { first } => {
                let row = id.checked_sub(*first)?;
                (row < rows as u64).then_some(row as usize)
            }
            RowLookup::Map(map) => map.get(&id).map(|&row| row as usize),
        }
    }
}

/// The rows of one opened file, borrowed for the length of a search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows<'a> {
    /// `count * dim` floats.
    pub(crate) data: &'a [f32],
    pub(crate) dim: usize,
    pub(crate) count: usize,
    pub(crate) lookup: &'a RowLookup,
}

impl<'a> Rows<'a> {
    /// The vector of `id`, if the file holds it.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&'a [f32]> {
        let row = self.lookup.row(id, self.count)?;
        Some(&self.data[row * self.dim..(row + 1) * self.dim])
    }
}

impl VectorSource for Rows<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    /// # Panics
    /// If the file holds no vector for `id` (the index asks only for ids it holds).
    #[inline]
    fn vector(&self, id: u64) -> &[f32] {
        self.get(id)
            .unwrap_or_else(|| panic!("the index file holds no vector for id {id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_need_no_map_and_others_get_one() {
        let data: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let consecutive = RowLookup::new(&[5, 6, 7]);
        assert!(matches!(consecutive, RowLookup::Consecutive { first: 5 }));
        let rows = Rows {
            data: &data,
            dim: 2,
            count: 3,
            lookup: &consecutive,
        };
        assert_eq!(rows.get(6), Some(&[2.0, 3.0][..]));
        assert_eq!((rows.get(4), rows.get(8)), (None, None));
        let sparse = RowLookup::new(&[1, 10, u64::MAX]);
        assert!(matches!(sparse, RowLookup::Map(_)));
        let rows = Rows {
            lookup: &sparse,
            ..rows
        };
        assert_eq!(rows.get(u64::MAX), Some(&[4.0, 5.0][..]));
        assert_eq!(rows.get(2), None);
        assert!(matches!(RowLookup::new(&[]), RowLookup::Consecutive { .. }));
    }
}
