//! A log that writes nothing: [`Wal::volatile`] hands out LSNs in memory for a caller whose
//! durable record is elsewhere (a Raft state machine: the Raft log holds every write, and
//! the database's checkpoints say how far it is applied).

use std::path::Path;

use vellum_fs::DynFs;

use crate::error::{Error, Result};
use crate::options::WalOptions;
use crate::recovery::{Recovery, list_segments, recover};
use crate::wal::{State, Wal};

impl Wal {
    /// A log that keeps nothing: appends get LSNs from `options.first_lsn` on and return at
    /// once, "durable" by definition (callbacks fire immediately); a sync does nothing;
    /// `iter_from` reads nothing (only the next LSN is accepted); no file is created.
    /// Whatever was appended is gone after a restart: the caller must be able to redo it.
    ///
    /// Refused if `dir` holds a log with records (they would be silently skipped): open it
    /// with [`Wal::open`] and checkpoint past them first.
    pub fn volatile(
        fs: DynFs,
        dir: impl AsRef<Path>,
        options: WalOptions,
    ) -> Result<(Wal, Recovery)> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        if fs.exists(&dir)? && !list_segments(fs.as_ref(), &dir)?.0.is_empty() {
            let found = recover(
                fs.as_ref(),
                &dir,
                options.recovery_mode,
                options.max_record_bytes,
            )?;
            if found.report.last_lsn >= found.report.first_lsn
                && found.report.last_lsn >= options.first_lsn
            {
                return Err(Error::InvalidOptions(format!(
                    "{} holds log records up to LSN {}: a volatile log would skip them (open \
                     it as a durable log and checkpoint past them first)",
                    dir.display(),
                    found.report.last_lsn
                )));
            }
        }
        let next = options.first_lsn.max(1);
        let state = State::new(Vec::new(), None, next);
        let report = Recovery {
            first_lsn: next,
            last_lsn: next - 1,
            ..Recovery::default()
        };
        Ok((
            Wal::start_with(fs, dir, options, state, false, true),
            report,
        ))
    }

    /// Whether this log writes nothing ([`Wal::volatile`]).
    pub fn is_volatile(&self) -> bool {
        self.shared.volatile
    }
}
