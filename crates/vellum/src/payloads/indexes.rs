//! Payload indexes in the store: which exist, keeping them up to date on every write (the
//! keys of a changed payload go beside it in the unsaved buffer), their checkpoint files,
//! lookups, and the planner that answers a typed filter from them.
//!
//! An index's answer is its file as of the last checkpoint, without the ids changed since
//! (in the unsaved buffers), plus those ids' keys: the same shadowing as payloads.

use std::collections::BTreeMap;
use std::path::Path;

use rustc_hash::FxHashMap;
use vellum_checkpoint::{FileBytes, LoadedGeneration};

use super::index::{
    IndexFile, Key, Lookup, PayloadIndexKind, encode, encode_with, keys_of, merge_sorted,
};
use super::locations::Table;
use super::unsaved::Unsaved;
use super::{PayloadStore, Run, run};
use crate::error::{Error, Result};
use crate::filter::{Condition, Filter, Value, with_field_values};

/// Prefix of an index file's name in a generation (then 8 hex digits: its number).
pub(crate) const INDEX_PREFIX: &str = "payload-index-";

/// Suffix of an index's delta file.
pub(crate) const DELTA_SUFFIX: &str = ".delta";
/// A delta is written while the ids it speaks for are at most 1/`DELTA_DIVISOR` of the
/// whole file's entries; past that, the whole file is written again and the delta goes.
const DELTA_DIVISOR: usize = 8;

pub(crate) fn index_file_name(no: u32) -> String {
    format!("{INDEX_PREFIX}{no:08x}")
}

fn delta_file_name(no: u32) -> String {
    format!("{INDEX_PREFIX}{no:08x}{DELTA_SUFFIX}")
}

/// The index number of a file named `name` and whether it is a delta, if it is one.
pub(crate) fn index_file_of(name: &str) -> Option<(u32, bool)> {
    let rest = name.strip_prefix(INDEX_PREFIX)?;
    let (hex, delta) = match rest.strip_suffix(DELTA_SUFFIX) {
        Some(hex) => (hex, true),
        None => (rest, false),
    };
    if hex.len() != 8 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(|no| (no, delta))
}

/// The number of the index file (whole or delta) named `name`, if it is one.
pub(crate) fn index_no_of(name: &str) -> Option<u32> {
    index_file_of(name).map(|(no, _)| no)
}

/// One index of the store.
#[derive(Debug, Clone)]
pub(crate) struct IndexState {
    pub(crate) field: String,
    pub(crate) kind: PayloadIndexKind,
    /// The index as of the last checkpoint that wrote it whole (or as built at creation);
    /// `None` while it is being built (the planner does not use it then).
    pub(crate) base: Option<IndexFile>,
    /// The changes since `base` as of the last checkpoint: the ids they speak for and
    /// their keys.
    pub(crate) delta: Option<IndexFile>,
    /// Whether `base` is the current generation's file (a checkpoint may carry it over).
    pub(crate) saved: bool,
}

/// A payload index, as [`crate::Collection::payload_indexes`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PayloadIndexInfo {
    /// The field (a dotted path).
    pub field: String,
    /// What it holds.
    pub kind: PayloadIndexKind,
    /// Entries (point, value) in its file as of the last checkpoint.
    pub entries_saved: u64,
}

/// The payloads of one moment, to build a new index from without the lock.
pub(crate) struct IndexSource {
    table: Table,
    runs: BTreeMap<u64, Run>,
    field: String,
    kind: PayloadIndexKind,
}

