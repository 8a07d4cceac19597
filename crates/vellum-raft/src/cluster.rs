//! An in-process cluster: nodes on their own file systems (simulated, so a node can be
//! killed into a crash image, or real directories), a router between them that can cut
//! links and drop messages, snapshots streamed as archive chunks (docs/REPLICATION.md).
//! The tests and `raft_bench` drive it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, Snapshot, Vote};
use parking_lot::Mutex;
use vellum::DatabaseOptions;
use vellum_fs::{DynFs, SimFs, atomic_replace, create_dir_all_durable};
use vellum_snapshot_format::{ChunkReceiver, ImportOptions};

use crate::error::Result;
use crate::log_store::LogStore;
use crate::state_machine::{MANIFEST_FILE, StateMachine};
use crate::types::{NodeId, Raft, Request, Response, SnapshotFiles, TypeConfig};

/// Bytes per snapshot chunk sent between nodes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// Where a node keeps its files.
#[derive(Clone)]
pub enum Storage {
    /// A simulated file system (can be crashed into an image).
    Sim(SimFs),
    /// The real file system under this directory.
    Real(PathBuf),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Sim(_) => f.write_str("Storage::Sim"),
            Storage::Real(dir) => write!(f, "Storage::Real({})", dir.display()),
        }
    }
}

/// A running node.
#[derive(Clone)]
pub struct Node {
    /// Its Raft handle.
    pub raft: Raft,
    /// Its state machine (local reads).
    pub sm: StateMachine,
    /// Its log.
    pub log: LogStore,
    /// Its storage.
    pub storage: Storage,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("sm", &self.sm).finish()
    }
}

/// Counters of what the router did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouterStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped (cut link, loss, node down).
    pub dropped: u64,
    /// Snapshot chunks sent.
    pub snapshot_chunks: u64,
    /// Snapshot bytes sent.
    pub snapshot_bytes: u64,
    /// Snapshot chunks lost on the way (and sent again).
    pub snapshot_chunks_lost: u64,
    /// Time spent streaming snapshots and installing them on the receivers.
    pub snapshot_time: Duration,
}

#[derive(Default)]
struct RouterState {
    nodes: BTreeMap<NodeId, Node>,
    /// Directed links that drop every message.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Probability (0..1) that a message is dropped.
    loss: f64,
    /// Longest random delay before a message is delivered (reorders them).
    max_delay: Duration,
    rng: u64,
    stats: RouterStats,
    /// Bytes per snapshot chunk (0: [`SNAPSHOT_CHUNK_BYTES`]).
    chunk_bytes: usize,
}

/// The router between the nodes of a cluster. Lock: `state` is held only to look up or
/// change the table, never across a delivery.
#[derive(Clone, Default)]
pub struct Router {
    state: Arc<Mutex<RouterState>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish()
    }
}

impl Router {
    /// Cuts (or heals) both directions between `a` and `b`.
    pub fn set_link(&self, a: NodeId, b: NodeId, up: bool) {
        let mut st = self.state.lock();
        for link in [(a, b), (b, a)] {
            if up {
                st.cut.remove(&link);
            } else {
                st.cut.insert(link);
            }
        }
    }

    /// Cuts `node` off from every other node (or heals it).
    pub fn isolate(&self, node: NodeId, isolated: bool) {
        let others: Vec<NodeId> = self.state.lock().nodes.keys().copied().collect();
        for other in others {
            if other != node {
                self.set_link(node, other, !isolated);
            }
        }
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        self.state.lock().cut.clear();
    }

    /// Message loss and reordering: drop each with probability `loss`, delay each by up to
    /// `max_delay`.
    pub fn set_faults(&self, loss: f64, max_delay: Duration, seed: u64) {
        let mut st = self.state.lock();
        st.loss = loss;
        st.max_delay = max_delay;
        st.rng = seed | 1;
    }

    /// Bytes per snapshot chunk from now on (small chunks make loss and reordering bite
    /// in tests).
    pub fn set_snapshot_chunk_bytes(&self, bytes: usize) {
        self.state.lock().chunk_bytes = bytes;
    }

    /// What the router did so far.
    pub fn stats(&self) -> RouterStats {
        self.state.lock().stats
    }

    /// The next pseudo-random number (xorshift: deterministic per seed).
    fn next_random(st: &mut RouterState) -> u64 {
        st.rng ^= st.rng << 13;
        st.rng ^= st.rng >> 7;
        st.rng ^= st.rng << 17;
        st.rng
    }

