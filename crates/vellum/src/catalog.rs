//! The database catalog: the file `VELLUM` at the root of a database directory, naming every
//! collection and its shape. It is small and replaced whole with
//! [`vellum_fs::atomic_replace`], so a crash leaves the old or the new catalog.
//!
//! Layout (all integers little-endian), documented in docs/format/database.md:
//!
//! ```text
//! magic "VELLUMDB" | version u32 | database id u64 | next collection id u64 | count u32
//! count × entry | crc32 u32 (of every byte before it)
//! entry: collection id u64 | name len u16 | name | dim u32 | metric u8 | index kind u8
//!        | m u32 | ef_construction u32 | ef_search u32 | seed u64 | created ms u64
//!        | quantization u8 | rescore u8 | oversampling f32          (version 2 only)
//! ```
//!
//! Version 1 (no quantization fields) is read as "no quantization"; version 2 is written.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use std::path::Path;

use vellum_fs::le::{LeReader, Short, u32_at};

use crate::error::{Error, Result};
use crate::options::{CollectionConfig, HnswParams, IndexKind, Metric, QuantKind, Quantization};

/// File name of the catalog.
pub const CATALOG_FILE: &str = "VELLUM";
const MAGIC: &[u8; 8] = b"VELLUMDB";
/// Catalog format version written.
pub const CATALOG_VERSION: u32 = 2;
/// The version before quantization, still read.
const CATALOG_VERSION_UNQUANTIZED: u32 = 1;
/// Longest collection name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
// Names go into a u16 length field.
const _: () = assert!(MAX_NAME_BYTES <= u16::MAX as usize);
/// Most collections in one database (bounds the decoder's allocation).
pub const MAX_COLLECTIONS: u32 = 65_536;
/// Fixed part of the catalog before its entries: magic, version, database id, next
/// collection id, entry count.
const HEADER_BYTES: usize = MAGIC.len() + 4 + 8 + 8 + 4;
/// The CRC-32 that ends the file.
const CRC_BYTES: usize = 4;
/// The shortest catalog: a header, no entries, the CRC.
const MIN_BYTES: usize = HEADER_BYTES + CRC_BYTES;
const _: () = assert!(MIN_BYTES == 36);
/// Fixed part of one entry: id, name length, (name), dimension, metric, index kind, m,
/// ef_construction, ef_search, seed, creation time.
const ENTRY_FIXED_BYTES: usize = 8 + 2 + 4 + 1 + 1 + 4 + 4 + 4 + 8 + 8;
const _: () = assert!(ENTRY_FIXED_BYTES == 44);
/// Quantization fields of a version 2 entry: kind, rescore, oversampling.
const ENTRY_QUANTIZATION_BYTES: usize = 1 + 1 + 4;

/// One collection as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) config: CollectionConfig,
    pub(crate) created_ms: u64,
}

/// The decoded catalog.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Catalog {
    pub(crate) database_id: u64,
    pub(crate) next_collection_id: u64,
    pub(crate) entries: Vec<Entry>,
}

/// Checks a collection name: 1 to 64 bytes of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("longer than 64 bytes")
    } else if name.starts_with('.') {
        Some("starts with a dot")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        Some("only letters, digits, '_', '-' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A length or parameter for a narrower field, from a value `validated_by` already bounded:
/// past that check, not fitting is a bug in the caller, never data.
#[track_caller]
fn field<T: TryFrom<usize>>(value: usize, validated_by: &str) -> T {
    T::try_from(value).unwrap_or_else(|_| panic!("{value} does not fit its field: {validated_by}"))
}

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::L2 => 0,
        Metric::Cosine => 1,
        Metric::Dot => 2,
        // Metric is non-exhaustive upstream: a metric this catalog version cannot name is a
        // programming error caught by the round-trip test.
        #[allow(unreachable_patterns)]
        _ => 255,
    }
}

/// The catalog byte of a quantization kind (0 is none).
fn quant_code(q: Option<&Quantization>) -> u8 {
    match q.map(|q| q.kind) {
        None => 0,
        Some(QuantKind::Int8) => 1,
        Some(QuantKind::F16) => 2,
        Some(QuantKind::Binary) => 3,
        // Non-exhaustive upstream, as the metric above.
        #[allow(unreachable_patterns)]
        Some(_) => 255,
    }
}

fn quant_kind_from(code: u8) -> Option<Option<QuantKind>> {
    match code {
        0 => Some(None),
        1 => Some(Some(QuantKind::Int8)),
        2 => Some(Some(QuantKind::F16)),
        3 => Some(Some(QuantKind::Binary)),
        _ => None,
    }
}

fn metric_from(code: u8) -> Option<Metric> {
    match code {
        0 => Some(Metric::L2),
        1 => Some(Metric::Cosine),
        2 => Some(Metric::Dot),
        _ => None,
    }
}

