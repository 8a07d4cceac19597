//! Opening a log on the real file system by path, for users of this crate alone.

use std::path::Path;

use vellum_fs::RealFs;

use crate::error::Result;
use crate::options::WalOptions;
use crate::recovery::Recovery;
use crate::wal::Wal;

impl Wal {
    /// [`Wal::open`] on the operating system's file system: opens (creating if needed) the
    /// log in the directory `dir`, recovers it per `options.recovery_mode`, and returns it
    /// with the [`Recovery`] report. Nothing from `vellum-fs` is needed to call it.
    pub fn open_path(dir: impl AsRef<Path>, options: WalOptions) -> Result<(Wal, Recovery)> {
        Wal::open(RealFs::shared(), dir, options)
    }
}