    /// Whether a snapshot chunk is lost on the way (the message loss rate applies).
    fn chunk_lost(&self) -> bool {
        let mut st = self.state.lock();
        let r = (Router::next_random(&mut st) >> 11) as f64 / (1u64 << 53) as f64;
        let lost = r < st.loss;
        if lost {
            st.stats.snapshot_chunks_lost += 1;
        }
        lost
    }

    /// The target node if the message gets through, after its delay.
    async fn route(&self, from: NodeId, to: NodeId) -> Option<Node> {
        let (node, delay) = {
            let mut st = self.state.lock();
            let node = st.nodes.get(&to).cloned();
            Router::next_random(&mut st);
            let r = (st.rng >> 11) as f64 / (1u64 << 53) as f64;
            let lost = st.cut.contains(&(from, to)) || r < st.loss || node.is_none();
            if lost {
                st.stats.dropped += 1;
                return None;
            }
            st.stats.delivered += 1;
            let delay = st.max_delay.mul_f64((st.rng & 0xffff) as f64 / 65536.0);
            (node, delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        node
    }
}

/// One node's connection factory.
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    from: NodeId,
    router: Router,
}

impl RaftNetworkFactory<TypeConfig> for NodeNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            from: self.from,
            to: target,
            router: self.router.clone(),
        }
    }
}

/// A connection from one node to another through the router.
#[derive(Debug)]
pub struct Connection {
    from: NodeId,
    to: NodeId,
    router: Router,
}

fn unreachable_err<E: std::error::Error>(to: NodeId) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(format!(
        "node {to} is unreachable (link cut, message lost or node down)"
    ))))
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let Some(node) = self.router.route(self.from, self.to).await else {
            return Err(unreachable_err(self.to));
        };
        let resp = node
            .raft
            .append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))?;
        // The response crosses the link back.
        match self.router.route(self.to, self.from).await {
            Some(_) => Ok(resp),
            None => Err(unreachable_err(self.to)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let Some(node) = self.router.route(self.from, self.to).await else {
            return Err(unreachable_err(self.to));
        };
        let resp = node
            .raft
            .vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))?;
        match self.router.route(self.to, self.from).await {
            Some(_) => Ok(resp),
            None => Err(unreachable_err(self.to)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let Some(node) = self.router.route(self.from, self.to).await else {
            return Err(StreamingError::Unreachable(Unreachable::new(
                &AnyError::error(format!("node {} is unreachable", self.to)),
            )));
        };
        let net = |e: crate::Error| {
            StreamingError::Network(NetworkError::new(&AnyError::error(e.to_string())))
        };
        let started = std::time::Instant::now();
        let dir = stream_snapshot(&self.router, &snapshot, &node.sm).map_err(net)?;
        let local = Snapshot {
            meta: snapshot.meta.clone(),
            snapshot: Box::new(SnapshotFiles {
                fs: node.sm.fs().clone(),
                dir,
            }),
        };
        let installed = node
            .raft
            .install_full_snapshot(vote, local)
            .await
            .map_err(|e| StreamingError::RemoteError(RemoteError::new(self.to, e)));
        self.router.state.lock().stats.snapshot_time += started.elapsed();
        installed
    }
}

/// Passes over an archive's missing chunks before a transfer gives up (openraft sends the
/// snapshot again later, and the reception resumes from what the receiver logged).
const SNAPSHOT_PASSES: usize = 8;

