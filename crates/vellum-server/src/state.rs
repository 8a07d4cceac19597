//! What every handler shares: the node (a single database, or a Raft member), its metrics
//! and the HTTP client it forwards with. Writes go through [`AppState::submit`], reads
//! through [`AppState::database_for_read`], whichever the mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use vellum::Database;
use vellum_raft::{LogStore, NodeId, Raft, Request, Response, SnapshotInbox, StateMachine};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// How long a write waits to be acknowledged before the client is told it may not be.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A member of a Raft cluster.
pub struct ClusterNode {
    /// Its id.
    pub id: NodeId,
    /// Its Raft handle.
    pub raft: Raft,
    /// Its state machine (the database it applies to).
    pub sm: StateMachine,
    /// Its log.
    pub log: LogStore,
    /// Snapshots being received from the leader.
    pub inbox: SnapshotInbox,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode").field("id", &self.id).finish()
    }
}

/// The node behind the API.
#[derive(Debug)]
pub enum Backend {
    /// One database, no replication: a write is acknowledged once it is durable here.
    Single(Database),
    /// A Raft member: a write is acknowledged once a majority logged it and the leader
    /// applied it.
    Cluster(Box<ClusterNode>),
}

/// What the handlers share.
#[derive(Debug)]
pub struct Inner {
    /// The node.
    pub backend: Backend,
    /// Its counters.
    pub metrics: Metrics,
    /// The client for forwarding to the leader and for Raft messages.
    pub http: reqwest::Client,
    /// Where uploaded snapshot archives are staged before they are imported.
    pub uploads: std::path::PathBuf,
}

/// The handlers' state (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// How a read is served (`?consistency=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// This node's applied state, at once (may miss writes acknowledged elsewhere).
    #[default]
    Local,
    /// Sees every write acknowledged before the read began: the leader confirms it leads
    /// and names its commit index; this node waits until it applied that far.
    Linearizable,
}

/// The answer of `POST /raft/write` (the leader's side of a forwarded write).
#[derive(Debug, Serialize, Deserialize)]
pub enum WriteReply {
    /// Committed and applied.
    Done(Response),
    /// This node does not lead (any more): ask again.
    NotLeader,
    /// It failed for another reason.
    Failed(String),
}

/// Runs blocking database work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

impl AppState {
    /// Whether this is a single node (its state is the truth; a cluster member's may lag).
    pub fn is_single(&self) -> bool {
        matches!(self.backend, Backend::Single(_))
    }

    /// The database this node serves (its applied state, in cluster mode).
    pub fn database(&self) -> &Database {
        match &self.backend {
            Backend::Single(db) => db,
            Backend::Cluster(n) => n.sm.database(),
        }
    }

    /// Applies `req` (single node) or has the cluster commit it (through the leader,
    /// forwarded if this node does not lead). Returns the points touched once acknowledged.
    pub async fn submit(&self, req: Request) -> Result<u64, ApiError> {
        let started = Instant::now();
        let result = match &self.backend {
            Backend::Single(db) => {
                let db = db.clone();
                blocking(move || vellum_raft::apply(&db, req).map_err(ApiError::from)).await
            }
            Backend::Cluster(node) => node.submit(req, &self.http).await,
        };
        let result = match result {
            Ok(Response::Applied { points }) => Ok(points),
            Ok(Response::Refused { kind, reason }) => Err(ApiError::refused(kind, reason)),
            Err(e) => Err(e),
        };
        let m = &self.metrics;
        match &result {
            Ok(points) => {
                m.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                m.points_written
                    .fetch_add(*points, std::sync::atomic::Ordering::Relaxed);
                m.write_latency.observe(started.elapsed());
            }
            Err(_) => {
                m.write_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        result
    }

    /// The database to read from once `consistency` holds.
    pub async fn database_for_read(&self, consistency: Consistency) -> Result<Database, ApiError> {
        match &self.backend {
            Backend::Single(db) => Ok(db.clone()),
            Backend::Cluster(node) => {
                if consistency == Consistency::Linearizable {
                    node.read_barrier(&self.http).await?;
                }
                Ok(node.sm.database().clone())
            }
        }
    }
}

impl ClusterNode {
    /// The address of node `id` in the current membership.
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        // Read under the metrics' borrow: no copy of the whole metrics per forwarded call.
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// The leader this node knows of, with its address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let id = self.raft.metrics().borrow().current_leader?;
        Some((id, self.address_of(id)?))
    }

    async fn submit(&self, req: Request, http: &reqwest::Client) -> Result<Response, ApiError> {
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let not_acked = || {
            ApiError::unavailable(format!(
                "the write was not acknowledged within {} s (no leader, or no majority): it \
                 may still be applied; repeating it is safe",
                WRITE_TIMEOUT.as_secs()
            ))
        };
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.raft.client_write(req.clone()));
            match attempt.await {
                Err(_) => return Err(not_acked()),
                Ok(Ok(r)) => return Ok(r.data),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    if let Some(node) = f.leader_node
                        && f.leader_id != Some(self.id)
                    {
                        match forward_write(http, &node.addr, &req, deadline).await {
                            Some(WriteReply::Done(r)) => return Ok(r),
                            Some(WriteReply::Failed(e)) => return Err(ApiError::unavailable(e)),
                            Some(WriteReply::NotLeader) | None => {}
                        }
                    }
                }
                Ok(Err(e)) => return Err(ApiError::unavailable(e.to_string())),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(not_acked());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Commits `req` here if this node leads (the leader's side of a forwarded write).
    pub async fn write_as_leader(&self, req: Request) -> WriteReply {
        match tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(req)).await {
            Err(_) => WriteReply::Failed(format!(
                "not acknowledged within {} s",
                WRITE_TIMEOUT.as_secs()
            )),
            Ok(Ok(r)) => WriteReply::Done(r.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                WriteReply::NotLeader
            }
            Ok(Err(e)) => WriteReply::Failed(e.to_string()),
        }
    }

    /// Waits until this node applied everything acknowledged before the call (ReadIndex,
    /// asked of the leader when this node does not lead).
    async fn read_barrier(&self, http: &reqwest::Client) -> Result<(), ApiError> {
        let index = match self.raft.ensure_linearizable().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let Some((leader, addr)) = self.leader().filter(|(l, _)| *l != self.id) else {
                    return Err(ApiError::unavailable(format!(
                        "a linearizable read needs a leader: {e}"
                    )));
                };
                read_index(http, &addr)
                    .await
                    .map_err(|e| ApiError::unavailable(format!("leader {leader}: {e}")))?
            }
        };
        self.raft
            .wait(Some(WRITE_TIMEOUT))
            .applied_index_at_least(index, "linearizable read")
            .await
            .map_err(|e| ApiError::unavailable(format!("not caught up with the leader: {e}")))?;
        Ok(())
    }
}

/// Sends `req` to the leader at `addr`; `None` if it could not be reached.
async fn forward_write(
    http: &reqwest::Client,
    addr: &str,
    req: &Request,
    deadline: tokio::time::Instant,
) -> Option<WriteReply> {
    let body = postcard::to_allocvec(req).ok()?;
    let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
    let resp = http
        .post(format!("http://{addr}/raft/write"))
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    postcard::from_bytes(&resp.bytes().await.ok()?).ok()
}

/// Asks the leader at `addr` for its read index.
async fn read_index(http: &reqwest::Client, addr: &str) -> Result<Option<u64>, String> {
    let resp = http
        .get(format!("http://{addr}/raft/read_index"))
        .timeout(WRITE_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    let r: Result<Option<u64>, String> = postcard::from_bytes(&bytes).map_err(|e| e.to_string())?;
    r
}
