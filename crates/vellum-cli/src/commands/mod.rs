//! One handler per subcommand, grouped by what they work on. Each takes the parsed arguments
//! and the global `--json` flag and returns the process exit code.

pub(crate) mod create;
pub(crate) mod index;
pub(crate) mod inspect;
pub(crate) mod points;
pub(crate) mod search;
pub(crate) mod snapshot;
pub(crate) mod wal;