impl Catalog {
    pub(crate) fn new(database_id: u64) -> Self {
        Catalog {
            database_id,
            next_collection_id: 1,
            entries: Vec::new(),
        }
    }

    /// Refuses one more collection when the catalog already names as many as its decoder
    /// accepts: a catalog that could be written but not read back would lock the database.
    pub(crate) fn check_room(&self) -> Result<()> {
        if self.entries.len() >= MAX_COLLECTIONS as usize {
            return Err(Error::InvalidArgument(format!(
                "the database holds {} collections, the most one catalog can name",
                self.entries.len()
            )));
        }
        Ok(())
    }

    /// Encodes the catalog. Every entry's name and configuration were validated before it
    /// joined the catalog (`validate_name` and `CollectionConfig::validate` on create, the
    /// same checks in [`Catalog::decode`] for one read back), so each fits its field.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CATALOG_VERSION.to_le_bytes());
        out.extend_from_slice(&self.database_id.to_le_bytes());
        out.extend_from_slice(&self.next_collection_id.to_le_bytes());
        // Create and import refuse past MAX_COLLECTIONS (`check_room`), as the decoder does.
        let count = u32::try_from(self.entries.len()).expect("fewer than 2^32 collections");
        out.extend_from_slice(&count.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.id.to_le_bytes());
            out.extend_from_slice(&field::<u16>(e.name.len(), "validate_name").to_le_bytes());
            out.extend_from_slice(e.name.as_bytes());
            let dim: u32 = field(e.config.dim, "CollectionConfig::validate: MAX_DIM");
            out.extend_from_slice(&dim.to_le_bytes());
            out.push(metric_code(e.config.metric));
            let (kind, p) = match e.config.index {
                IndexKind::Flat => (0u8, HnswParams::default()),
                IndexKind::Hnsw(p) => (1u8, p),
            };
            out.push(kind);
            // `vellum_index::Hnsw::new` (through `CollectionConfig::validate`) holds m to
            // MAX_M and the ef values to u32; a flat index writes the defaults.
            const HNSW: &str = "CollectionConfig::validate: HNSW parameters";
            for value in [p.m, p.ef_construction, p.ef_search] {
                out.extend_from_slice(&field::<u32>(value, HNSW).to_le_bytes());
            }
            out.extend_from_slice(&p.seed.to_le_bytes());
            out.extend_from_slice(&e.created_ms.to_le_bytes());
            let q = e.config.quantization.as_ref();
            out.push(quant_code(q));
            out.push(u8::from(q.is_some_and(|q| q.rescore)));
            out.extend_from_slice(&q.map_or(0.0, |q| q.oversampling).to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Catalog> {
        let bad = |reason: String| Error::BadDatabaseFile {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < MIN_BYTES {
            return Err(bad(format!(
                "{} bytes is too short for a catalog",
                bytes.len()
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("not a Vellum catalog (bad magic)".into()));
        }
        let (body, crc_bytes) = bytes.split_at(bytes.len() - CRC_BYTES);
        let stored = u32_at(crc_bytes, 0);
        let actual = crc32fast::hash(body);
        if stored != actual {
            return Err(bad(format!(
                "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            )));
        }
        let mut r = LeReader::with_base(&body[MAGIC.len()..], MAGIC.len() as u64);
        let short = |e: Short| bad(format!("ends early at offset {}", e.offset));
        let version = r.u32().map_err(short)?;
        if version != CATALOG_VERSION && version != CATALOG_VERSION_UNQUANTIZED {
            return Err(bad(format!(
                "catalog version {version} is not supported (this build reads {CATALOG_VERSION})"
            )));
        }
        let database_id = r.u64().map_err(short)?;
        let next_collection_id = r.u64().map_err(short)?;
        let count = r.u32().map_err(short)?;
        if count > MAX_COLLECTIONS {
            return Err(bad(format!(
                "{count} collections exceeds the limit of {MAX_COLLECTIONS}"
            )));
        }
        let mut entries = Vec::with_capacity(
            (count as usize).min(r.remaining() / (ENTRY_FIXED_BYTES + ENTRY_QUANTIZATION_BYTES)),
        );
        // Sets, not a scan of the entries so far: linear in the collections, not quadratic.
        let mut names = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for i in 0..count {
            let id = r.u64().map_err(short)?;
            let name_len = usize::from(r.u16().map_err(short)?);
            let name = std::str::from_utf8(r.take(name_len).map_err(short)?)
                .map_err(|_| bad(format!("collection {i}: name is not UTF-8")))?
                .to_owned();
            validate_name(&name).map_err(|e| bad(format!("collection {i}: {e}")))?;
            let dim = r.u32().map_err(short)? as usize;
            let metric_byte = r.u8().map_err(short)?;
            let metric = metric_from(metric_byte)
                .ok_or_else(|| bad(format!("collection {name:?}: unknown metric {metric_byte}")))?;
            let kind = r.u8().map_err(short)?;
            let m = r.u32().map_err(short)? as usize;
            let ef_construction = r.u32().map_err(short)? as usize;
            let ef_search = r.u32().map_err(short)? as usize;
            let seed = r.u64().map_err(short)?;
            let created_ms = r.u64().map_err(short)?;
            let index = match kind {
                0 => IndexKind::Flat,
                1 => IndexKind::Hnsw(HnswParams {
                    m,
                    ef_construction,
                    ef_search,
                    seed,
                }),
                other => {
                    return Err(bad(format!(
                        "collection {name:?}: unknown index kind {other}"
                    )));
                }
            };
            let quantization = if version == CATALOG_VERSION_UNQUANTIZED {
                None
            } else {
                let code = r.u8().map_err(short)?;
                let kind = quant_kind_from(code).ok_or_else(|| {
                    bad(format!("collection {name:?}: unknown quantization {code}"))
                })?;
                let rescore = match r.u8().map_err(short)? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(bad(format!(
                            "collection {name:?}: rescore byte {other} is neither 0 nor 1"
                        )));
                    }
                };
                let oversampling = r.f32().map_err(short)?;
                kind.map(|kind| Quantization {
                    kind,
                    rescore,
                    oversampling,
                })
            };
            let config = CollectionConfig {
                dim,
                metric,
                index,
                quantization,
            };
            config
                .validate()
                .map_err(|e| bad(format!("collection {name:?}: {e}")))?;
            if !ids.insert(id) || !names.insert(name.clone()) {
                return Err(bad(format!("collection {name:?} (id {id}) appears twice")));
            }
            entries.push(Entry {
                id,
                name,
                config,
                created_ms,
            });
        }
        if r.remaining() != 0 {
            return Err(bad(format!(
                "{} unexpected bytes after the last entry",
                r.remaining()
            )));
        }
        Ok(Catalog {
            database_id,
            next_collection_id,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Catalog {
        let mut c = Catalog::new(0xABCD);
        c.entries.push(Entry {
            id: 1,
            name: "docs".into(),
            config: CollectionConfig::new(128, Metric::Cosine),
            created_ms: 5,
        });
        c.entries.push(Entry {
            id: 2,
            name: "images-v2".into(),
            config: CollectionConfig::new(3, Metric::L2).flat(),
            created_ms: 6,
        });
        c.next_collection_id = 3;
        c
    }

    #[test]
    fn a_full_catalog_refuses_one_more_collection_and_still_decodes() {
        let mut c = sample();
        assert!(c.check_room().is_ok());
        c.entries.clear();
        for id in 0..u64::from(MAX_COLLECTIONS) {
            c.entries.push(Entry {
                id,
                name: format!("c{id}"),
                config: CollectionConfig::new(2, Metric::L2),
                created_ms: 0,
            });
        }
        c.next_collection_id = u64::from(MAX_COLLECTIONS);
        assert!(matches!(c.check_room(), Err(Error::InvalidArgument(_))));
        let back = Catalog::decode(&c.encode(), Path::new("VELLUM")).unwrap();
        assert_eq!(back.entries.len(), MAX_COLLECTIONS as usize);
    }

    #[test]
    fn a_catalog_naming_a_collection_twice_is_refused() {
        for (id, name) in [(1, "other"), (7, "docs")] {
            let mut c = sample();
            c.entries.push(Entry {
                id,
                name: name.into(),
                config: CollectionConfig::new(2, Metric::L2),
                created_ms: 0,
            });
            let e = Catalog::decode(&c.encode(), Path::new("VELLUM")).unwrap_err();
            assert!(e.to_string().contains("appears twice"), "{e}");
        }
    }

    #[test]
    fn the_catalog_round_trips() {
        let c = sample();
        assert_eq!(
            Catalog::decode(&c.encode(), Path::new("VELLUM")).unwrap(),
            c
        );
    }

    #[test]
    fn every_truncation_and_bit_flip_of_the_catalog_is_an_error() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(
                Catalog::decode(&bytes[..cut], Path::new("VELLUM")).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                Catalog::decode(&b, Path::new("VELLUM")).is_err(),
                "flip at {i}"
            );
        }
    }

    #[test]
    fn names_are_validated() {
        for bad in [
            "",
            ".hidden",
            "a/b",
            "x".repeat(65).as_str(),
            "sp ace",
            "..",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "docs_v2", "A-1.b"] {
            validate_name(good).unwrap();
        }
    }
}
