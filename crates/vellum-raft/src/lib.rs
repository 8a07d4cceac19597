//! Replication for Vellum on [openraft](https://docs.rs/openraft/0.9.25) (docs/REPLICATION.md).
//!
//! * [`LogStore`]: openraft's `RaftLogStorage` on vellum-wal. The WAL's LSN is the Raft
//!   index; appends report durability through the WAL's flusher (`IOFlushed`), a conflict
//!   cuts the suffix durably, a purge drops a prefix and a snapshot install resets the log.
//!   The vote lives in a small state file ([`state_file`]).
//! * [`StateMachine`]: openraft's `RaftStateMachine` on a `vellum::Database`; snapshots
//!   are Vellum archives of every collection, streamed as chunks and verified before
//!   they replace anything.
//! * [`cluster`]: an in-process cluster (a router between nodes, each on its own file
//!   system) used by the tests and by `raft_bench`.
#![forbid(unsafe_code)]

mod apply;
pub mod cluster;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod inbox;
mod log_store;
mod outbox;
mod reads;
mod state_file;
pub mod state_machine;
mod types;

pub use apply::apply;
pub use error::{Error, Result};
pub use inbox::{MAX_MISSING_LISTED, Progress, SnapshotInbox};
pub use log_store::{LOG_DIR, LogStore, MAX_ENTRY_BYTES};
pub use outbox::{OutgoingArchive, outgoing};
pub use reads::{ReadMode, database_for_read};
pub use state_file::{RaftState, STATE_FILE, STATE_FILE_BYTES, STATE_MAGIC};
pub use state_machine::StateMachine;
pub use types::{
    CollectionSpec, Entry, LogId, NodeId, PointData, Raft, Refusal, Request, Response,
    SnapshotFiles, StorageError, TypeConfig,
};
