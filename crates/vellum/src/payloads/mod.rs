//! The payload store: payload bytes live in *runs*, files of checkpoint generations that are
//! mapped and never changed, found through a *location table* (id → run, offset, length).
//! The table is mapped too (28 bytes a point, checked at open); the heap holds only the
//! payloads written since the last checkpoint, so memory does not grow with payload bytes.
//!
//! Payloads written since the last checkpoint are appended to a buffer that is the next
//! run file as it is (`unsaved.rs`). A checkpoint writes that buffer, plus a run of the live
//! records of a bounded number of older runs it compacts (those mostly garbage, and the
//! smallest when there are more than `max_runs`); the other runs are carried over
//! unchanged by the checkpointer. Runs are [`Codec::Mapped`]: open checks their length, not
//! their bytes, and each record's own checksum is checked when it is read. Layout:
//! docs/format/payloads.md. Why this structure rather than an embedded store: the closing
//! note of issue 15 and docs/ARCHITECTURE.md.
//!
//! Concurrency: the store lives in the collection's `State` (its lock guards it). A
//! checkpoint takes the changes under the write lock ([`PayloadStore::handover`]), builds the
//! run and the table without any lock ([`PayloadHandover::build`]), and installs them under
//! the write lock again ([`PayloadStore::publish`]); reads in between see the taken changes
//! in `frozen`, so no read waits for the build.

mod checkpoint;
mod index;
mod indexes;
mod locations;
mod run;
mod unsaved;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use vellum_checkpoint::{FileBytes, LoadedGeneration, data_file_name};

use crate::error::{Error, Result};
use locations::Table;
use run::{RECORD_FIXED_BYTES, RUN_HEADER_BYTES};
use unsaved::Unsaved;

pub(crate) use checkpoint::{BuiltPayloads, PayloadHandover};
pub use index::{MAX_FIELD_BYTES, PayloadIndexKind};
use indexes::IndexState;
pub use indexes::PayloadIndexInfo;
pub(crate) use indexes::index_no_of;

/// Drives the payload files' decoders on arbitrary bytes (the `payload_files` fuzz target),
/// chosen by `which % 3`: a location table (0) or a payload index (2), each of which must
/// re-encode to the same bytes if it decodes, or a run (1: its header, then every record
/// walked through its checksum). Never a panic.
pub(crate) fn fuzz_decoders(which: u8, data: &[u8]) {
    let path = Path::new("fuzz");
    match which % 3 {
        0 => {
            if let Ok(table) = locations::decode(data, path) {
                assert_eq!(locations::encode(&table), data);
            }
        }
        1 => {
            let _ = run::check_header(data, 1, path);
            let _ = run::scan_records(data, path, |_, _, _| ());
        }
        _ => {
            if let Ok(index) = index::IndexFile::open(FileBytes::from(data.to_vec()), path)
                .and_then(|i| i.check_order(path).map(|()| i))
            {
                let shadow: Vec<u64> = index.shadow_ids().collect();
                let again = index::encode_with(
                    &index.field,
                    index.kind,
                    index.entries(),
                    index.is_delta().then_some(&shadow[..]),
                );
                assert_eq!(again, data);
            }
        }
    }
}

/// Bytes of the header both payload files start with.
pub(crate) const HEADER_BYTES: usize = 24;

/// Reads the header both payload files start with: `magic`, version u32 (must be
/// `version`), reserved u32 (zero), then a u64 field, which is returned. `what` names the
/// file kind in errors.
pub(crate) fn read_header(
    bytes: &[u8],
    magic: [u8; 8],
    version: u32,
    what: &str,
    path: &Path,
) -> Result<u64> {
    let bad = |reason: String| Error::BadDatabaseFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut r = vellum_fs::le::LeReader::new(bytes);
    let (Ok(found_magic), Ok(found_version), Ok(reserved), Ok(field)) =
        (r.take(8), r.u32(), r.u32(), r.u64())
    else {
        return Err(bad(format!(
            "a {what} is at least {HEADER_BYTES} bytes, this one {}",
            bytes.len()
        )));
    };
    if found_magic != magic {
        return Err(bad(format!("not a {what} (bad magic at offset 0)")));
    }
    if found_version != version {
        return Err(bad(format!(
            "{what} version {found_version} at offset 8 (this build reads {version})"
        )));
    }
    if reserved != 0 {
        return Err(bad(format!(
            "reserved field at offset 12 is {reserved}, not 0"
        )));
    }
    Ok(field)
}

