//! The Raft log on vellum-wal (docs/REPLICATION.md): the entry at Raft index `i` is the
//! WAL record at LSN `i + 1` (openraft counts from 0, the WAL from 1), one frame per entry; the vote, the purged id and the last known committed id live in the
//! state file beside it.
//!
//! Order of writes: `save_vote` publishes the state file before it returns, and openraft
//! appends the entries that depend on a vote only after that; an append returns once its
//! entries are readable and openraft learns they are durable from the WAL's flusher
//! (`IOFlushed`), so the leader pipelines. A purge publishes the purged id before it drops
//! anything: a crash between the two leaves a log that still holds what the state file
//! says is purged (hidden), or, after a purge past the end, a log an open resets.
//!
//! Recent entries are also kept in memory ([`CACHED_ENTRY_BYTES`] at most, the newest):
//! replication reads what was just appended, and the WAL would otherwise find each entry by
//! scanning its segment from the start.
//!
//! Locks: `Inner::meta` guards the state file's contents and the last log id. It is held
//! while the state file is replaced (a vote or a purge, rare), never while entries are
//! read. `Inner::cache` guards the recent entries; it is held to copy entries in or out,
//! never with `meta`. The WAL has its own lock (vellum-wal).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, RaftLogReader, StorageIOError, Vote};
use parking_lot::Mutex;
use vellum_fs::{DynFs, create_dir_all_durable};
use vellum_wal::{SyncPolicy, Wal, WalOptions};

use crate::error::{Error, Result};
use crate::state_file::RaftState;
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

/// The log's directory inside the Raft directory.
pub const LOG_DIR: &str = "log";
/// The most bytes (encoded) of recent entries kept in memory for replication to read.
pub const CACHED_ENTRY_BYTES: usize = 32 << 20;