impl IndexSource {
    /// Reads every payload in the runs (through its checksum) and builds the index file.
    pub(crate) fn build(self) -> Result<IndexFile> {
        let mut entries: Vec<(Key, u64)> = Vec::new();
        for l in self.table.iter() {
            let Some(r) = self.runs.get(&l.run) else {
                return Err(Error::Inconsistent {
                    reason: format!("the payload of id {} is in run {}, not open", l.id, l.run),
                });
            };
            let payload = run::read_record(r.bytes.as_slice(), l.offset, l.id, l.len, &r.path)?;
            for key in with_field_values(Some(payload), &self.field, |v| keys_of(self.kind, v)) {
                entries.push((key, l.id));
            }
        }
        entries.sort_unstable();
        let bytes = encode(&self.field, self.kind, entries.into_iter());
        let path = Path::new("(new payload index)");
        let file = IndexFile::open(FileBytes::from(bytes), path)?;
        file.check_order(path)?;
        Ok(file)
    }
}

/// One file of an index as a checkpoint leaves it (its whole file, and maybe a delta):
/// written anew or carried over.
pub(crate) struct BuiltIndex {
    pub(crate) no: u32,
    pub(crate) name: String,
    pub(crate) file: IndexFile,
    pub(crate) written: bool,
    pub(crate) is_delta: bool,
}

/// Builds each index's files for a checkpoint taking `frozen`: while few ids changed since
/// the whole file, a new delta (the old delta's entries without the ids changed now, merged
/// with their new keys) and the whole file carried over; else the whole file again.
pub(crate) fn build_indexes(
    indexes: &BTreeMap<u32, IndexState>,
    frozen: &Unsaved,
) -> Result<Vec<BuiltIndex>> {
    let mut out = Vec::new();
    for (&no, state) in indexes {
        let Some(base) = &state.base else {
            continue;
        };
        let carried = |file: &IndexFile, is_delta: bool| BuiltIndex {
            no,
            name: if is_delta {
                delta_file_name(no)
            } else {
                index_file_name(no)
            },
            file: file.clone(),
            written: false,
            is_delta,
        };
        if frozen.is_empty() && state.saved {
            out.push(carried(base, false));
            if let Some(delta) = &state.delta {
                out.push(carried(delta, true));
            }
            continue;
        }
        let mut changed: Vec<(Key, u64)> = frozen
            .keys(no)
            .into_iter()
            .flatten()
            .flat_map(|(&id, keys)| keys.iter().map(move |k| (k.clone(), id)))
            .collect();
        changed.sort_unstable();
        // The ids the new delta speaks for: the old delta's and those changed now.
        let mut shadow: Vec<u64> = state
            .delta
            .iter()
            .flat_map(IndexFile::shadow_ids)
            .chain(frozen.changed_ids())
            .collect();
        shadow.sort_unstable();
        shadow.dedup();
        let old_delta = state
            .delta
            .iter()
            .flat_map(IndexFile::entries)
            .filter(|(_, id)| !frozen.is_changed(*id));
        let delta_entries = merge_sorted(old_delta, changed.into_iter());
        // A whole file built since the last checkpoint (a new index) is not in the
        // generation yet: it is written whole.
        let whole = !state.saved || shadow.len() * DELTA_DIVISOR > base.len();
        let (name, bytes) = if whole {
            let kept = base
                .entries()
                .filter(|(_, id)| shadow.binary_search(id).is_err());
            let entries = merge_sorted(kept, delta_entries);
            (
                index_file_name(no),
                encode(&state.field, state.kind, entries),
            )
        } else {
            let bytes = encode_with(&state.field, state.kind, delta_entries, Some(&shadow));
            (delta_file_name(no), bytes)
        };
        // Checked like a file read back: a fault in the merge stops the checkpoint rather
        // than publishing an index that disagrees with its payloads.
        let file = IndexFile::open(FileBytes::from(bytes), Path::new(&name))?;
        file.check_order(Path::new(&name))?;
        if !whole {
            out.push(carried(base, false));
        }
        out.push(BuiltIndex {
            no,
            name,
            file,
            written: true,
            is_delta: !whole,
        });
    }
    Ok(out)
}

