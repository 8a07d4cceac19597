//! Payload indexes: for one field, which points hold which value. One file per index per
//! checkpoint generation (`payload-index-<n>`, docs/format/payload-index.md), mapped at open;
//! the changes since the last checkpoint are in memory beside the payloads they come from
//! (`Unsaved`). A checkpoint writes a new file by merging the old one, without the points
//! that changed, with the changed points' keys (both sorted): linear in the index, no sort
//! of it.
//!
//! Keys: a keyword index keeps the strings (a sorted dictionary; an entry's key is the
//! string's position in it), so lookups are exact; a numeric index (integer or float) keeps
//! every number as an order-preserving image of its f64 value, so equality and ranges are
//! exactly the comparisons a filter makes on the payload; a bool index keeps 0 and 1.

use std::cmp::Ordering;
use std::path::Path;

use serde_json::Value as Json;
use vellum_checkpoint::FileBytes;

use crate::error::{Error, Result};
use crate::filter::Range;

/// The first eight bytes of an index file.
pub(crate) const INDEX_MAGIC: [u8; 8] = *b"VLMPIDX\x01";
/// The format version written.
pub(crate) const INDEX_VERSION: u32 = 1;
/// One entry: key u64, id u64.
pub(crate) const ENTRY_BYTES: usize = 16;
/// The longest field name an index may have (bytes).
pub const MAX_FIELD_BYTES: usize = 1024;

/// What a payload index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PayloadIndexKind {
    /// Strings: answers `match` and `in` with keyword values.
    Keyword,
    /// Numbers: answers `match` and `in` with integer values, and `range`.
    Integer,
    /// Numbers: the same as `Integer` (both keep every number of the field).
    Float,
    /// Booleans: answers `match` with a bool.
    Bool,
}

impl PayloadIndexKind {
    pub(crate) fn id(self) -> u8 {
        match self {
            PayloadIndexKind::Keyword => 1,
            PayloadIndexKind::Integer => 2,
            PayloadIndexKind::Float => 3,
            PayloadIndexKind::Bool => 4,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            1 => PayloadIndexKind::Keyword,
            2 => PayloadIndexKind::Integer,
            3 => PayloadIndexKind::Float,
            4 => PayloadIndexKind::Bool,
            _ => return None,
        })
    }

    /// Its name, as the CLI and `inspect` write it.
    pub fn name(self) -> &'static str {
        match self {
            PayloadIndexKind::Keyword => "keyword",
            PayloadIndexKind::Integer => "integer",
            PayloadIndexKind::Float => "float",
            PayloadIndexKind::Bool => "bool",
        }
    }

    /// The kind named `name` (`keyword`, `integer`, `float`, `bool`).
    pub fn parse(name: &str) -> Option<Self> {
        [
            PayloadIndexKind::Keyword,
            PayloadIndexKind::Integer,
            PayloadIndexKind::Float,
            PayloadIndexKind::Bool,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    fn is_numeric(self) -> bool {
        matches!(self, PayloadIndexKind::Integer | PayloadIndexKind::Float)
    }
}

/// One key of an index: a string (keyword index) or a number's image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Num(u64),
    Str(String),
}

