//! The log: open and repair, append with group commit, sync, truncate, stats.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use vellum_fs::{DynFs, FailStop, File, create_dir_all_durable, tmp_path};

use crate::append::Shape;
use crate::error::{Error, Result};
use crate::flusher::Pending;
use crate::format::{
    FORMAT_VERSION, FRAME_END_MARK, SEGMENT_HEADER_BYTES, SegmentHeader, fresh_salt, segment_name,
};
use crate::iter::WalIter;
use crate::options::{RecoveryMode, SyncPolicy, WalOptions};
use crate::recovery::{Recovery, SegMeta, SegmentInfo, recover};

/// Counters describing the log now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalStats {
    /// Segment files in use.
    pub segments: usize,
    /// Bytes of headers and frames in them (not counting preallocated space).
    pub log_bytes: u64,
    /// The first LSN the log holds (the next one when empty).
    pub first_lsn: u64,
    /// The last LSN appended (0 when none).
    pub last_lsn: u64,
    /// Every LSN up to this one is durable.
    pub synced_lsn: u64,
    /// `sync_data` calls made for appends and barriers since open (group commit makes this
    /// smaller than the number of appends).
    pub syncs: u64,
    /// Time those `sync_data` calls took, in total.
    pub sync_time_total: std::time::Duration,
    /// The longest of them.
    pub sync_time_max: std::time::Duration,
    /// Bytes of frames written since open.
    pub appended_bytes: u64,
}

/// A segmented write-ahead log. Share it between threads by reference or `Arc`: every
/// method takes `&self`.
///
/// ```
/// use std::path::Path;
/// use vellum_fs::SimFs;
/// use vellum_wal::{Wal, WalOptions};
///
/// let fs = SimFs::new();
/// let (wal, _) = Wal::open(fs.shared(), Path::new("/db/wal"), WalOptions::default()).unwrap();
/// let lsn = wal.append(b"hello").unwrap();
/// let lsns = wal.append_batch(&[b"a".as_slice(), b"b"]).unwrap();
/// assert_eq!((lsn, lsns), (1, 2..=3));
/// drop(wal);
/// let (wal, recovery) = Wal::open(fs.shared(), Path::new("/db/wal"), WalOptions::default()).unwrap();
/// assert_eq!(recovery.last_lsn, 3);
/// let records: Vec<_> = wal.iter_from(2).unwrap().map(|r| r.unwrap().data).collect();
/// assert_eq!(records, vec![b"a".to_vec(), b"b".to_vec()]);
/// ```
#[derive(Debug)]
pub struct Wal {
    pub(crate) shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
    /// The thread that syncs for appends with a durability callback, started by the first
    /// one ([`Wal::append_at_then`]).
    pub(crate) flusher: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) fs: DynFs,
    pub(crate) dir: PathBuf,
    pub(crate) opts: WalOptions,
    /// Lock order: `state` is the only lock an operation holds while it works; `stop`
    /// (the interval syncer's sleep) is never held with it.
    pub(crate) state: Mutex<State>,
    /// Signalled (with `state`) when the synced LSN moves, a sync ends, or durability
    /// callbacks were taken off the queue.
    pub(crate) synced: Condvar,
    /// Signalled (with `state`) when a durability callback is queued or the log closes.
    pub(crate) flush_cv: Condvar,
    /// Set when the log is dropped: the flusher drains its queue and ends.
    pub(crate) closing: AtomicBool,
    pub(crate) fail: FailStop,
    read_only: bool,
    /// Nothing is written: LSNs are handed out in memory only ([`Wal::volatile`]).
    pub(crate) volatile: bool,
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

