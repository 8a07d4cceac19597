//! The payload store's part of a checkpoint: what the handover takes (`PayloadHandover`),
//! the files built from it without the lock (`BuiltPayloads`: the location table, the
//! compacted run, the index files), and which runs compaction picks.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use vellum_checkpoint::{Codec, FileSpec};

use super::indexes::{BuiltIndex, IndexState, build_indexes};
use super::locations::{Loc, Table};
use super::run::{self, RECORD_FIXED_BYTES, RunWriter};
use super::unsaved::Unsaved;
use super::{COMPACTION_BUDGET_BYTES, LOCATIONS_FILE, Run, run_file_name};
use crate::error::Result;

/// What a checkpoint took from the store, to build its files without the lock.
pub(crate) struct PayloadHandover {
    pub(super) frozen: Arc<Unsaved>,
    pub(super) table: Table,
    pub(super) runs: BTreeMap<u64, Run>,
    /// The number of the run of compacted records, if one is written.
    pub(super) compaction_seq: u64,
    pub(super) table_saved: bool,
    pub(super) max_runs: usize,
    pub(super) indexes: BTreeMap<u32, IndexState>,
}

/// A checkpoint's payload files, built.
pub(crate) struct BuiltPayloads {
    /// The changes: written as a run if it holds any record.
    pub(super) frozen: Arc<Unsaved>,
    /// The live records of the runs compacted, as a run (number and bytes).
    pub(super) compacted: Option<(u64, Vec<u8>)>,
    pub(super) table: Table,
    /// Whether the table is written (not carried over from the current generation).
    pub(super) table_written: bool,
    /// Runs carried over unchanged.
    pub(super) carry: Vec<String>,
    /// Runs compacted.
    pub(super) dropped: Vec<u64>,
    /// Live bytes per run after this checkpoint.
    pub(super) live: FxHashMap<u64, u64>,
    /// The runs this checkpoint writes (number, name).
    pub(super) new_runs: Vec<(u64, String)>,
    /// Each payload index's file, written or carried over.
    pub(super) indexes: Vec<BuiltIndex>,
}

impl PayloadHandover {
    /// Builds the new location table and, when runs are compacted, the run of their live
    /// records (copied through their checksums: a damaged record fails the checkpoint, it is
    /// never copied forward). The changes' run is the buffer they were appended to.
    pub(crate) fn build(self) -> Result<BuiltPayloads> {
        let victims = self.choose_victims();
        let frozen = &self.frozen;
        // Updates to the table, each id once, sorted: `None` removes.
        let mut updates: Vec<(u64, Option<Loc>)> = frozen
            .changes()
            .map(|(id, at)| {
                let loc = at.map(|(offset, len)| Loc {
                    id,
                    run: frozen.seq(),
                    offset,
                    len,
                });
                (id, loc)
            })
            .collect();
        let victim_live: u64 = victims.iter().map(|s| self.runs[s].live_bytes).sum();
        let mut compacted = None;
        if victim_live > 0 {
            let mut w = RunWriter::new(self.compaction_seq, victim_live as usize);
            for l in self.table.iter() {
                if !victims.contains(&l.run) || frozen.is_changed(l.id) {
                    continue;
                }
                let run = &self.runs[&l.run];
                let payload =
                    run::read_record(run.bytes.as_slice(), l.offset, l.id, l.len, &run.path)?;
                let offset = w.push(l.id, payload);
                updates.push((
                    l.id,
                    Some(Loc {
                        id: l.id,
                        run: self.compaction_seq,
                        offset,
                        len: l.len,
                    }),
                ));
            }
            if w.records() > 0 {
                compacted = Some((self.compaction_seq, w.into_bytes()));
            }
        }
        updates.sort_unstable_by_key(|&(id, _)| id);
        let unchanged = updates.is_empty() && victims.is_empty() && self.table_saved;
        let table = if unchanged {
            self.table.clone()
        } else {
            self.table.merged(&updates)
        };
        let mut live: FxHashMap<u64, u64> = FxHashMap::default();
        for l in table.iter() {
            *live.entry(l.run).or_default() += RECORD_FIXED_BYTES as u64 + u64::from(l.len);
        }

        let mut carry: Vec<String> = self
            .runs
            .keys()
            .filter(|s| !victims.contains(s))
            .map(|&s| run_file_name(s))
            .collect();
        if unchanged {
            carry.push(LOCATIONS_FILE.to_owned());
        }
        let mut new_runs = Vec::with_capacity(2);
        if frozen.has_records() {
            new_runs.push((frozen.seq(), run_file_name(frozen.seq())));
        }
        if let Some((seq, _)) = &compacted {
            new_runs.push((*seq, run_file_name(*seq)));
        }
        let indexes = build_indexes(&self.indexes, frozen)?;
        Ok(BuiltPayloads {
            indexes,
            new_runs,
            frozen: self.frozen,
            compacted,
            table,
            table_written: !unchanged,
            carry,
            dropped: victims,
            live,
        })
    }