/// The order-preserving image of a number (`-0.0` as `0.0`; no NaN reaches here: JSON has
/// none).
pub(crate) fn num_key(x: f64) -> u64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The keys `kind` takes from the values a filter finds at the field (see
/// `filter::field_values`).
pub(crate) fn keys_of(kind: PayloadIndexKind, values: &[&Json]) -> Vec<Key> {
    let mut keys: Vec<Key> = values
        .iter()
        .filter_map(|v| match (kind, v) {
            (PayloadIndexKind::Keyword, Json::String(s)) => Some(Key::Str(s.clone())),
            (k, Json::Number(n)) if k.is_numeric() => n.as_f64().map(|x| Key::Num(num_key(x))),
            (PayloadIndexKind::Bool, Json::Bool(b)) => Some(Key::Num(u64::from(*b))),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What an index is asked: keys equal to one of these, or numbers in a range.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    Keys(Vec<Key>),
    /// Inclusive bounds on the key.
    Between(u64, u64),
}

impl Lookup {
    /// The lookup answering `range` on a numeric index (`None`: nothing can match).
    pub(crate) fn range(range: &Range) -> Option<Lookup> {
        // A NaN bound admits nothing, as the comparison on the payload would.
        if [range.gt, range.gte, range.lt, range.lte]
            .iter()
            .flatten()
            .any(|b| b.is_nan())
        {
            return None;
        }
        let mut lo = 0u64;
        let mut hi = u64::MAX;
        if let Some(b) = range.gte {
            lo = lo.max(num_key(b));
        }
        if let Some(b) = range.gt {
            lo = lo.max(num_key(b).checked_add(1)?);
        }
        if let Some(b) = range.lte {
            hi = hi.min(num_key(b));
        }
        if let Some(b) = range.lt {
            hi = hi.min(num_key(b).checked_sub(1)?);
        }
        (lo <= hi).then_some(Lookup::Between(lo, hi))
    }

    pub(crate) fn admits(&self, key: &Key) -> bool {
        match (self, key) {
            (Lookup::Keys(keys), k) => keys.binary_search(k).is_ok(),
            (Lookup::Between(lo, hi), Key::Num(n)) => lo <= n && n <= hi,
            (Lookup::Between(..), Key::Str(_)) => false,
        }
    }
}

/// An index file, mapped (or built in memory by a checkpoint), checked at open.
#[derive(Clone)]
pub(crate) struct IndexFile {
    bytes: FileBytes,
    pub(crate) field: String,
    pub(crate) kind: PayloadIndexKind,
    /// Offsets of the dictionary's offset table and heap, and of the entries.
    dict_len: usize,
    dict_offsets_at: usize,
    heap_at: usize,
    entries_at: usize,
    len: usize,
    /// A delta file: the offset of its shadow ids and their count (see [`IndexFile::shadows`]).
    shadow_at: Option<usize>,
    shadow_len: usize,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IndexFile({:?} {}, {} entries)",
            self.field,
            self.kind.name(),
            self.len
        )
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

impl IndexFile {
    /// Decodes and checks an index file's structure: header, field, dictionary (strictly
    /// ascending strings inside the heap), lengths. Total: any input gives an index or an
    /// error naming the offset, and no later read of it panics; the order of its entries is
    /// checked by [`IndexFile::check_order`].
    pub(crate) fn open(bytes: FileBytes, path: &Path) -> Result<IndexFile> {
        let b = bytes.as_slice();
        let bad = |reason: String| Error::BadDatabaseFile {
            path: path.to_path_buf(),
            reason,
        };
        let count = super::read_header(b, INDEX_MAGIC, INDEX_VERSION, "payload index", path)?;
        let mut at = super::HEADER_BYTES;
        let short = |what: &str, at: usize| bad(format!("{what} at offset {at} ends early"));
        if b.len() < at + 4 {
            return Err(short("the kind and field length", at));
        }
        let kind = PayloadIndexKind::from_id(b[at])
            .ok_or_else(|| bad(format!("unknown index kind {} at offset {at}", b[at])))?;
        let is_delta = match b[at + 1] {
            0 => false,
            1 => true,
            other => {
                return Err(bad(format!(
                    "form byte at offset {} is {other}, not 0 (whole) or 1 (delta)",
                    at + 1
                )));
            }
        };
        let field_len = u16::from_le_bytes([b[at + 2], b[at + 3]]) as usize;
        at += 4;
        if field_len == 0 || field_len > MAX_FIELD_BYTES || b.len() < at + field_len {
            return Err(bad(format!(
                "field name of {field_len} bytes at offset {at}"
            )));
        }
        let field = std::str::from_utf8(&b[at..at + field_len])
            .map_err(|_| bad(format!("field name at offset {at} is not UTF-8")))?
            .to_owned();
        at += field_len;
        if b.len() < at + 8 {
            return Err(short("the dictionary count", at));
        }
        let dict_len = u64_at(b, at);
        at += 8;
        if kind != PayloadIndexKind::Keyword && dict_len != 0 {
            return Err(bad(format!(
                "a {} index has a dictionary of {dict_len} strings",
                kind.name()
            )));
        }
        let offsets_bytes = dict_len
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .filter(|&n| n <= (b.len() - at) as u64)
            .ok_or_else(|| bad(format!("dictionary count {dict_len} does not fit the file")))?
            as usize;
        let dict_len = dict_len as usize;
        let dict_offsets_at = at;
        let heap_at = at + offsets_bytes;
        let heap_len = u64_at(b, dict_offsets_at + dict_len * 8);
        if heap_len > (b.len() - heap_at) as u64 {
            return Err(bad(format!(
                "the dictionary's heap of {heap_len} bytes does not fit the file"
            )));
        }
        let entries_at = heap_at + heap_len as usize;
        let body = b.len() - entries_at;
        let entry_bytes = count
            .checked_mul(ENTRY_BYTES as u64)
            .filter(|&n| n <= body as u64)
            .ok_or_else(|| {
                bad(format!(
                    "offset 16 counts {count} entries, the file holds {body} bytes after its \
                     dictionary"
                ))
            })? as usize;
        let (shadow_at, shadow_len) = if is_delta {
            let at = entries_at + entry_bytes;
            if b.len() < at + 8 {
                return Err(short("the shadow count", at));
            }
            let n = u64_at(b, at);
            if n.checked_mul(8) != Some((b.len() - at - 8) as u64) {
                return Err(bad(format!(
                    "offset {at} counts {n} shadowed ids, the file holds {} bytes of them",
                    b.len() - at - 8
                )));
            }
            (Some(at + 8), n as usize)
        } else {
            if entry_bytes != body {
                return Err(bad(format!(
                    "offset 16 counts {count} entries, the file holds {body} bytes of them"
                )));
            }
            (None, 0)
        };
        let index = IndexFile {
            bytes: bytes.clone(),
            field,
            kind,
            dict_len,
            dict_offsets_at,
            heap_at,
            entries_at,
            len: count as usize,
            shadow_at,
            shadow_len,
        };
        let mut prev_end = 0u64;
        let mut prev: Option<&[u8]> = None;
        for i in 0..dict_len {
            let start = u64_at(b, dict_offsets_at + i * 8);
            let end = u64_at(b, dict_offsets_at + (i + 1) * 8);
            if start != prev_end || end < start || end > heap_len {
                return Err(bad(format!(
                    "dictionary string {i} (offset table at {}) spans {start}..{end} of a \
                     {heap_len}-byte heap",
                    dict_offsets_at + i * 8
                )));
            }
            let s = &b[heap_at + start as usize..heap_at + end as usize];
            if std::str::from_utf8(s).is_err() || prev.is_some_and(|p| p >= s) {
                return Err(bad(format!(
                    "dictionary string {i} at offset {} is not UTF-8 or not after the one \
                     before it",
                    heap_at + start as usize
                )));
            }
            prev = Some(s);
            prev_end = end;
        }
        if prev_end != heap_len {
            return Err(bad(format!(
                "the dictionary's strings end at {prev_end}, its heap at {heap_len}"
            )));
        }
        Ok(index)
    }

    /// Checks what open leaves out, being linear in the entries: entries strictly
    /// ascending, keyword keys inside the dictionary, shadowed ids strictly ascending. Open
    /// relies on the file's checksum for that (the file is this code's own output); this runs
    /// where a file may come from elsewhere (snapshot import) and in `verify`.
    pub(crate) fn check_order(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::BadDatabaseFile {
            path: path.to_path_buf(),
            reason,
        };
        let (index, kind, dict_len, entries_at) = (self, self.kind, self.dict_len, self.entries_at);
        let mut last: Option<(u64, u64)> = None;
        for i in 0..index.len {
            let entry = index.entry(i);
            let at = entries_at + i * ENTRY_BYTES;
            if last.is_some_and(|l| l >= entry) {
                return Err(bad(format!(
                    "entry {i} at offset {at} is not after the one before it"
                )));
            }
            if kind == PayloadIndexKind::Keyword && entry.0 >= dict_len as u64 {
                return Err(bad(format!(
                    "entry {i} at offset {at} names string {} of {dict_len}",
                    entry.0
                )));
            }
            last = Some(entry);
        }
        let mut last = None;
        for i in 0..index.shadow_len {
            let id = index.shadow(i);
            if last.is_some_and(|l| l >= id) {
                return Err(bad(format!(
                    "shadowed id {i} at offset {} is not after the one before it",
                    index.shadow_at.unwrap_or(0) + i * 8
                )));
            }
            last = Some(id);
        }
        Ok(())
    }

    fn shadow(&self, i: usize) -> u64 {
        u64_at(self.bytes.as_slice(), self.shadow_at.unwrap_or(0) + i * 8)
    }

    /// Whether this is a delta file.
    pub(crate) fn is_delta(&self) -> bool {
        self.shadow_at.is_some()
    }

    /// The ids a delta file speaks for, ascending: every id whose payload changed since the
    /// whole file was written. The whole file's entries of these ids are out of date; the
    /// delta's own entries (of some of them) replace them.
    pub(crate) fn shadow_ids(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.shadow_len).map(|i| self.shadow(i))
    }

    /// Whether a delta file speaks for `id`.
    pub(crate) fn shadows(&self, id: u64) -> bool {
        let (mut lo, mut hi) = (0, self.shadow_len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.shadow(mid).cmp(&id) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return true,
            }
        }
        false
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// The same index over other bytes (the file a checkpoint wrote from these).
    pub(crate) fn remapped(&self, bytes: FileBytes) -> IndexFile {
        IndexFile {
            bytes,
            ..self.clone()
        }
    }

    /// Entry `i` as (key, id).
    fn entry(&self, i: usize) -> (u64, u64) {
        let b = self.bytes.as_slice();
        let at = self.entries_at + i * ENTRY_BYTES;
        (u64_at(b, at), u64_at(b, at + 8))
    }

    fn dict(&self, i: usize) -> &str {
        let b = self.bytes.as_slice();
        if i >= self.dict_len {
            // Only in a file whose order was not checked (see `check_order`).
            return "";
        }
        let start = u64_at(b, self.dict_offsets_at + i * 8) as usize;
        let end = u64_at(b, self.dict_offsets_at + (i + 1) * 8) as usize;
        // Checked as UTF-8 and inside the heap at open.
        std::str::from_utf8(&b[self.heap_at + start..self.heap_at + end]).unwrap_or("")
    }

    /// The key of entry `i`, as the overlay holds keys.
    fn key(&self, raw: u64) -> Key {
        match self.kind {
            PayloadIndexKind::Keyword => Key::Str(self.dict(raw as usize).to_owned()),
            _ => Key::Num(raw),
        }
    }

    /// The raw key of `key` in this file (`None`: no entry has it).
    fn raw_key(&self, key: &Key) -> Option<u64> {
        match key {
            Key::Num(n) => Some(*n),
            Key::Str(s) => {
                let (mut lo, mut hi) = (0, self.dict_len);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match self.dict(mid).cmp(s.as_str()) {
                        Ordering::Less => lo = mid + 1,
                        Ordering::Greater => hi = mid,
                        Ordering::Equal => return Some(mid as u64),
                    }
                }
                None
            }
        }
    }

    /// The first entry whose (key, id) is at least `(key, 0)`.
    fn lower_bound(&self, key: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).0 < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Calls `each(id)` for every entry the lookup admits.
    pub(crate) fn ids(&self, lookup: &Lookup, mut each: impl FnMut(u64)) {
        let mut span = |lo: u64, hi: u64| {
            let mut i = self.lower_bound(lo);
            while i < self.len {
                let (k, id) = self.entry(i);
                if k > hi {
                    break;
                }
                each(id);
                i += 1;
            }
        };
        match lookup {
            Lookup::Keys(keys) => {
                for key in keys {
                    if let Some(raw) = self.raw_key(key) {
                        span(raw, raw);
                    }
                }
            }
            Lookup::Between(lo, hi) => {
                if self.kind.is_numeric() {
                    span(*lo, *hi);
                }
            }
        }
    }

    /// Every entry as (key, id), in order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Key, u64)> + '_ {
        (0..self.len).map(|i| {
            let (raw, id) = self.entry(i);
            (self.key(raw), id)
        })
    }
}