#[derive(Debug)]
pub(crate) struct State {
    /// Every segment in LSN order; the last one is active (appended to).
    pub(crate) segments: Vec<SegMeta>,
    /// The active segment's file (shared so a sync can run without the lock).
    pub(crate) active: Option<Arc<dyn File>>,
    /// The LSN the next record gets.
    pub(crate) next_lsn: u64,
    /// Every LSN up to this one is durable (lowered by [`Wal::truncate_after`], so frames
    /// written after a cut never vouch for LSNs that are gone).
    pub(crate) synced_lsn: u64,
    /// A group-commit leader is syncing now.
    pub(crate) sync_in_progress: bool,
    /// Durability callbacks of appends not yet synced, in LSN order (bounded by
    /// [`crate::flusher::MAX_PENDING_CALLBACKS`]).
    pub(crate) pending: VecDeque<Pending>,
    /// Reused encoding buffer.
    pub(crate) buf: Vec<u8>,
    syncs: u64,
    sync_time_total: Duration,
    sync_time_max: Duration,
    pub(crate) appended_bytes: u64,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, recovers it per
    /// `options.recovery_mode`, repairs a torn tail durably, and returns the log ready to
    /// append with a report of what recovery found.
    pub fn open(fs: DynFs, dir: impl AsRef<Path>, options: WalOptions) -> Result<(Wal, Recovery)> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let read_only = options.recovery_mode == RecoveryMode::Salvage;
        if read_only && !fs.exists(&dir)? {
            let state = State::new(Vec::new(), None, 1);
            return Ok((
                Wal::start(fs, dir, options, state, true),
                Recovery {
                    first_lsn: 1,
                    ..Recovery::default()
                },
            ));
        }
        if !read_only {
            create_dir_all_durable(fs.as_ref(), &dir)?;
        }
        if let Some((segment, offset)) = crate::raft_ops::pending_cut(fs.as_ref(), &dir)?
            && !read_only
        {
            crate::raft_ops::finish_cut(fs.as_ref(), &dir, segment, offset, &options)?;
        }
        if let Some(next_lsn) = crate::raft_ops::pending_reset(fs.as_ref(), &dir)? {
            if read_only {
                // An interrupted reset: the log is empty from `next_lsn` on.
                let state = State::new(Vec::new(), None, next_lsn);
                let report = Recovery {
                    first_lsn: next_lsn,
                    last_lsn: next_lsn - 1,
                    ..Recovery::default()
                };
                return Ok((Wal::start(fs, dir, options, state, true), report));
            }
            crate::raft_ops::finish_reset(fs.as_ref(), &dir, next_lsn, &options)?;
        }
        let mut rec = recover(
            fs.as_ref(),
            &dir,
            options.recovery_mode,
            options.max_record_bytes,
        )?;
        if read_only {
            let state = State::new(rec.segments, None, rec.next_lsn);
            return Ok((Wal::start(fs, dir, options, state, true), rec.report));
        }
        // Leftovers of an interrupted segment creation: never referenced, safe to drop. Not
        // worth a directory sync: if a crash brings one back, the next open removes it.
        for tmp in &rec.report.removed_tmp_files {
            fs.remove_file(tmp)?;
        }
        let active: Arc<dyn File> = match rec.segments.last() {
            Some(last) => {
                let file: Arc<dyn File> = Arc::from(fs.open(&last.path)?);
                if rec.report.tail_cut.is_none() {
                    restore_last_padding(file.as_ref(), last)?;
                }
                if let Some(cut) = &rec.report.tail_cut {
                    // Regression R1 (docs/PROPERTIES.md): cut the torn tail physically and
                    // durably before any append, so old bytes after it can never pass for
                    // frames that follow new ones.
                    file.set_len(cut.offset)?;
                    if options.preallocate {
                        file.allocate(options.allocation_for(cut.offset))?;
                    }
                    fs.fail_point(crate::fail_points::TAIL_CUT_BEFORE_SYNC)?;
                }
                // Also without a cut: after a process crash (no reboot) the recovered tail
                // may still sit unsynced in the page cache. The log is about to claim it
                // durable (every new frame's synced LSN says so), so make it true first.
                file.sync_data()?;
                file
            }
            None => {
                // An empty log starts at `options.first_lsn` (1 unless the caller continues
                // an LSN sequence, as a restored database does).
                rec.next_lsn = rec.next_lsn.max(options.first_lsn);
                rec.report.last_lsn = rec.next_lsn - 1;
                let (meta, file) = create_segment(fs.as_ref(), &dir, rec.next_lsn, &options)?;
                rec.report.first_lsn = meta.first_lsn;
                rec.report.segments.push(SegmentInfo {
                    path: meta.path.clone(),
                    first_lsn: meta.first_lsn,
                    last_lsn: meta.first_lsn - 1,
                    valid_bytes: meta.end_offset,
                });
                rec.segments.push(meta);
                file
            }
        };
        if let Some(last) = rec.segments.last_mut() {
            last.file_len = active.len()?;
        }
        let state = State::new(rec.segments, Some(active), rec.next_lsn);
        Ok((Wal::start(fs, dir, options, state, false), rec.report))
    }

    pub(crate) fn start(
        fs: DynFs,
        dir: PathBuf,
        opts: WalOptions,
        state: State,
        read_only: bool,
    ) -> Wal {
        Wal::start_with(fs, dir, opts, state, read_only, false)
    }

    pub(crate) fn start_with(
        fs: DynFs,
        dir: PathBuf,
        opts: WalOptions,
        state: State,
        read_only: bool,
        volatile: bool,
    ) -> Wal {
        let shared = Arc::new(Shared {
            fs,
            dir,
            opts,
            state: Mutex::new(state),
            synced: Condvar::new(),
            flush_cv: Condvar::new(),
            closing: AtomicBool::new(false),
            fail: FailStop::new(),
            read_only,
            volatile,
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        let syncer = match (opts.sync_policy, read_only || volatile) {
            (SyncPolicy::Interval(every), false) => {
                let s = Arc::clone(&shared);
                Some(std::thread::spawn(move || s.interval_syncer(every)))
            }
            _ => None,
        };
        Wal {
            shared,
            syncer,
            flusher: Mutex::new(None),
        }
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.shared.opts
    }

    /// Appends one record and returns its LSN. Under `SyncPolicy::Always` it returns only
    /// once the record is durable.
    pub fn append(&self, record: &[u8]) -> Result<u64> {
        self.shared
            .append(&[record], Shape::OneFrame { batch: false }, None, None)
            .map(|r| *r.start())
    }

    /// Appends records as one all-or-nothing batch (one frame) and returns their LSNs.
    pub fn append_batch<B: AsRef<[u8]>>(&self, records: &[B]) -> Result<RangeInclusive<u64>> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.shared
            .append(records, Shape::OneFrame { batch: true }, None, None)
    }

    /// A barrier: when it returns, every record appended before the call is durable.
    /// Returns the synced LSN.
    pub fn sync(&self) -> Result<u64> {
        self.shared.writable()?;
        let guard = self.shared.state.lock();
        let target = guard.next_lsn - 1;
        self.shared.wait_synced(guard, target)?;
        Ok(target)
    }

    /// Reads records in LSN order from `lsn` to the last one appended when this is called,
    /// across segments, checking every frame's checksum.
    pub fn iter_from(&self, lsn: u64) -> Result<WalIter> {
        let st = self.shared.state.lock();
        let first = st.segments.first().map_or(st.next_lsn, |s| s.first_lsn);
        let last = st.next_lsn - 1;
        if lsn < first || lsn > last + 1 {
            return Err(Error::LsnNotAvailable {
                requested: lsn,
                first,
                last,
            });
        }
        Ok(WalIter::new(
            Arc::clone(&self.shared.fs),
            st.segments.clone(),
            lsn,
            last,
            self.shared.opts.max_record_bytes,
            self.shared.opts.recovery_mode == RecoveryMode::Salvage,
        ))
    }

    /// Deletes whole segments whose records all have LSNs below `lsn` (for example the LSN
    /// a checkpoint covers), durably, oldest first. The active segment, and any segment
    /// holding an LSN at or above `lsn`, is kept. Returns how many segments were removed.
    ///
    /// The active segment keeps the length it grew to; when every record in it is below
    /// `lsn` and it has grown past one `preallocate_step_bytes`, the log first rotates to a
    /// fresh (small) segment so the old one can go too: after a checkpoint that covers
    /// everything (say, at the end of a compaction), the log's space follows what it still
    /// has to hold.
    pub fn truncate_before(&self, lsn: u64) -> Result<usize> {
        self.shared.writable()?;
        let mut st = self.shared.state.lock();
        while let Some(active) = st.segments.last()
            && st.next_lsn <= lsn
            && active.end_offset > SEGMENT_HEADER_BYTES as u64
            && active.file_len > self.shared.opts.preallocate_step_bytes
        {
            if !self.shared.await_group_sync(&mut st)? {
                self.shared.rotate(&mut st)?;
            }
        }
        let mut removed = 0;
        while st.segments.len() > 1 && st.segments[1].first_lsn <= lsn {
            let path = st.segments[0].path.clone();
            let fs = &self.shared.fs;
            self.shared.fail.run(|| fs.remove_file(&path))?;
            // One removal unsynced at a time: a crash leaves a suffix, never a hole.
            self.shared.fail.run(|| fs.sync_dir(&self.shared.dir))?;
            st.segments.remove(0);
            removed += 1;
        }
        Ok(removed)
    }

    /// Counters describing the log now.
    pub fn stats(&self) -> WalStats {
        let st = self.shared.state.lock();
        WalStats {
            segments: st.segments.len(),
            log_bytes: st.segments.iter().map(|s| s.end_offset).sum(),
            first_lsn: st.segments.first().map_or(st.next_lsn, |s| s.first_lsn),
            last_lsn: st.next_lsn - 1,
            synced_lsn: st.synced_lsn,
            syncs: st.syncs,
            sync_time_total: st.sync_time_total,
            sync_time_max: st.sync_time_max,
            appended_bytes: st.appended_bytes,
        }
    }

    /// Whether an I/O error stopped the log (it must be reopened).
    pub fn is_poisoned(&self) -> bool {
        self.shared.fail.is_poisoned()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shared
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        {
            // Taken so the flusher cannot miss the wake-up between its check and its wait.
            let _st = self.shared.state.lock();
            self.shared.flush_cv.notify_all();
        }
        if let Some(t) = self.flusher.get_mut().take() {
            let _ = t.join();
        }
        *self.shared.stop.lock() = true;
        self.shared.stop_cv.notify_all();
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
    }
}