/// The path of a loaded generation's file `name`: the generation that wrote it may be an
/// older one (carried over).
pub(crate) fn generation_file_path(
    dir: &Path,
    generation: &LoadedGeneration,
    name: &str,
) -> PathBuf {
    let origin = generation
        .manifest
        .file(name)
        .map_or(generation.generation(), |e| e.origin_generation);
    dir.join(data_file_name(origin, name))
}

/// Name of the location table in a checkpoint generation.
pub(crate) const LOCATIONS_FILE: &str = "payload-locations";
/// Prefix of a run's name in a checkpoint generation (then 16 hex digits: its number).
pub(crate) const RUN_PREFIX: &str = "payload-run-";
/// Live bytes of mostly-garbage runs one checkpoint may copy forward, on top of what
/// changed: compaction's share of a checkpoint is bounded.
pub(crate) const COMPACTION_BUDGET_BYTES: u64 = 64 << 20;

/// The name of run `seq` in a generation.
pub(crate) fn run_file_name(seq: u64) -> String {
    format!("{RUN_PREFIX}{seq:016x}")
}

/// The number of a run named `name`, if it is one.
pub(crate) fn run_seq_of(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(RUN_PREFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// One mapped run.
#[derive(Debug, Clone)]
struct Run {
    /// The file on disk (for errors).
    path: PathBuf,
    bytes: FileBytes,
    /// Bytes of records the location table points at.
    live_bytes: u64,
}

impl Run {
    fn record_bytes(&self) -> u64 {
        (self.bytes.as_slice().len().saturating_sub(RUN_HEADER_BYTES)) as u64
    }
}

/// Sizes `stats` and `inspect` report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PayloadStats {
    /// Points with a payload.
    pub(crate) payloads: u64,
    /// Runs in the current generation.
    pub(crate) runs: u64,
    /// Bytes of the runs' records.
    pub(crate) run_bytes: u64,
    /// Of those, bytes of records the location table points at.
    pub(crate) live_bytes: u64,
    /// Payload bytes changed since the last checkpoint, held in memory.
    pub(crate) unsaved_bytes: u64,
}

/// The payload store (see the module docs).
#[derive(Debug)]
pub(crate) struct PayloadStore {
    /// The checkpoint directory (run paths are in it).
    dir: PathBuf,
    runs: BTreeMap<u64, Run>,
    table: Table,
    /// Changes since the last handover: the next run, being appended to.
    recent: Unsaved,
    /// Changes a checkpoint in flight took: still read until it publishes.
    frozen: Option<Arc<Unsaved>>,
    /// Points with a payload.
    count: u64,
    next_seq: u64,
    /// Most runs a generation keeps (`DatabaseOptions::with_max_payload_runs`).
    max_runs: usize,
    /// Payload indexes, by number.
    indexes: BTreeMap<u32, IndexState>,
    /// Whether the current generation holds `table` as its location table (it can then be
    /// carried over by a checkpoint that changes no payload).
    table_saved: bool,
}

impl PayloadStore {
    /// An empty store over the checkpoint directory `dir`.
    pub(crate) fn empty(dir: &Path, max_runs: usize) -> Self {
        PayloadStore {
            dir: dir.to_path_buf(),
            runs: BTreeMap::new(),
            table: Table::empty(),
            recent: Unsaved::new(1),
            frozen: None,
            count: 0,
            next_seq: 2,
            table_saved: false,
            max_runs,
            indexes: BTreeMap::new(),
        }
    }

    /// The store a loaded generation holds: its runs mapped, its table checked against
    /// them. `legacy` is the payload map of a generation written before runs existed; it
    /// becomes unsaved changes, written as a run by the next checkpoint.
    pub(crate) fn open(
        dir: &Path,
        generation: &LoadedGeneration,
        legacy: Option<FxHashMap<u64, Vec<u8>>>,
        max_runs: usize,
    ) -> Result<Self> {
        let mut store = PayloadStore::empty(dir, max_runs);
        for (name, bytes) in &generation.files {
            let Some(seq) = run_seq_of(name) else {
                continue;
            };
            let path = generation_file_path(dir, generation, name);
            run::check_header(bytes.as_slice(), seq, &path)?;
            store.runs.insert(
                seq,
                Run {
                    path,
                    bytes: bytes.clone(),
                    live_bytes: 0,
                },
            );
            store.next_seq = store.next_seq.max(seq + 1);
        }
        if let Some(bytes) = generation.shared_file(LOCATIONS_FILE) {
            let path = generation_file_path(dir, generation, LOCATIONS_FILE);
            let table = Table::open(bytes.clone(), &path)?;
            // One pass: every entry inside a run of this generation, and each run's live
            // bytes. Runs are few: a sorted array of (number, length, live) is searched.
            let mut sizes: Vec<(u64, u64, u64)> = store
                .runs
                .iter()
                .map(|(&seq, r)| (seq, r.bytes.as_slice().len() as u64, 0))
                .collect();
            let mut last = usize::MAX;
            for (i, l) in table.iter().enumerate() {
                if sizes.get(last).is_none_or(|s| s.0 != l.run) {
                    last = sizes
                        .binary_search_by_key(&l.run, |s| s.0)
                        .unwrap_or(usize::MAX);
                }
                let end = l
                    .offset
                    .checked_add(RECORD_FIXED_BYTES as u64 + u64::from(l.len));
                let fits = match (sizes.get_mut(last), end) {
                    (Some(run), Some(end))
                        if l.offset >= RUN_HEADER_BYTES as u64 && end <= run.1 =>
                    {
                        run.2 += end - l.offset;
                        true
                    }
                    _ => false,
                };
                if !fits {
                    return Err(Error::BadDatabaseFile {
                        path,
                        reason: format!(
                            "entry {i} (id {}) points at {} bytes at offset {} of run {}, which \
                             this generation does not hold",
                            l.id, l.len, l.offset, l.run
                        ),
                    });
                }
            }
            for (seq, _, live) in sizes {
                if let Some(run) = store.runs.get_mut(&seq) {
                    run.live_bytes = live;
                }
            }
            store.count = table.len() as u64;
            store.table = table;
            store.table_saved = true;
        }
        // The buffer of changes gets a number no run of this generation has.
        store.recent = Unsaved::new(store.take_seq());
        store.open_indexes(dir, generation)?;
        for (id, payload) in legacy.into_iter().flatten() {
            store.set(id, Some(&payload));
        }
        Ok(store)
    }

    /// The payload of `id`, if it has one. A record that fails its checksum is an error
    /// naming the run file and offset.
    pub(crate) fn get(&self, id: u64) -> Result<Option<&[u8]>> {
        if let Some(change) = self.unsaved(id) {
            return Ok(change);
        }
        let Some(l) = self.table.find(id) else {
            return Ok(None);
        };
        let run = self.runs.get(&l.run).ok_or_else(|| Error::Inconsistent {
            reason: format!(
                "the payload of id {id} is in run {}, which is not open",
                l.run
            ),
        })?;
        run::read_record(run.bytes.as_slice(), l.offset, id, l.len, &run.path).map(Some)
    }

    /// A change not in any run yet: `Some(None)` if `id`'s payload was removed.
    fn unsaved(&self, id: u64) -> Option<Option<&[u8]>> {
        self.recent
            .get(id)
            .or_else(|| self.frozen.as_ref().and_then(|f| f.get(id)))
    }

    /// Whether `id` has a payload (without reading it).
    pub(crate) fn contains(&self, id: u64) -> bool {
        match self.unsaved(id) {
            Some(change) => change.is_some(),
            None => self.table.find(id).is_some(),
        }
    }

    /// Sets (`Some`) or removes (`None`) the payload of `id`.
    pub(crate) fn set(&mut self, id: u64, payload: Option<&[u8]>) {
        let had = self.contains(id);
        match (had, payload.is_some()) {
            (false, true) => self.count += 1,
            (true, false) => self.count -= 1,
            _ => {}
        }
        self.recent.put(id, payload);
        self.index_change(id, payload);
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Bytes of payload records written since the last checkpoint's handover.
    pub(crate) fn unsaved_bytes(&self) -> u64 {
        self.recent.record_bytes()
    }

    pub(crate) fn stats(&self) -> PayloadStats {
        PayloadStats {
            payloads: self.count,
            runs: self.runs.len() as u64,
            run_bytes: self.runs.values().map(Run::record_bytes).sum(),
            live_bytes: self.runs.values().map(|r| r.live_bytes).sum(),
            unsaved_bytes: self.recent.record_bytes()
                + self.frozen.as_ref().map_or(0, |f| f.record_bytes()),
        }
    }

    /// The checkpoint's first step, under the write lock: takes the changes so far (reads
    /// still see them until [`PayloadStore::publish`]) and starts a new buffer.
    pub(crate) fn handover(&mut self) -> Result<PayloadHandover> {
        if self.frozen.is_some() {
            // A failed checkpoint stops the collection before another can start.
            return Err(Error::Inconsistent {
                reason: "a payload checkpoint started while another's changes were unpublished"
                    .into(),
            });
        }
        let next = Unsaved::new(self.take_seq());
        let frozen = Arc::new(std::mem::replace(&mut self.recent, next));
        self.frozen = Some(Arc::clone(&frozen));
        Ok(PayloadHandover {
            frozen,
            table: self.table.clone(),
            runs: self.runs.clone(),
            compaction_seq: self.take_seq(),
            table_saved: self.table_saved,
            max_runs: self.max_runs,
            indexes: self.indexes.clone(),
        })
    }

    /// The checkpoint's last step, under the write lock, once the generation holding
    /// `built`'s files is committed as `generation`: the new runs (mapped by the caller, in
    /// the order of [`BuiltPayloads::new_runs`]) in, the compacted runs out, the table
    /// swapped. Returns what to drop once the lock is released (the taken changes).
    pub(crate) fn publish(
        &mut self,
        built: BuiltPayloads,
        mapped: Vec<FileBytes>,
        mapped_table: Option<FileBytes>,
        mapped_indexes: Vec<FileBytes>,
        generation: u64,
    ) -> Option<Arc<Unsaved>> {
        // Each index's files as the new generation holds them: the whole file, and a delta
        // only if the checkpoint left one.
        for built_index in &built.indexes {
            if let Some(state) = self.indexes.get_mut(&built_index.no) {
                state.delta = None;
                state.saved = true;
            }
        }
        let mut maps = mapped_indexes.into_iter();
        for built_index in &built.indexes {
            let Some(state) = self.indexes.get_mut(&built_index.no) else {
                continue;
            };
            let file = match (
                built_index.written,
                built_index.written.then(|| maps.next()),
            ) {
                (true, Some(Some(bytes))) => built_index.file.remapped(bytes),
                _ => built_index.file.clone(),
            };
            if built_index.is_delta {
                state.delta = Some(file);
            } else {
                state.base = Some(file);
            }
        }
        for seq in &built.dropped {
            self.runs.remove(seq);
        }
        for ((seq, name), bytes) in built.new_runs.iter().zip(mapped) {
            self.runs.insert(
                *seq,
                Run {
                    path: self.dir.join(data_file_name(generation, name)),
                    bytes,
                    live_bytes: 0,
                },
            );
        }
        for (seq, run) in &mut self.runs {
            run.live_bytes = built.live.get(seq).copied().unwrap_or(0);
        }
        self.table = match mapped_table {
            Some(bytes) => built.table.remapped(bytes),
            None => built.table,
        };
        self.table_saved = true;
        self.frozen.take()
    }

    /// Checks the order of the location table and of every index file (what open leaves
    /// to their checksums): run on a collection restored from a snapshot before it is
    /// published, since an archive may come from anywhere.
    pub(crate) fn check_files(&self) -> Result<()> {
        self.table.check_order(&self.dir.join(LOCATIONS_FILE))?;
        for (&no, state) in &self.indexes {
            let path = self.dir.join(indexes::index_file_name(no));
            for file in state.base.iter().chain(&state.delta) {
                file.check_order(&path)?;
            }
        }
        Ok(())
    }

    /// What `verify` checks, taken under the lock and checked without it (the runs are
    /// immutable and stay mapped while the copy lives).
    pub(crate) fn for_check(&self) -> PayloadCheck {
        let mut changed: rustc_hash::FxHashSet<u64> = self.recent.changed_ids().collect();
        if let Some(f) = &self.frozen {
            changed.extend(f.changed_ids());
        }
        PayloadCheck {
            runs: self.runs.clone(),
            table: self.table.clone(),
            indexes: self.indexes.clone(),
            changed,
        }
    }
}

/// The runs and table of one moment, for `verify`.
pub(crate) struct PayloadCheck {
    runs: BTreeMap<u64, Run>,
    table: Table,
    indexes: BTreeMap<u32, IndexState>,
    /// Ids changed since the last checkpoint (the files do not hold them yet).
    changed: rustc_hash::FxHashSet<u64>,
}

impl PayloadCheck {
    /// Every record of every run walked through its checksum, and every table entry read:
    /// problems naming the run file and offset (at most 16 from the table). Returns the
    /// records checked too.
    pub(crate) fn problems(&self) -> (u64, Vec<String>) {
        let mut problems = Vec::new();
        let mut records = 0;
        for run in self.runs.values() {
            match run::scan_records(run.bytes.as_slice(), &run.path, |_, _, _| ()) {
                Ok(n) => records += n,
                Err(e) => problems.push(e.to_string()),
            }
        }
        let mut bad_entries = 0;
        for l in self.table.iter() {
            let read = match self.runs.get(&l.run) {
                Some(run) => {
                    run::read_record(run.bytes.as_slice(), l.offset, l.id, l.len, &run.path)
                        .map(|_| ())
                }
                None => Err(Error::Inconsistent {
                    reason: format!(
                        "the payload of id {} is in run {}, which is missing",
                        l.id, l.run
                    ),
                }),
            };
            if let Err(e) = read {
                bad_entries += 1;
                if bad_entries <= 16 {
                    problems.push(e.to_string());
                }
            }
        }
        if let Err(e) = self.table.check_order(Path::new(LOCATIONS_FILE)) {
            problems.push(e.to_string());
        }
        for (&no, state) in &self.indexes {
            let path = Path::new("payload index").join(indexes::index_file_name(no));
            for file in state.base.iter().chain(&state.delta) {
                if let Err(e) = file.check_order(&path) {
                    problems.push(e.to_string());
                }
            }
            problems.extend(indexes::check_index(
                no,
                state,
                &self.table,
                &self.runs,
                &|id| self.changed.contains(&id),
            ));
        }
        (records, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_round_trip_and_others_are_not_runs() {
        assert_eq!(run_seq_of(&run_file_name(0xabc)), Some(0xabc));
        for bad in [
            "payload-run-",
            "payload-run-00000000000000AB",
            "payloads",
            "payload-run-1",
        ] {
            assert_eq!(run_seq_of(bad), None, "{bad}");
        }
    }
}