/// Writes an index file from entries in (key, id) order.
pub(crate) fn encode(
    field: &str,
    kind: PayloadIndexKind,
    entries: impl Iterator<Item = (Key, u64)>,
) -> Vec<u8> {
    encode_with(field, kind, entries, None)
}

/// As [`encode`]; with `shadow` (ascending ids), a delta file speaking for those ids.
pub(crate) fn encode_with(
    field: &str,
    kind: PayloadIndexKind,
    entries: impl Iterator<Item = (Key, u64)>,
    shadow: Option<&[u64]>,
) -> Vec<u8> {
    let mut dict: Vec<String> = Vec::new();
    let mut raw: Vec<(u64, u64)> = Vec::new();
    for (key, id) in entries {
        let k = match key {
            Key::Num(n) => n,
            Key::Str(s) => {
                if dict.last() != Some(&s) {
                    dict.push(s);
                }
                dict.len() as u64 - 1
            }
        };
        raw.push((k, id));
    }
    let mut out = Vec::with_capacity(64 + field.len() + raw.len() * ENTRY_BYTES);
    out.extend_from_slice(&INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.push(kind.id());
    out.push(u8::from(shadow.is_some()));
    out.extend_from_slice(&(field.len() as u16).to_le_bytes());
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(&(dict.len() as u64).to_le_bytes());
    let mut offset = 0u64;
    out.extend_from_slice(&offset.to_le_bytes());
    for s in &dict {
        offset += s.len() as u64;
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for s in &dict {
        out.extend_from_slice(s.as_bytes());
    }
    for (k, id) in raw {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    if let Some(ids) = shadow {
        out.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        for id in ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    out
}

/// Merges two streams sorted by (key, id).
pub(crate) fn merge_sorted(
    a: impl Iterator<Item = (Key, u64)>,
    b: impl Iterator<Item = (Key, u64)>,
) -> impl Iterator<Item = (Key, u64)> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => {
            if x <= y {
                a.next()
            } else {
                b.next()
            }
        }
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_image_keeps_the_order_of_the_numbers() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.0,
            2.5,
            1e300,
        ];
        for w in xs.windows(2) {
            assert!(num_key(w[0]) <= num_key(w[1]), "{w:?}");
        }
        assert_eq!(num_key(-0.0), num_key(0.0));
    }

    #[test]
    fn an_unordered_file_opens_without_a_panic_and_check_order_refuses_it() {
        let p = Path::new("i");
        // An unsorted dictionary is refused at open (it is small) ...
        let unordered = vec![(Key::Str("b".into()), 1), (Key::Str("a".into()), 2)];
        let bytes = encode("f", PayloadIndexKind::Keyword, unordered.into_iter());
        assert!(IndexFile::open(FileBytes::from(bytes), p).is_err());
        // ... unsorted entries by check_order.
        let unordered = vec![(Key::Num(9), 1), (Key::Num(3), 2)];
        let bytes = encode("f", PayloadIndexKind::Integer, unordered.into_iter());
        let f = IndexFile::open(FileBytes::from(bytes), p).unwrap();
        let err = f.check_order(p).unwrap_err().to_string();
        assert!(err.contains("entry 1 at offset"), "{err}");
        // Reads give some answer, never a panic.
        f.ids(&Lookup::Between(0, u64::MAX), |_| ());
        let _ = f.entries().count();
        let shadowed = encode_with(
            "f",
            PayloadIndexKind::Bool,
            std::iter::empty(),
            Some(&[5, 3]),
        );
        let d = IndexFile::open(FileBytes::from(shadowed), p).unwrap();
        assert!(d.check_order(p).is_err());
    }

    #[test]
    fn an_index_file_round_trips_and_answers_lookups() {
        let entries = vec![
            (Key::Str("de".into()), 2),
            (Key::Str("en".into()), 1),
            (Key::Str("en".into()), 7),
        ];
        let bytes = encode(
            "lang",
            PayloadIndexKind::Keyword,
            entries.clone().into_iter(),
        );
        let p = Path::new("i");
        let f = IndexFile::open(FileBytes::from(bytes.clone()), p).unwrap();
        assert_eq!(f.entries().collect::<Vec<_>>(), entries);
        let mut got = Vec::new();
        f.ids(&Lookup::Keys(vec![Key::Str("en".into())]), |id| {
            got.push(id)
        });
        assert_eq!(got, vec![1, 7]);
        for cut in 0..bytes.len() {
            assert!(IndexFile::open(FileBytes::from(bytes[..cut].to_vec()), p).is_err());
        }
        let nums = vec![(Key::Num(num_key(1.0)), 3), (Key::Num(num_key(5.0)), 1)];
        let f = IndexFile::open(
            FileBytes::from(encode("n", PayloadIndexKind::Integer, nums.into_iter())),
            p,
        )
        .unwrap();
        let mut got = Vec::new();
        f.ids(&Lookup::range(&Range::at_least(2.0)).unwrap(), |id| {
            got.push(id)
        });
        assert_eq!(got, vec![1]);
    }
}