impl State {
    pub(crate) fn new(
        segments: Vec<SegMeta>,
        active: Option<Arc<dyn File>>,
        next_lsn: u64,
    ) -> State {
        State {
            segments,
            active,
            next_lsn,
            // Everything recovered is durable: it was read back from a durable image, and a
            // cut tail was synced before open returned.
            synced_lsn: next_lsn - 1,
            sync_in_progress: false,
            pending: VecDeque::new(),
            buf: Vec::new(),
            syncs: 0,
            sync_time_total: Duration::ZERO,
            sync_time_max: Duration::ZERO,
            appended_bytes: 0,
        }
    }
}

impl State {
    /// Counts one successful `sync_data` that took `took`.
    fn count_sync(&mut self, took: Duration) {
        self.syncs += 1;
        self.sync_time_total += took;
        self.sync_time_max = self.sync_time_max.max(took);
    }
}

impl Shared {
    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly {
                dir: self.dir.clone(),
            });
        }
        self.fail.check()?;
        Ok(())
    }

    /// Group commit: returns once `target` is durable. The first waiter that finds no sync
    /// running becomes the leader: it syncs the active file without the lock (appends go on
    /// meanwhile) and publishes the LSN that was written when its sync started.
    pub(crate) fn wait_synced(&self, mut st: MutexGuard<'_, State>, target: u64) -> Result<()> {
        loop {
            // A cut (`truncate_after`, `reset`) may lower the log's end below a target read
            // before it: nothing past the end is left to wait for.
            if st.synced_lsn >= target.min(st.next_lsn - 1) {
                return Ok(());
            }
            self.fail.check()?;
            if st.sync_in_progress {
                self.synced.wait(&mut st);
                continue;
            }
            st.sync_in_progress = true;
            let upto = st.next_lsn - 1;
            let file = Arc::clone(
                st.active
                    .as_ref()
                    .expect("a writable log has an active file"),
            );
            let (result, took) = MutexGuard::unlocked(&mut st, || {
                let result = self.fs.fail_point(crate::fail_points::BEFORE_GROUP_SYNC);
                let started = Instant::now();
                let synced = result.and_then(|()| file.sync_data());
                let took = started.elapsed();
                let result = self
                    .fs
                    .fail_point(crate::fail_points::AFTER_GROUP_SYNC)
                    .and(synced);
                (result, took)
            });
            st.sync_in_progress = false;
            let outcome = self.fail.guard(result);
            if outcome.is_ok() {
                st.count_sync(took);
                st.synced_lsn = st.synced_lsn.max(upto);
            }
            self.synced.notify_all();
            outcome?;
        }
    }

    /// Before a rotation: if a group sync is running, waits for its outcome and returns
    /// `true` (the caller looks at the log again); `false` if none was running. The sync
    /// that seals a segment must not overtake a failed group sync: the failure dropped the
    /// dirty pages (as Linux does after `EIO`), so a later successful sync proves nothing,
    /// and the sealed segment would claim frames the disk never got.
    pub(crate) fn await_group_sync(&self, st: &mut MutexGuard<'_, State>) -> Result<bool> {
        if !st.sync_in_progress {
            return Ok(false);
        }
        self.fail.guard(
            self.fs
                .fail_point(crate::fail_points::ROTATION_AWAITS_GROUP_SYNC),
        )?;
        while st.sync_in_progress {
            self.synced.wait(st);
        }
        self.fail.check()?;
        Ok(true)
    }

    /// Seals the active segment (synced whole, so a segment with a successor is complete)
    /// and starts the next one. The caller made sure no group sync is running
    /// ([`Shared::await_group_sync`]).
    pub(crate) fn rotate(&self, st: &mut State) -> Result<()> {
        debug_assert!(!st.sync_in_progress, "a rotation overtaking a group sync");
        let file = Arc::clone(
            st.active
                .as_ref()
                .expect("a writable log has an active file"),
        );
        let started = Instant::now();
        self.fail.guard(file.sync_data())?;
        st.count_sync(started.elapsed());
        st.synced_lsn = st.next_lsn - 1;
        self.synced.notify_all();
        let (meta, file) = self.fail.guard(create_segment(
            self.fs.as_ref(),
            &self.dir,
            st.next_lsn,
            &self.opts,
        ))?;
        st.segments.push(meta);
        st.active = Some(file);
        Ok(())
    }

    fn interval_syncer(&self, every: std::time::Duration) {
        let mut stop = self.stop.lock();
        loop {
            if *stop {
                return;
            }
            self.stop_cv.wait_for(&mut stop, every);
            if *stop || self.fail.is_poisoned() {
                return;
            }
            let st = self.state.lock();
            let target = st.next_lsn - 1;
            // An error poisons the log; appenders see it on their next call.
            if self.wait_synced(st, target).is_err() {
                return;
            }
        }
    }
}