/// The newest entries, contiguous by index, with their encoded sizes.
#[derive(Default)]
struct Cache {
    entries: std::collections::VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Cache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn push(&mut self, entry: Entry, bytes: usize) {
        if self
            .entries
            .back()
            .is_some_and(|(e, _)| e.log_id.index + 1 != entry.log_id.index)
        {
            self.clear();
        }
        self.entries.push_back((entry, bytes));
        self.bytes += bytes;
        while self.bytes > CACHED_ENTRY_BYTES {
            let Some((_, b)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= b;
        }
    }

    /// Drops entries from index `from` on.
    fn cut_from(&mut self, from: u64) {
        while self
            .entries
            .back()
            .is_some_and(|(e, _)| e.log_id.index >= from)
        {
            let (_, b) = self.entries.pop_back().expect("checked");
            self.bytes -= b;
        }
    }

    /// Drops entries up to index `upto`.
    fn purge_upto(&mut self, upto: u64) {
        while self
            .entries
            .front()
            .is_some_and(|(e, _)| e.log_id.index <= upto)
        {
            let (_, b) = self.entries.pop_front().expect("checked");
            self.bytes -= b;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// The largest entry the log takes (a batch of points), in bytes.
pub const MAX_ENTRY_BYTES: u64 = 32 << 20;

struct Meta {
    state: RaftState,
    /// The id of the last entry in the log (`None`: the log holds none past the purge).
    last: Option<LogId>,
}

struct Inner {
    fs: DynFs,
    dir: PathBuf,
    wal: Wal,
    meta: Mutex<Meta>,
    cache: Mutex<Cache>,
}

/// The Raft log of one node; clones share it (openraft reads entries through clones
/// while it appends through the original).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// The WAL LSN of Raft index `index`.
fn lsn_of(index: u64) -> u64 {
    index + 1
}

fn decode(lsn: u64, data: &[u8]) -> Result<Entry> {
    let index = lsn - 1;
    let entry: Entry = postcard::from_bytes(data).map_err(|e| Error::BadEntry {
        index,
        reason: e.to_string(),
    })?;
    if entry.log_id.index != index {
        return Err(Error::BadEntry {
            index,
            reason: format!("the entry says it is index {}", entry.log_id.index),
        });
    }
    Ok(entry)
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir` on `fs`, finishing a purge a crash
    /// interrupted.
    pub fn open(fs: DynFs, dir: &Path) -> Result<LogStore> {
        create_dir_all_durable(fs.as_ref(), dir)?;
        let state = RaftState::load(fs.as_ref(), dir)?;
        // The LSN after the purged entries.
        let next = state.purged.map_or(1, |p| lsn_of(p.index) + 1);
        let options = WalOptions {
            first_lsn: next,
            sync_policy: SyncPolicy::Always,
            max_record_bytes: MAX_ENTRY_BYTES,
            ..WalOptions::default()
        };
        let (wal, _) = Wal::open(fs.clone(), dir.join(LOG_DIR), options)?;
        let stats = wal.stats();
        if stats.last_lsn + 1 < next {
            // The state file says more is purged than the log ever held: a purge past the
            // end whose reset a crash cut short.
            wal.reset(next)?;
        } else if stats.first_lsn > next {
            return Err(Error::Inconsistent {
                dir: dir.to_path_buf(),
                reason: format!(
                    "entries {next} to {} are missing: the log starts at {} and only {} is \
                     purged",
                    stats.first_lsn - 1,
                    stats.first_lsn,
                    next - 1
                ),
            });
        }
        let last_lsn = wal.stats().last_lsn;
        let last = if last_lsn >= next {
            let rec = wal
                .iter_from(last_lsn)?
                .next()
                .transpose()?
                .ok_or_else(|| Error::Inconsistent {
                    dir: dir.to_path_buf(),
                    reason: format!("entry {last_lsn} is not readable"),
                })?;
            Some(decode(last_lsn, &rec.data)?.log_id)
        } else {
            None
        };
        Ok(LogStore {
            inner: Arc::new(Inner {
                fs,
                dir: dir.to_path_buf(),
                wal,
                meta: Mutex::new(Meta { state, last }),
                cache: Mutex::new(Cache::default()),
            }),
        })
    }

    /// The vote, purged and committed ids as last published.
    pub fn state(&self) -> RaftState {
        self.inner.meta.lock().state
    }

    /// The underlying WAL's counters.
    pub fn wal_stats(&self) -> vellum_wal::WalStats {
        self.inner.wal.stats()
    }

    /// Entries of Raft indexes `start..end` the log holds.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>> {
        let stats = self.inner.wal.stats();
        let start = lsn_of(start).max(self.held_from_in(&stats));
        let end = lsn_of(end.min(u64::MAX - 1)).min(stats.last_lsn + 1);
        if start >= end {
            return Ok(Vec::new());
        }
        {
            let cache = self.inner.cache.lock();
            if let Some(first) = cache.first_index()
                && lsn_of(first) <= start
            {
                let skip = (start - lsn_of(first)) as usize;
                let out: Vec<Entry> = cache
                    .entries
                    .iter()
                    .skip(skip)
                    .take((end - start) as usize)
                    .map(|(e, _)| e.clone())
                    .collect();
                if out.len() as u64 == end - start {
                    return Ok(out);
                }
            }
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        for rec in self.inner.wal.iter_from(start)? {
            let rec = rec?;
            if rec.lsn >= end {
                break;
            }
            out.push(decode(rec.lsn, &rec.data)?);
        }
        Ok(out)
    }

    /// The first LSN holding an entry that is not purged.
    fn held_from(&self) -> u64 {
        self.held_from_in(&self.inner.wal.stats())
    }

    /// [`LogStore::held_from`] for WAL counters the caller already read.
    fn held_from_in(&self, stats: &vellum_wal::WalStats) -> u64 {
        let purged = self
            .inner
            .meta
            .lock()
            .state
            .purged
            .map_or(0, |p| lsn_of(p.index));
        stats.first_lsn.max(purged + 1)
    }

    fn entry_id(&self, index: u64) -> Result<Option<LogId>> {
        Ok(self.entries(index, index + 1)?.first().map(|e| e.log_id))
    }

    /// Publishes a changed state file, then makes it the state in memory. The file is
    /// written without `meta` held (readers of the purged id do not wait for its syncs);
    /// only openraft's storage task publishes (`&mut self` methods, one at a time), so no
    /// two changes race.
    fn publish(&self, change: impl FnOnce(&mut RaftState)) -> Result<()> {
        let mut next = self.inner.meta.lock().state;
        change(&mut next);
        next.store(self.inner.fs.as_ref(), &self.inner.dir)?;
        self.inner.meta.lock().state = next;
        Ok(())
    }
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn range_of(range: impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_of(range);
        self.entries(start, end).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let meta = self.inner.meta.lock();
        let purged = meta.state.purged;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: meta.last.max(purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote = *vote;
        self.publish(|s| s.vote = Some(vote))
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e.to_string())).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.inner.meta.lock().state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Kept in memory and published with the next vote or purge: the file's value is a
        // lower bound, which is all openraft needs from it.
        self.inner.meta.lock().state.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.meta.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut first = None;
        let mut last = None;
        let mut records = Vec::new();
        let mut kept = Vec::new();
        for e in entries {
            first.get_or_insert(e.log_id.index);
            last = Some(e.log_id);
            records.push(postcard::to_allocvec(&e).map_err(write_err)?);
            kept.push(e);
        }
        let (Some(first), Some(last)) = (first, last) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let first = lsn_of(first);
        let last_lsn = self.inner.wal.stats().last_lsn;
        if last_lsn < self.held_from() {
            // The log holds no entry: it starts where the first one goes.
            if first != last_lsn + 1 {
                self.inner.wal.reset(first).map_err(write_err)?;
            }
        } else if first <= last_lsn {
            // Entries that replace ones already there (openraft's contract lets an append
            // overwrite): the old suffix is cut first, durably.
            self.inner
                .wal
                .truncate_after(first - 1)
                .map_err(write_err)?;
        }
        let done = Box::new(move |r: vellum_wal::Result<u64>| {
            callback.log_io_completed(r.map(drop).map_err(std::io::Error::other));
        });
        self.inner
            .wal
            .append_at_then(first, &records, done)
            .map_err(write_err)?;
        {
            let mut cache = self.inner.cache.lock();
            cache.cut_from(kept[0].log_id.index);
            for (e, r) in kept.into_iter().zip(&records) {
                cache.push(e, r.len());
            }
        }
        self.inner.meta.lock().last = Some(last);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Cut from `log_id` on: keep LSNs up to that of the entry before it.
        let keep_to = lsn_of(log_id.index) - 1;
        let keep_to = keep_to.max(self.held_from() - 1);
        self.inner.cache.lock().cut_from(log_id.index);
        self.inner.wal.truncate_after(keep_to).map_err(write_err)?;
        let prev = if log_id.index > 0 {
            self.entry_id(log_id.index - 1).map_err(read_err)?
        } else {
            None
        };
        self.inner.meta.lock().last = prev;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.publish(|s| s.purged = Some(log_id))
            .map_err(write_err)?;
        let purged = lsn_of(log_id.index);
        self.inner.cache.lock().purge_upto(log_id.index);
        let last = self.inner.wal.stats().last_lsn;
        if purged >= last {
            self.inner.wal.reset(purged + 1).map_err(write_err)?;
            self.inner.meta.lock().last = None;
        } else {
            self.inner
                .wal
                .truncate_before(purged + 1)
                .map_err(write_err)?;
        }
        Ok(())
    }
}
