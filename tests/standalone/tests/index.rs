//! vellum-index alone: build, replace a vector (upsert), save with the vectors, view the file
//! in place, load it back to change it, by path on the real file system.

use vellum_index::{Hnsw, HnswParams, IndexView, Metric, OwnedVectors};

#[test]
fn an_index_saved_with_its_vectors_is_viewed_in_place_and_loaded_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.vlmidx");
    let mut vectors = OwnedVectors::new(2);
    for i in 0..200u64 {
        vectors.insert(i, &[i as f32, (i % 10) as f32]).unwrap();
    }
    let index = Hnsw::new(2, Metric::L2, HnswParams::default()).unwrap();
    index
        .insert_batch(&vectors, &(0..200).collect::<Vec<u64>>())
        .unwrap();
    // Point 7 moves: the index follows with an upsert.
    vectors.insert(7, &[1000.0, 1000.0]).unwrap();
    assert!(index.upsert(&vectors, 7).unwrap());
    index.save_path(&path, &vectors).unwrap();

    let view = IndexView::open_path(&path).unwrap();
    assert_eq!((view.len(), view.dim()), (200, 2));
    assert_eq!(view.vector(7), Some(&[1000.0, 1000.0][..]));
    let hits = view.search(&[1000.0, 1000.0], 1).unwrap();
    assert_eq!((hits[0].id, hits[0].distance), (7, 0.0));

    let (index, mut vectors) = Hnsw::load_path(&path).unwrap();
    vectors.insert(500, &[-5.0, -5.0]).unwrap();
    index.insert(&vectors, 500).unwrap();
    index.save_path(&path, &vectors).unwrap();
    let view = IndexView::open_path(&path).unwrap();
    assert_eq!(view.search(&[-5.0, -5.0], 1).unwrap()[0].id, 500);
}