/// Puts back what a crash may have lost of the last valid frame's padding: the bytes past
/// the end of the file (so the next frame starts aligned) and, in a version-2 segment, the
/// end mark (so later damage to the frame is still told from a tear). Made durable by the
/// sync that follows at open.
fn restore_last_padding(file: &dyn File, last: &SegMeta) -> vellum_fs::Result<()> {
    if last.end_offset <= SEGMENT_HEADER_BYTES as u64 {
        return Ok(());
    }
    if last.file_len < last.end_offset {
        file.set_len(last.end_offset)?;
    }
    if last.version >= FORMAT_VERSION {
        let mut mark = [0u8];
        file.read_at(&mut mark, last.end_offset - 1)?;
        if mark[0] != FRAME_END_MARK {
            file.write_at(&[FRAME_END_MARK], last.end_offset - 1)?;
        }
    }
    Ok(())
}

/// Creates the segment starting at `first_lsn`: header into a temporary file, preallocate,
/// `sync_data`, rename into place, `sync_dir`. A segment name that exists after a crash
/// therefore always has a durable, valid header.
pub(crate) fn create_segment(
    fs: &dyn vellum_fs::Fs,
    dir: &Path,
    first_lsn: u64,
    opts: &WalOptions,
) -> vellum_fs::Result<(SegMeta, Arc<dyn File>)> {
    let salt = fresh_salt();
    let path = dir.join(segment_name(first_lsn));
    let tmp = tmp_path(&path);
    let file = fs.create(&tmp)?;
    let header = SegmentHeader {
        first_lsn,
        salt,
        version: FORMAT_VERSION,
    };
    file.write_at(&header.encode(), 0)?;
    let first_len = opts.allocation_for(SEGMENT_HEADER_BYTES as u64 + 1);
    if opts.preallocate {
        file.allocate(first_len)?;
    }
    file.sync_data()?;
    drop(file);
    fs.fail_point(crate::fail_points::SEGMENT_BEFORE_RENAME)?;
    fs.rename(&tmp, &path)?;
    fs.sync_dir(dir)?;
    let file: Arc<dyn File> = Arc::from(fs.open(&path)?);
    Ok((
        SegMeta {
            path,
            first_lsn,
            salt,
            version: FORMAT_VERSION,
            end_offset: SEGMENT_HEADER_BYTES as u64,
            end_lsn: first_lsn,
            file_len: if opts.preallocate {
                first_len
            } else {
                SEGMENT_HEADER_BYTES as u64
            },
            skips: Vec::new(),
            marks: Vec::new(),
        },
        file,
    ))
}
