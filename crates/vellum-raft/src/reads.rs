//! Reads from a replicated database (docs/REPLICATION.md, "Reads").
//!
//! * [`ReadMode::Linearizable`]: the node confirms it still leads with a quorum of
//!   heartbeats (openraft's ReadIndex) and waits until its state machine applied the
//!   commit index read at that moment; the read then sees every write acknowledged before
//!   it began. Only the leader serves it; a node cut off from the majority refuses.
//! * [`ReadMode::Local`]: whatever this node has applied, at once, on any node. It may miss
//!   writes acknowledged elsewhere (a follower lags by its replication delay; a leader cut
//!   off from the majority keeps serving what it had until it learns of a newer term).

use vellum::Database;

use crate::error::{Error, Result};
use crate::state_machine::StateMachine;
use crate::types::Raft;

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Sees every write acknowledged before the read began (leader only).
    Linearizable,
    /// This node's applied state now (possibly stale).
    Local,
}

/// The database to read from under `mode`, once the mode's guarantee holds.
pub async fn database_for_read(raft: &Raft, sm: &StateMachine, mode: ReadMode) -> Result<Database> {
    if mode == ReadMode::Linearizable {
        raft.ensure_linearizable().await.map_err(|e| Error::Read {
            reason: e.to_string(),
        })?;
    }
    Ok(sm.database().clone())
}
