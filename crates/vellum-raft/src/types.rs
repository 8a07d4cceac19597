//! What the Raft log carries (a [`Request`] per entry), what applying one returns, and the
//! type configuration that ties them to openraft.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vellum::{CollectionConfig, IndexKind, Metric, Quantization};
use vellum_fs::DynFs;

openraft::declare_raft_types!(
    /// Vellum's Raft types: node ids are `u64`, nodes carry an address, an entry is a
    /// [`Request`], and a snapshot is a directory of Vellum archives ([`SnapshotFiles`]).
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotFiles,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft node id.
pub type NodeId = u64;
/// An entry of the replicated log.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// openraft's storage error for these types.
pub type StorageError = openraft::StorageError<NodeId>;
/// A Raft node of this crate.
pub type Raft = openraft::Raft<TypeConfig>;

/// One replicated write: the state machine applies it to its database, in log order, on
/// every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Create a collection (applied again to an equal one it is a no-op).
    CreateCollection {
        /// Its name.
        name: String,
        /// Its shape.
        spec: CollectionSpec,
    },
    /// Drop a collection (a no-op if it is not there).
    DropCollection {
        /// Its name.
        name: String,
    },
    /// Insert or replace points, as one atomic batch.
    Upsert {
        /// The collection.
        collection: String,
        /// The points.
        points: Vec<PointData>,
    },
    /// Delete points by id (ids not there are skipped).
    Delete {
        /// The collection.
        collection: String,
        /// The ids.
        ids: Vec<u64>,
    },
    /// Delete the points a typed filter admits (`vellum::Filter` as JSON), as the node that
    /// applies it sees them in log order.
    DeleteWhere {
        /// The collection.
        collection: String,
        /// The filter, as JSON.
        filter: String,
    },
}

/// A point as the log carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointData {
    /// Its id.
    pub id: u64,
    /// Its vector (encoded as its little-endian bytes: one copy, not a call per number).
    #[serde(with = "f32_bytes")]
    pub vector: Vec<f32>,
    /// Its payload bytes.
    pub payload: Option<Vec<u8>>,
}

/// A `Vec<f32>` as one byte string of little-endian `f32`s.
mod f32_bytes {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    struct Floats;

    impl Visitor<'_> for Floats {
        type Value = Vec<f32>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string of little-endian f32s")
        }

        fn visit_bytes<E: Error>(self, b: &[u8]) -> Result<Vec<f32>, E> {
            if !b.len().is_multiple_of(4) {
                return Err(E::custom(format!(
                    "a vector of {} bytes is not a whole number of f32s",
                    b.len()
                )));
            }
            Ok(b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        d.deserialize_bytes(Floats)
    }
}

/// What applying an entry did. A request the database refuses (a missing collection, a
/// wrong dimension) is refused the same way on every node: the refusal is the response,
/// not a failure of the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Applied; `points` written or deleted (0 for collection changes and blank entries).
    Applied {
        /// Points touched.
        points: u64,
    },
    /// Refused by the database, with its reason.
    Refused {
        /// What kind of refusal.
        kind: Refusal,
        /// Why.
        reason: String,
    },
}

/// Why a request was refused (a server maps these to 404, 409 and 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The collection is not there.
    NotFound,
    /// It conflicts with what is there (a collection of another shape).
    Conflict,
    /// The request itself is wrong (dimension, name, non-finite value, bad filter).
    Invalid,
}

/// A collection's shape as the log carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSpec {
    /// Dimensions.
    pub dim: u32,
    /// `l2`, `cosine` or `dot`.
    pub metric: String,
    /// An exact (flat) index instead of HNSW.
    pub flat: bool,
    /// `int8`, `f16` or `binary` codes, or none.
    pub quantization: Option<String>,
}

impl CollectionSpec {
    /// An HNSW collection of `dim` dimensions under `metric`.
    pub fn new(dim: u32, metric: &str) -> Self {
        CollectionSpec {
            dim,
            metric: metric.to_owned(),
            flat: false,
            quantization: None,
        }
    }

    /// The database's configuration for it, or why it is not one.
    pub fn to_config(&self) -> Result<CollectionConfig, String> {
        let metric = match self.metric.as_str() {
            "l2" => Metric::L2,
            "cosine" => Metric::Cosine,
            "dot" => Metric::Dot,
            other => return Err(format!("unknown metric {other:?} (l2, cosine or dot)")),
        };
        let mut config = CollectionConfig::new(self.dim as usize, metric);
        if self.flat {
            config.index = IndexKind::Flat;
        }
        config.quantization = match self.quantization.as_deref() {
            None => None,
            Some("int8") => Some(Quantization::int8()),
            Some("f16") => Some(Quantization::f16()),
            Some("binary") => Some(Quantization::binary()),
            Some(other) => return Err(format!("unknown quantization {other:?}")),
        };
        Ok(config)
    }
}

/// A snapshot's data: a directory on a node's file system holding one Vellum archive per
/// collection and a manifest (docs/REPLICATION.md). Built by the state machine, streamed
/// between nodes as archive chunks, installed after every archive is verified.
#[derive(Clone)]
pub struct SnapshotFiles {
    /// The file system the directory is on.
    pub fs: DynFs,
    /// The directory.
    pub dir: PathBuf,
}

impl std::fmt::Debug for SnapshotFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFiles")
            .field("dir", &self.dir)
            .finish()
    }
}