    /// The runs this checkpoint compacts: those whose live bytes are under half their
    /// records (most garbage first, up to [`COMPACTION_BUDGET_BYTES`] of live bytes copied),
    /// and, while more than `max_runs` would remain, the smallest.
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
        // The runs this checkpoint adds: the changes' run, and the compacted run if any
        // victim so far has live records (merging the smallest below makes one too).
        let changes_run = usize::from(self.frozen.has_records());
        let mut compacted_run = usize::from(copied > 0);
        let mut kept = by_size.len();
        for (_, seq) in by_size {
            if kept + changes_run + compacted_run <= self.max_runs {
                break;
            }
            victims.push(seq);
            kept -= 1;
            compacted_run = 1;
        }
        victims.sort_unstable();
        victims
    }
}

impl BuiltPayloads {
    /// The files to commit: the table, and the new runs (mapped, checked record by record).
    pub(crate) fn files(&self) -> Vec<FileSpec<'_>> {
        let mut files: Vec<FileSpec<'_>> = Vec::with_capacity(3);
        if self.table_written {
            files.push(FileSpec {
                name: LOCATIONS_FILE,
                bytes: self.table.bytes(),
                codec: Codec::None,
            });
        }
        for index in self.indexes.iter().filter(|i| i.written) {
            files.push(FileSpec {
                name: &index.name,
                bytes: index.file.bytes(),
                codec: Codec::None,
            });
        }
        for (seq, name) in &self.new_runs {
            let bytes = match &self.compacted {
                Some((compacted, bytes)) if compacted == seq => bytes.as_slice(),
                _ => self.frozen.run_bytes(),
            };
            files.push(FileSpec {
                name,
                bytes,
                codec: Codec::Mapped,
            });
        }
        files
    }

    /// The runs (and unchanged index files) the new generation carries over.
    pub(crate) fn carried(&self) -> impl Iterator<Item = &str> {
        self.carry.iter().map(String::as_str).chain(
            self.indexes
                .iter()
                .filter(|i| !i.written)
                .map(|i| i.name.as_str()),
        )
    }

    /// The index files written, to map them once committed.
    pub(crate) fn written_indexes(&self) -> Vec<&str> {
        self.indexes
            .iter()
            .filter(|i| i.written)
            .map(|i| i.name.as_str())
            .collect()
    }

    /// The new runs (number, name): the changes' run, then the compacted one, if written.
    pub(crate) fn new_runs(&self) -> &[(u64, String)] {
        &self.new_runs
    }

    /// Drops the compacted run's bytes once written (the run is mapped
    /// from its file instead).
    pub(crate) fn release_written(&mut self) {
        self.compacted = self.compacted.take().map(|(seq, _)| (seq, Vec::new()));
    }

    /// Whether the location table is written (to map it once committed).
    pub(crate) fn table_written(&self) -> bool {
        self.table_written
    }
}
