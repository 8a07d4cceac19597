//! The payload store: payload bytes live in *runs*, files of checkpoint generations that are
//! mapped and never changed, found through a *location table* (id → run, offset, length).
//! Memory holds the table (32 bytes a point) and the payloads changed since the last
//! checkpoint; it does not grow with payload bytes.
//!
//! A checkpoint writes one new run holding the payloads changed since the previous one, plus
//! the live records of a bounded number of older runs it compacts (those mostly garbage,
//! and the smallest when there are more than [`MAX_RUNS`]); the other runs are carried over
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

mod locations;
mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use vellum_checkpoint::{Codec, FileBytes, FileSpec, LoadedGeneration, data_file_name};

use crate::error::{Error, Result};
pub(crate) use locations::Loc;
use run::{RECORD_FIXED_BYTES, RUN_HEADER_BYTES, RunWriter};

/// Drives the payload files' decoders on arbitrary bytes (the `payload_files` fuzz target):
/// a location table (`which` even; whatever decodes re-encodes to the same bytes) or a run
/// (odd; its header, then every record walked through its checksum). Never a panic.
pub(crate) fn fuzz_decoders(which: u8, data: &[u8]) {
    let path = Path::new("fuzz");
    if which.is_multiple_of(2) {
        if let Ok(table) = locations::decode(data, path) {
            assert_eq!(locations::encode(&table), data);
        }
    } else {
        let _ = run::check_header(data, 1, path);
        let _ = run::scan_records(data, path, |_, _, _| ());
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

/// Name of the location table in a checkpoint generation.
pub(crate) const LOCATIONS_FILE: &str = "payload-locations";
/// Prefix of a run's name in a checkpoint generation (then 16 hex digits: its number).
pub(crate) const RUN_PREFIX: &str = "payload-run-";
/// Most runs a generation holds before a checkpoint merges the smallest into its new run.
pub(crate) const MAX_RUNS: usize = 16;
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

/// Payload changes not in any run yet: `None` is a removal.
type Changes = FxHashMap<u64, Option<Vec<u8>>>;

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
    table: Arc<Vec<Loc>>,
    /// Changes since the last handover.
    recent: Changes,
    recent_bytes: u64,
    /// Changes a checkpoint in flight took: still read until it publishes.
    frozen: Option<Arc<Changes>>,
    /// Points with a payload.
    count: u64,
    next_seq: u64,
}

impl PayloadStore {
    /// An empty store over the checkpoint directory `dir`.
    pub(crate) fn empty(dir: &Path) -> Self {
        PayloadStore {
            dir: dir.to_path_buf(),
            runs: BTreeMap::new(),
            table: Arc::new(Vec::new()),
            recent: Changes::default(),
            recent_bytes: 0,
            frozen: None,
            count: 0,
            next_seq: 1,
        }
    }

    /// The store a loaded generation holds: its runs mapped, its table checked against
    /// them. `legacy` is the payload map of a generation written before runs existed; it
    /// becomes unsaved changes, written as a run by the next checkpoint.
    pub(crate) fn open(
        dir: &Path,
        generation: &LoadedGeneration,
        legacy: Option<FxHashMap<u64, Vec<u8>>>,
    ) -> Result<Self> {
        let mut store = PayloadStore::empty(dir);
        for (name, bytes) in &generation.files {
            let Some(seq) = run_seq_of(name) else {
                continue;
            };
            let origin = generation
                .manifest
                .file(name)
                .map_or(generation.generation(), |e| e.origin_generation);
            let path = dir.join(data_file_name(origin, name));
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
        if let Some(bytes) = generation.file(LOCATIONS_FILE) {
            let origin = generation
                .manifest
                .file(LOCATIONS_FILE)
                .map_or(generation.generation(), |e| e.origin_generation);
            let path = dir.join(data_file_name(origin, LOCATIONS_FILE));
            let table = locations::decode(bytes, &path)?;
            for (i, l) in table.iter().enumerate() {
                let fits = store.runs.get_mut(&l.run).and_then(|r| {
                    let end = l
                        .offset
                        .checked_add(RECORD_FIXED_BYTES as u64 + u64::from(l.len))?;
                    let ok = l.offset >= RUN_HEADER_BYTES as u64
                        && end <= r.bytes.as_slice().len() as u64;
                    ok.then(|| r.live_bytes += end - l.offset)
                });
                if fits.is_none() {
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
            store.count = table.len() as u64;
            store.table = Arc::new(table);
        }
        for (id, payload) in legacy.into_iter().flatten() {
            store.set(id, Some(payload));
        }
        Ok(store)
    }

    /// The payload of `id`, if it has one. A record that fails its checksum is an error
    /// naming the run file and offset.
    pub(crate) fn get(&self, id: u64) -> Result<Option<&[u8]>> {
        if let Some(change) = self.unsaved(id) {
            return Ok(change);
        }
        let Some(l) = locations::find(&self.table, id) else {
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
            .get(&id)
            .or_else(|| self.frozen.as_ref().and_then(|f| f.get(&id)))
            .map(Option::as_deref)
    }

    /// Whether `id` has a payload (without reading it).
    pub(crate) fn contains(&self, id: u64) -> bool {
        match self.unsaved(id) {
            Some(change) => change.is_some(),
            None => locations::find(&self.table, id).is_some(),
        }
    }

    /// Sets (`Some`) or removes (`None`) the payload of `id`.
    pub(crate) fn set(&mut self, id: u64, payload: Option<Vec<u8>>) {
        let had = self.contains(id);
        match (had, payload.is_some()) {
            (false, true) => self.count += 1,
            (true, false) => self.count -= 1,
            _ => {}
        }
        self.recent_bytes += payload.as_ref().map_or(0, |p| p.len() as u64);
        self.recent.insert(id, payload);
    }

    pub(crate) fn stats(&self) -> PayloadStats {
        PayloadStats {
            payloads: self.count,
            runs: self.runs.len() as u64,
            run_bytes: self.runs.values().map(Run::record_bytes).sum(),
            live_bytes: self.runs.values().map(|r| r.live_bytes).sum(),
            unsaved_bytes: self.recent_bytes,
        }
    }

    /// The checkpoint's first step, under the write lock: takes the changes so far (reads
    /// still see them until [`PayloadStore::publish`]).
    pub(crate) fn handover(&mut self) -> PayloadHandover {
        let mut taken = std::mem::take(&mut self.recent);
        self.recent_bytes = 0;
        // A checkpoint that failed left its changes here (the collection stops on a failed
        // checkpoint, but the store keeps every change readable and saves it next time).
        if let Some(previous) = self.frozen.take() {
            let mut merged = Arc::unwrap_or_clone(previous);
            merged.extend(taken);
            taken = merged;
        }
        let frozen = Arc::new(taken);
        self.frozen = Some(Arc::clone(&frozen));
        PayloadHandover {
            dir: self.dir.clone(),
            frozen,
            table: Arc::clone(&self.table),
            runs: self.runs.clone(),
            seq: self.next_seq,
        }
    }

    /// The checkpoint's last step, under the write lock, once the generation holding
    /// `built`'s files is committed as `generation`: the new run mapped, the table swapped.
    pub(crate) fn publish(
        &mut self,
        built: BuiltPayloads,
        new_run: Option<FileBytes>,
        generation: u64,
    ) {
        for seq in &built.dropped {
            self.runs.remove(seq);
        }
        if let (Some((seq, name, _)), Some(bytes)) = (built.run, new_run) {
            self.runs.insert(
                seq,
                Run {
                    path: self.dir.join(data_file_name(generation, &name)),
                    bytes,
                    live_bytes: 0,
                },
            );
            self.next_seq = self.next_seq.max(seq + 1);
        }
        for (seq, run) in &mut self.runs {
            run.live_bytes = built.live.get(seq).copied().unwrap_or(0);
        }
        self.table = Arc::new(built.table);
        self.frozen = None;
    }

    /// What `verify` checks, taken under the lock and checked without it (the runs are
    /// immutable and stay mapped while the copy lives).
    pub(crate) fn for_check(&self) -> PayloadCheck {
        PayloadCheck {
            runs: self.runs.clone(),
            table: Arc::clone(&self.table),
        }
    }
}

/// The runs and table of one moment, for `verify`.
pub(crate) struct PayloadCheck {
    runs: BTreeMap<u64, Run>,
    table: Arc<Vec<Loc>>,
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
        (records, problems)
    }
}

/// What a checkpoint took from the store, to build its files without the lock.
pub(crate) struct PayloadHandover {
    dir: PathBuf,
    frozen: Arc<Changes>,
    table: Arc<Vec<Loc>>,
    runs: BTreeMap<u64, Run>,
    seq: u64,
}

/// A checkpoint's payload files, built.
pub(crate) struct BuiltPayloads {
    /// The new run (number, name, bytes), if anything changed or was compacted.
    run: Option<(u64, String, Vec<u8>)>,
    table: Vec<Loc>,
    table_bytes: Vec<u8>,
    /// Runs carried over unchanged.
    carry: Vec<String>,
    /// Runs compacted into the new one.
    dropped: Vec<u64>,
    /// Live bytes per run after this checkpoint.
    live: FxHashMap<u64, u64>,
}

impl PayloadHandover {
    /// Builds the new run (the changes, then the live records of the runs compacted) and the
    /// new location table. Reads records through their checksums: a damaged record is an
    /// error, never copied forward.
    pub(crate) fn build(self) -> Result<BuiltPayloads> {
        let _ = &self.dir;
        let victims = self.choose_victims();
        let mut changed: Vec<(u64, Option<&[u8]>)> = self
            .frozen
            .iter()
            .map(|(&id, p)| (id, p.as_deref()))
            .collect();
        changed.sort_unstable_by_key(|&(id, _)| id);
        let change_bytes: usize = changed.iter().map(|(_, p)| p.map_or(0, <[u8]>::len)).sum();
        let victim_live: u64 = victims.iter().map(|s| self.runs[s].live_bytes).sum();
        let has_run = changed.iter().any(|(_, p)| p.is_some()) || victim_live > 0;
        let mut writer = has_run.then(|| {
            RunWriter::new(
                self.seq,
                change_bytes + changed.len() * RECORD_FIXED_BYTES + victim_live as usize,
            )
        });
        // Updates to the table, each id once, sorted: `None` removes.
        let mut updates: Vec<(u64, Option<Loc>)> = Vec::with_capacity(changed.len());
        for &(id, payload) in &changed {
            let loc = match (payload, writer.as_mut()) {
                (Some(p), Some(w)) => Some(Loc {
                    id,
                    run: self.seq,
                    offset: w.push(id, p),
                    len: p.len() as u32,
                }),
                _ => None,
            };
            updates.push((id, loc));
        }
        if let Some(w) = writer.as_mut() {
            let mut moved = Vec::new();
            for l in self.table.iter() {
                if !victims.contains(&l.run) || self.frozen.contains_key(&l.id) {
                    continue;
                }
                let run = &self.runs[&l.run];
                let payload =
                    run::read_record(run.bytes.as_slice(), l.offset, l.id, l.len, &run.path)?;
                moved.push((
                    l.id,
                    Some(Loc {
                        id: l.id,
                        run: self.seq,
                        offset: w.push(l.id, payload),
                        len: l.len,
                    }),
                ));
            }
            updates.extend(moved);
            updates.sort_unstable_by_key(|&(id, _)| id);
        }
        let table = merge(&self.table, &updates);
        let mut live: FxHashMap<u64, u64> = FxHashMap::default();
        for l in &table {
            *live.entry(l.run).or_default() += RECORD_FIXED_BYTES as u64 + u64::from(l.len);
        }
        let table_bytes = locations::encode(&table);
        let carry = self
            .runs
            .keys()
            .filter(|s| !victims.contains(s))
            .map(|&s| run_file_name(s))
            .collect();
        Ok(BuiltPayloads {
            run: writer.map(|w| {
                let _ = w.records();
                (self.seq, run_file_name(self.seq), w.into_bytes())
            }),
            table,
            table_bytes,
            carry,
            dropped: victims,
            live,
        })
    }

    /// The runs this checkpoint compacts: those whose live bytes are under half their
    /// records (most garbage first, up to [`COMPACTION_BUDGET_BYTES`] of live bytes copied),
    /// and, while more than [`MAX_RUNS`] would remain, the smallest.
    fn choose_victims(&self) -> Vec<u64> {
        let mut garbage: Vec<(u64, u64, u64)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.live_bytes * 2 < r.record_bytes())
            .map(|(&s, r)| (s, r.live_bytes, r.record_bytes()))
            .collect();
        // Lowest live share first.
        garbage.sort_by(|a, b| (a.1 * b.2).cmp(&(b.1 * a.2)).then(a.0.cmp(&b.0)));
        let mut victims = Vec::new();
        let mut copied = 0u64;
        for (seq, live, _) in garbage {
            if live == 0 || copied + live <= COMPACTION_BUDGET_BYTES {
                copied += live;
                victims.push(seq);
            }
        }
        let mut by_size: Vec<(u64, u64)> = self
            .runs
            .iter()
            .filter(|(s, _)| !victims.contains(s))
            .map(|(&s, r)| (r.record_bytes(), s))
            .collect();
        by_size.sort_unstable();
        let mut remaining = by_size.len() + 1;
        for (_, seq) in by_size {
            if remaining <= MAX_RUNS {
                break;
            }
            victims.push(seq);
            remaining -= 1;
        }
        victims.sort_unstable();
        victims
    }
}

impl BuiltPayloads {
    /// The files to commit: the new run (mapped, checked record by record) and the table.
    pub(crate) fn files(&self) -> Vec<FileSpec<'_>> {
        let mut files = vec![FileSpec {
            name: LOCATIONS_FILE,
            bytes: &self.table_bytes,
            codec: Codec::None,
        }];
        if let Some((_, name, bytes)) = &self.run {
            files.push(FileSpec {
                name,
                bytes,
                codec: Codec::Mapped,
            });
        }
        files
    }

    /// The runs the new generation carries over.
    pub(crate) fn carried(&self) -> impl Iterator<Item = &str> {
        self.carry.iter().map(String::as_str)
    }

    /// The new run's name, to map it once committed.
    pub(crate) fn new_run_name(&self) -> Option<&str> {
        self.run.as_ref().map(|(_, name, _)| name.as_str())
    }

    /// Drops the new run's bytes once written (it is mapped from its file instead).
    pub(crate) fn release_run_bytes(&mut self) {
        if let Some((_, _, bytes)) = &mut self.run {
            *bytes = Vec::new();
        }
        self.table_bytes = Vec::new();
    }
}

/// `table` with `updates` (sorted by id, each once) applied.
fn merge(table: &[Loc], updates: &[(u64, Option<Loc>)]) -> Vec<Loc> {
    let mut out = Vec::with_capacity(table.len() + updates.len());
    let mut rest = table;
    for &(id, loc) in updates {
        // Entries before this id are kept; one with this id is replaced (or removed).
        let before = rest.partition_point(|l| l.id < id);
        out.extend_from_slice(&rest[..before]);
        rest = &rest[before..];
        if rest.first().is_some_and(|l| l.id == id) {
            rest = &rest[1..];
        }
        out.extend(loc);
    }
    out.extend_from_slice(rest);
    out
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

    #[test]
    fn merging_updates_replaces_removes_and_inserts_in_order() {
        let at = |id, run| Loc {
            id,
            run,
            offset: 24,
            len: 1,
        };
        let table = vec![at(1, 1), at(3, 1), at(5, 1)];
        let updates = vec![
            (0, Some(at(0, 2))),
            (3, None),
            (5, Some(at(5, 2))),
            (9, Some(at(9, 2))),
        ];
        assert_eq!(
            merge(&table, &updates),
            vec![at(0, 2), at(1, 1), at(5, 2), at(9, 2)]
        );
    }
}