/// Streams the archives of `snapshot` (on the sender's file system) into the receiving
/// node's snapshot directory through `ChunkReceiver`s, then its manifest. The final chunk
/// goes first (it tells the receiver the totals), the others in a shuffled order; chunks
/// the router loses are sent again from the receiver's list of missing ones. A reception
/// interrupted earlier resumes: the receiver reopens its staging log and only the chunks it
/// lacks are sent.
fn stream_snapshot(
    router: &Router,
    snapshot: &Snapshot<TypeConfig>,
    to: &StateMachine,
) -> Result<PathBuf> {
    let dest = to.snapshot_dir(&snapshot.meta.snapshot_id);
    let fs = to.fs().clone();
    create_dir_all_durable(fs.as_ref(), &dest)?;
    let chunk_bytes = match router.state.lock().chunk_bytes {
        0 => SNAPSHOT_CHUNK_BYTES,
        n => n,
    };
    let (manifest_json, _, archives) = crate::outbox::outgoing(&snapshot.snapshot, chunk_bytes)?;
    for archive in &archives {
        let chunks = archive.chunk_count();
        let staging = dest.join(format!("{}.staging", archive.file));
        let mut rx = ChunkReceiver::open(fs.clone(), &staging, ImportOptions::default())?;
        let send = |seq: u64, rx: &mut ChunkReceiver| -> Result<()> {
            let chunk = archive.chunk(seq)?;
            {
                let mut st = router.state.lock();
                st.stats.snapshot_chunks += 1;
                st.stats.snapshot_bytes += chunk.payload.len() as u64;
            }
            if router.chunk_lost() {
                return Ok(());
            }
            rx.receive(&chunk)?;
            Ok(())
        };
        let mut passes = 0;
        while rx.final_totals().is_none() {
            send(chunks - 1, &mut rx)?;
            passes += 1;
            if passes > SNAPSHOT_PASSES {
                return Err(snapshot_incomplete(&dest, &archive.file));
            }
        }
        let mut missing = rx.missing_seqs(usize::MAX);
        let mut passes = 0;
        while !missing.is_empty() {
            passes += 1;
            if passes > SNAPSHOT_PASSES {
                return Err(snapshot_incomplete(&dest, &archive.file));
            }
            // A shuffled order: the receiver places each chunk by its offset.
            let mut st = router.state.lock();
            for i in (1..missing.len()).rev() {
                let j = (Router::next_random(&mut st) % (i as u64 + 1)) as usize;
                missing.swap(i, j);
            }
            drop(st);
            for seq in &missing {
                send(*seq, &mut rx)?;
            }
            missing = rx.missing_seqs(usize::MAX);
        }
        rx.finish(&dest.join(&archive.file))?;
    }
    atomic_replace(fs.as_ref(), &dest.join(MANIFEST_FILE), &manifest_json)?;
    Ok(dest)
}

fn snapshot_incomplete(dir: &std::path::Path, file: &str) -> crate::Error {
    crate::Error::Snapshot {
        dir: dir.to_path_buf(),
        reason: format!(
            "{file}: chunks still missing after {SNAPSHOT_PASSES} passes (the transfer resumes \
             when the leader sends the snapshot again)"
        ),
    }
}

fn no_leader() -> crate::Error {
    crate::Error::Inconsistent {
        dir: PathBuf::new(),
        reason: "no leader".into(),
    }
}

/// Timing of the cluster's Raft (milliseconds).
pub fn default_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "vellum".into(),
        heartbeat_interval: 50,
        election_timeout_min: 200,
        election_timeout_max: 400,
        max_payload_entries: 64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(500),
        max_in_snapshot_log_to_keep: 50,
        purge_batch_size: 1,
        ..openraft::Config::default()
    }
}

/// An in-process cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The router (cut links, loss, delays).
    pub router: Router,
    config: Arc<openraft::Config>,
    options: DatabaseOptions,
}

impl Cluster {
    /// A cluster with this Raft configuration and these database options for every node.
    pub fn new(config: openraft::Config, options: DatabaseOptions) -> Result<Cluster> {
        let config = config.validate().map_err(|e| crate::Error::Inconsistent {
            dir: PathBuf::new(),
            reason: format!("raft config: {e}"),
        })?;
        Ok(Cluster {
            router: Router::default(),
            config: Arc::new(config),
            options,
        })
    }

    /// Starts node `id` on `storage` (restarting it if it ran before).
    pub async fn start(&self, id: NodeId, storage: Storage) -> Result<Node> {
        let (fs, root): (DynFs, PathBuf) = match &storage {
            Storage::Sim(fs) => (fs.shared(), PathBuf::from("/node")),
            Storage::Real(dir) => (vellum_fs::RealFs::shared(), dir.clone()),
        };
        let log = LogStore::open(fs.clone(), &root.join("raft"))?;
        let sm = StateMachine::open(fs, &root.join("sm"), self.options.clone())?;
        let network = NodeNetwork {
            from: id,
            router: self.router.clone(),
        };
        let raft = Raft::new(
            id,
            Arc::clone(&self.config),
            network,
            log.clone(),
            sm.clone(),
        )
        .await
        .map_err(|e| crate::Error::Inconsistent {
            dir: root.clone(),
            reason: format!("raft did not start: {e}"),
        })?;
        let node = Node {
            raft,
            sm,
            log,
            storage,
        };
        self.router.state.lock().nodes.insert(id, node.clone());
        Ok(node)
    }

