//! The Raft transport between server processes: openraft's messages as postcard over HTTP
//! (`POST /raft/...` on the receiving node, [`crate::raft_routes`]), snapshots as
//! `vellum-snapshot-format` chunks (final chunk first; the receiver answers with what is
//! still missing, which is sent again).

use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, Snapshot, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vellum_raft::{NodeId, Progress, TypeConfig};

/// Bytes of archive per snapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;
/// Passes over an archive's missing chunks before a transfer gives up (openraft sends the
/// snapshot again later; the receiver resumes from its staging log).
const SNAPSHOT_PASSES: usize = 8;
/// Longest a snapshot request may take.
const SNAPSHOT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Makes connections to other nodes (one reqwest client: pooled keep-alive connections).
#[derive(Debug, Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
}

impl HttpNetwork {
    /// A factory sending through `client`.
    pub fn new(client: reqwest::Client) -> HttpNetwork {
        HttpNetwork { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> HttpConnection {
        HttpConnection {
            client: self.client.clone(),
            target,
            base: format!("http://{}", node.addr),
        }
    }
}

/// A connection to one node.
#[derive(Debug)]
pub struct HttpConnection {
    client: reqwest::Client,
    target: NodeId,
    base: String,
}

/// Why a call failed: the node could not be reached, or it answered with an error.
#[derive(Debug)]
enum CallError {
    Unreachable(String),
    Failed(String),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, BasicNode, E> {
        match self {
            CallError::Unreachable(m) => {
                RPCError::Unreachable(Unreachable::new(&AnyError::error(m)))
            }
            CallError::Failed(m) => RPCError::Network(NetworkError::new(&AnyError::error(m))),
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig, Fatal<NodeId>> {
        match self {
            CallError::Unreachable(m) => {
                StreamingError::Unreachable(Unreachable::new(&AnyError::error(m)))
            }
            CallError::Failed(m) => StreamingError::Network(NetworkError::new(&AnyError::error(m))),
        }
    }
}

impl HttpConnection {
    /// POSTs `body` to `path`; the answer is a postcard `Result<T, String>`.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base);
        let target = self.target;
        let resp = self
            .client
            .post(&url)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Unreachable(format!("node {target} at {url}: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CallError::Unreachable(format!("node {target} at {url}: {e}")))?;
        if !status.is_success() {
            return Err(CallError::Failed(format!(
                "node {target} at {url}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        let r: Result<T, String> = postcard::from_bytes(&bytes)
            .map_err(|e| CallError::Failed(format!("node {target} at {url}: bad answer: {e}")))?;
        r.map_err(|e| CallError::Failed(format!("node {target} at {url}: {e}")))
    }

    async fn rpc<Req: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let body = postcard::to_allocvec(req)
            .map_err(|e| CallError::Failed(format!("encoding a message: {e}")))?;
        self.call(path, body, timeout).await
    }
}

impl RaftNetwork<TypeConfig> for HttpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/append", &rpc, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &rpc, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let id = snapshot.meta.snapshot_id.clone();
        let files = snapshot.snapshot.clone();
        let (manifest_json, _, archives) = tokio::task::spawn_blocking(move || {
            vellum_raft::outgoing(&files, SNAPSHOT_CHUNK_BYTES)
        })
        .await
        .map_err(|e| CallError::Failed(e.to_string()).into_streaming())?
        .map_err(|e| CallError::Failed(e.to_string()).into_streaming())?;
        for archive in &archives {
            let path = format!("/raft/snapshot/{id}/{}", archive.file);
            // The final chunk first: it tells the receiver the totals.
            let mut next = vec![archive.chunk_count() - 1];
            let mut passes = 0;
            while !next.is_empty() {
                passes += 1;
                if passes > SNAPSHOT_PASSES + 1 {
                    return Err(CallError::Failed(format!(
                        "snapshot {id}: {} still misses {} chunks after {SNAPSHOT_PASSES} passes",
                        archive.file,
                        next.len()
                    ))
                    .into_streaming());
                }
                let mut progress = None;
                for seq in next {
                    let chunk = archive
                        .chunk(seq)
                        .map_err(|e| CallError::Failed(e.to_string()).into_streaming())?;
                    let p: Progress = self
                        .call(&path, chunk.encode(), SNAPSHOT_REQUEST_TIMEOUT)
                        .await
                        .map_err(CallError::into_streaming)?;
                    progress = Some(p);
                }
                next = progress.map(|p| p.missing).unwrap_or_default();
            }
            let () = self
                .rpc(&format!("{path}/finish"), &(), SNAPSHOT_REQUEST_TIMEOUT)
                .await
                .map_err(CallError::into_streaming)?;
        }
        self.rpc(
            &format!("/raft/snapshot/{id}/install"),
            &(vote, snapshot.meta.clone(), manifest_json),
            SNAPSHOT_REQUEST_TIMEOUT,
        )
        .await
        .map_err(CallError::into_streaming)
    }
}