impl PayloadStore {
    /// Opens the index files (whole and delta) of a loaded generation.
    pub(crate) fn open_indexes(&mut self, dir: &Path, generation: &LoadedGeneration) -> Result<()> {
        let mut deltas = Vec::new();
        for (name, bytes) in &generation.files {
            let Some((no, is_delta)) = index_file_of(name) else {
                continue;
            };
            let path = super::generation_file_path(dir, generation, name);
            let file = IndexFile::open(bytes.clone(), &path)?;
            if file.is_delta() != is_delta {
                return Err(Error::BadDatabaseFile {
                    path,
                    reason: "its form byte (offset 25) does not match its name".into(),
                });
            }
            if is_delta {
                deltas.push((no, file, path));
                continue;
            }
            self.indexes.insert(
                no,
                IndexState {
                    field: file.field.clone(),
                    kind: file.kind,
                    base: Some(file),
                    delta: None,
                    saved: true,
                },
            );
        }
        for (no, file, path) in deltas {
            match self.indexes.get_mut(&no) {
                Some(state) if state.field == file.field && state.kind == file.kind => {
                    state.delta = Some(file);
                }
                _ => {
                    return Err(Error::BadDatabaseFile {
                        path,
                        reason: format!(
                            "a delta of a {} index on {:?} without that index",
                            file.kind.name(),
                            file.field
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Records the keys every index takes from `id`'s new payload (`None`: removed).
    pub(crate) fn index_change(&mut self, id: u64, payload: Option<&[u8]>) {
        for (&no, state) in &self.indexes {
            let keys = match payload {
                Some(_) => with_field_values(payload, &state.field, |v| keys_of(state.kind, v)),
                None => Vec::new(),
            };
            self.recent.put_keys(no, id, keys);
        }
    }

    /// Registers a new index on `field` (its file not built yet): from now on every write
    /// records its keys, and those of the payloads changed since the last checkpoint are
    /// recorded now. Returns its number and what to build its file from. The caller holds
    /// the checkpointer lock: no checkpoint is in flight.
    pub(crate) fn begin_index(
        &mut self,
        field: &str,
        kind: PayloadIndexKind,
    ) -> Result<(u32, IndexSource)> {
        if self.frozen.is_some() {
            return Err(Error::Inconsistent {
                reason: "a payload index was created while a checkpoint was in flight".into(),
            });
        }
        if let Some(existing) = self.indexes.values().find(|s| s.field == field) {
            return Err(Error::InvalidArgument(format!(
                "field {field:?} has a {} index already",
                existing.kind.name()
            )));
        }
        let no = self.indexes.keys().next_back().map_or(1, |n| n + 1);
        let changed: Vec<u64> = self.recent.changed_ids().collect();
        for id in changed {
            let keys = match self.recent.get(id).flatten() {
                Some(p) => with_field_values(Some(p), field, |v| keys_of(kind, v)),
                None => Vec::new(),
            };
            self.recent.put_keys(no, id, keys);
        }
        self.indexes.insert(
            no,
            IndexState {
                field: field.to_owned(),
                kind,
                base: None,
                delta: None,
                saved: false,
            },
        );
        Ok((
            no,
            IndexSource {
                table: self.table.clone(),
                runs: self.runs.clone(),
                field: field.to_owned(),
                kind,
            },
        ))
    }

    /// Makes a built index usable (until the next checkpoint, from memory).
    pub(crate) fn install_index(&mut self, no: u32, file: IndexFile) {
        if let Some(state) = self.indexes.get_mut(&no) {
            state.base = Some(file);
        }
    }

    /// Forgets the index on `field` (the next checkpoint leaves its file out). Whether
    /// there was one.
    pub(crate) fn drop_index(&mut self, field: &str) -> bool {
        let Some(no) = self
            .indexes
            .iter()
            .find(|(_, s)| s.field == field)
            .map(|(&no, _)| no)
        else {
            return false;
        };
        self.indexes.remove(&no);
        self.recent.drop_keys(no);
        true
    }

    /// Forgets an index whose build failed.
    pub(crate) fn abandon_index(&mut self, no: u32) {
        self.indexes.remove(&no);
        self.recent.drop_keys(no);
    }

    pub(crate) fn index_infos(&self) -> Vec<PayloadIndexInfo> {
        self.indexes
            .values()
            .map(|s| PayloadIndexInfo {
                field: s.field.clone(),
                kind: s.kind,
                entries_saved: s.base.as_ref().map_or(0, |b| b.len() as u64)
                    + s.delta.as_ref().map_or(0, |d| d.len() as u64),
            })
            .collect()
    }

    /// The ids whose payload the index on `field` says `lookup` admits, ascending; `None`
    /// if `field` has no usable index, or one of a kind `fits` refuses.
    fn lookup(
        &self,
        field: &str,
        lookup: &Lookup,
        fits: impl Fn(PayloadIndexKind) -> bool,
    ) -> Option<Vec<u64>> {
        let (&no, state) = self.indexes.iter().find(|(_, s)| s.field == field)?;
        let base = state.base.as_ref().filter(|_| fits(state.kind))?;
        let frozen = self.frozen.as_deref();
        let changed =
            |id: u64| self.recent.is_changed(id) || frozen.is_some_and(|f| f.is_changed(id));
        let mut ids = Vec::new();
        let nothing_changed = self.recent.is_empty() && frozen.is_none_or(Unsaved::is_empty);
        let delta = state.delta.as_ref();
        base.ids(lookup, |id| {
            if (nothing_changed || !changed(id)) && !delta.is_some_and(|d| d.shadows(id)) {
                ids.push(id);
            }
        });
        if let Some(delta) = delta {
            delta.ids(lookup, |id| {
                if nothing_changed || !changed(id) {
                    ids.push(id);
                }
            });
        }
        for (buffer, newer) in [(frozen, Some(&self.recent)), (Some(&self.recent), None)] {
            let Some(keys) = buffer.and_then(|b| b.keys(no)) else {
                continue;
            };
            for (&id, ks) in keys {
                if newer.is_some_and(|n| n.is_changed(id)) {
                    continue;
                }
                if ks.iter().any(|k| lookup.admits(k)) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }

    /// The ids one condition admits, from an index, if one can answer it exactly.
    fn condition_ids(&self, c: &Condition) -> Option<(Vec<u64>, bool)> {
        match c {
            Condition::HasId(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                Some((ids, true))
            }
            Condition::Nested(f) => self.plan(f),
            Condition::Match { key, value } => self
                .lookup(key, &Lookup::Keys(vec![key_of(value)]), |k| fits(k, value))
                .map(|ids| (ids, true)),
            Condition::In { key, values } => {
                let mut keys: Vec<Key> = values.iter().map(key_of).collect();
                keys.sort_unstable();
                keys.dedup();
                self.lookup(key, &Lookup::Keys(keys), |k| {
                    values.iter().all(|v| fits(k, v))
                })
                .map(|ids| (ids, true))
            }
            Condition::Range { key, range } => {
                let numeric = |k: PayloadIndexKind| {
                    matches!(k, PayloadIndexKind::Integer | PayloadIndexKind::Float)
                };
                match Lookup::range(range) {
                    Some(lookup) => self.lookup(key, &lookup, numeric),
                    // Nothing can match (an index would have answered so too).
                    None => self
                        .lookup(key, &Lookup::Keys(Vec::new()), numeric)
                        .map(|_| Vec::new()),
                }
                .map(|ids| (ids, true))
            }
            _ => None,
        }
    }

    /// The ids `filter` can admit, from the indexes: `(ids, exact)` — exactly the ids with a
    /// payload it admits (`exact`; ids without a live point may be among them), or a superset
    /// to evaluate the filter on. `None` if no index narrows it.
    pub(crate) fn plan(&self, filter: &Filter) -> Option<(Vec<u64>, bool)> {
        let mut exact = true;
        let mut sets: Vec<Vec<u64>> = Vec::new();
        for c in &filter.must {
            match self.condition_ids(c) {
                Some((ids, e)) => {
                    exact &= e;
                    sets.push(ids);
                }
                None => exact = false,
            }
        }
        if !filter.should.is_empty() {
            let mut union = Vec::new();
            let mut all = true;
            for c in &filter.should {
                match self.condition_ids(c) {
                    Some((ids, e)) => {
                        exact &= e;
                        union.extend(ids);
                    }
                    None => all = false,
                }
            }
            if all {
                union.sort_unstable();
                union.dedup();
                sets.push(union);
            } else {
                exact = false;
            }
        }
        let mut result = sets.into_iter().reduce(|a, b| intersect(&a, &b))?;
        for c in &filter.must_not {
            match self.condition_ids(c) {
                Some((ids, true)) => result.retain(|id| ids.binary_search(id).is_err()),
                _ => exact = false,
            }
        }
        Some((result, exact))
    }
}

/// The key a filter value is looked up by.
fn key_of(v: &Value) -> Key {
    match v {
        Value::Keyword(s) => Key::Str(s.clone()),
        // A payload number equals the integer when their f64 values are equal (see
        // `filter::eval::equals`): the image of that value.
        Value::Integer(i) => Key::Num(super::index::num_key(*i as f64)),
        Value::Bool(b) => Key::Num(u64::from(*b)),
    }
}

/// Whether an index of `kind` holds every payload value `value` can equal.
fn fits(kind: PayloadIndexKind, value: &Value) -> bool {
    matches!(
        (kind, value),
        (PayloadIndexKind::Keyword, Value::Keyword(_))
            | (PayloadIndexKind::Bool, Value::Bool(_))
            | (
                PayloadIndexKind::Integer | PayloadIndexKind::Float,
                Value::Integer(_)
            )
    )
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .copied()
        .filter(|id| large.binary_search(id).is_ok())
        .collect()
}

/// What `verify` checks of an index: that its file as of the last checkpoint holds exactly
/// the keys of the payloads as of that checkpoint (ids changed since are skipped). Returns
/// problems naming the index.
pub(crate) fn check_index(
    no: u32,
    state: &IndexState,
    table: &Table,
    runs: &BTreeMap<u64, Run>,
    changed: &dyn Fn(u64) -> bool,
) -> Vec<String> {
    let Some(base) = &state.base else {
        return Vec::new();
    };
    let mut held: FxHashMap<u64, Vec<Key>> = FxHashMap::default();
    let delta = state.delta.as_ref();
    for (key, id) in base.entries() {
        if !changed(id) && !delta.is_some_and(|d| d.shadows(id)) {
            held.entry(id).or_default().push(key);
        }
    }
    for (key, id) in delta.iter().flat_map(|d| d.entries()) {
        if !changed(id) {
            held.entry(id).or_default().push(key);
        }
    }
    let mut problems = Vec::new();
    let name = index_file_name(no);
    for l in table.iter() {
        if changed(l.id) {
            continue;
        }
        let Some(r) = runs.get(&l.run) else { continue };
        let Ok(payload) = run::read_record(r.bytes.as_slice(), l.offset, l.id, l.len, &r.path)
        else {
            continue;
        };
        let want = with_field_values(Some(payload), &state.field, |v| keys_of(state.kind, v));
        let mut got = held.remove(&l.id).unwrap_or_default();
        got.sort_unstable();
        if got != want && problems.len() < 16 {
            problems.push(format!(
                "payload index {name} on {:?}: id {} has {} keys in the index, its payload {}",
                state.field,
                l.id,
                got.len(),
                want.len()
            ));
        }
    }
    for id in held.keys().take(16usize.saturating_sub(problems.len())) {
        problems.push(format!(
            "payload index {name} on {:?}: id {id} is in the index without a payload",
            state.field
        ));
    }
    problems
}