    /// Makes `ids` the first membership (called once, on one node).
    pub async fn initialize(&self, on: NodeId, ids: &[NodeId]) -> Result<()> {
        let node = self.node(on).expect("the node is running");
        let members: BTreeMap<NodeId, BasicNode> = ids
            .iter()
            .map(|id| (*id, BasicNode::new(format!("in-process:{id}"))))
            .collect();
        node.raft
            .initialize(members)
            .await
            .map_err(|e| crate::Error::Inconsistent {
                dir: PathBuf::new(),
                reason: format!("initialize: {e}"),
            })
    }

    /// Adds node `id` (running) as a learner and waits until it has caught up.
    pub async fn add_learner(&self, id: NodeId) -> Result<()> {
        let leader = self
            .leader()
            .and_then(|l| self.node(l))
            .ok_or_else(no_leader)?;
        leader
            .raft
            .add_learner(id, BasicNode::new(format!("in-process:{id}")), true)
            .await
            .map_err(|e| crate::Error::Inconsistent {
                dir: PathBuf::new(),
                reason: format!("add learner {id}: {e}"),
            })?;
        Ok(())
    }

    /// Makes `voters` the voting members (learners among them are promoted; members not
    /// among them are removed).
    pub async fn change_voters(&self, voters: &[NodeId]) -> Result<()> {
        let leader = self
            .leader()
            .and_then(|l| self.node(l))
            .ok_or_else(no_leader)?;
        let set: BTreeSet<NodeId> = voters.iter().copied().collect();
        leader
            .raft
            .change_membership(set, false)
            .await
            .map_err(|e| crate::Error::Inconsistent {
                dir: PathBuf::new(),
                reason: format!("change membership to {voters:?}: {e}"),
            })?;
        Ok(())
    }

    /// The running node `id`.
    pub fn node(&self, id: NodeId) -> Option<Node> {
        self.router.state.lock().nodes.get(&id).cloned()
    }

    /// The running nodes' ids.
    pub fn running(&self) -> Vec<NodeId> {
        self.router.state.lock().nodes.keys().copied().collect()
    }

    /// Stops node `id` as a power cut would: its file system is cut off first, then its
    /// tasks stop. Returns its storage (for a crash image, [`SimFs::crash_images`]).
    pub async fn kill(&self, id: NodeId) -> Option<Storage> {
        let node = self.router.state.lock().nodes.remove(&id)?;
        if let Storage::Sim(fs) = &node.storage {
            fs.cut_power();
        }
        let _ = node.raft.shutdown().await;
        Some(node.storage)
    }

    /// The current leader as a running node sees it.
    pub fn leader(&self) -> Option<NodeId> {
        let nodes: Vec<Node> = self.router.state.lock().nodes.values().cloned().collect();
        // A leader cut off from the others still believes it leads: the one with the
        // highest term is the one the majority follows.
        nodes
            .iter()
            .map(|n| n.raft.metrics().borrow().clone())
            .filter(|m| m.current_leader == Some(m.id))
            .max_by_key(|m| m.current_term)
            .map(|m| m.id)
    }

    /// Writes `req` through the leader, retrying (new leader, lost message) until
    /// `timeout`. `Ok` means the cluster acknowledged it: committed and applied.
    pub async fn write(&self, req: Request, timeout: Duration) -> Option<Response> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Some(id) = self.leader()
                && let Some(leader) = self.node(id)
            {
                // A leader cut off from the majority never answers: the attempt is given up
                // as soon as another node leads with a higher term (checked every 10 ms). A
                // write retried so may be applied twice (an upsert again: the same state).
                let attempt = leader.raft.client_write(req.clone());
                tokio::pin!(attempt);
                loop {
                    tokio::select! {
                        r = &mut attempt => {
                            if let Ok(resp) = r {
                                return Some(resp.data);
                            }
                            break;
                        }
                        () = tokio::time::sleep(Duration::from_millis(10)) => {
                            if self.leader() != Some(id)
                                || tokio::time::Instant::now() >= deadline
                            {
                                break;
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Waits until every running node has applied up to the leader's last log index.
    pub async fn wait_converged(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let nodes: Vec<Node> = self.router.state.lock().nodes.values().cloned().collect();
            let metrics: Vec<_> = nodes
                .iter()
                .map(|n| n.raft.metrics().borrow().clone())
                .collect();
            let target = metrics.iter().filter_map(|m| m.last_log_index).max();
            if target.is_some()
                && metrics
                    .iter()
                    .all(|m| m.last_applied.map(|l| l.index) == target)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}
