//! Opening a node: a single database, or a Raft member (its log, its state machine, the
//! HTTP transport, and the first membership when this node is the one to make it), and
//! closing it on a graceful shutdown.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vellum::{Database, DatabaseOptions};
use vellum_raft::{LogStore, NodeId, Raft, SnapshotInbox, StateMachine};

use crate::metrics::Metrics;
use crate::network::HttpNetwork;
use crate::state::{AppState, Backend, ClusterNode, Inner};

/// What a node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Its data directory.
    pub data: PathBuf,
    /// Database options (sync policy, cache sizes).
    pub options: DatabaseOptions,
    /// `None`: a single node without Raft. `Some(id)`: a cluster member.
    pub node_id: Option<NodeId>,
    /// The first membership (`id`, `host:port`), including this node. The member with the
    /// lowest id initializes the cluster on its first start; a node started without peers
    /// waits to be added (`PUT /cluster/nodes/{id}` on a member).
    pub peers: Vec<(NodeId, String)>,
    /// Raft entries between two snapshots.
    pub snapshot_every_entries: u64,
    /// Milliseconds between the leader's heartbeats ([`raft_config`]).
    pub heartbeat_ms: u64,
}

impl NodeConfig {
    /// A single node on `data`.
    pub fn single(data: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data: data.into(),
            options: DatabaseOptions::default(),
            node_id: None,
            peers: Vec::new(),
            snapshot_every_entries: 5_000,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
        }
    }
}

/// The data directory's subdirectory where snapshot uploads are staged.
pub const UPLOADS_DIR: &str = "uploads";

/// The default heartbeat interval, in milliseconds.
pub const DEFAULT_HEARTBEAT_MS: u64 = 200;

/// Raft timing across processes: a heartbeat every `heartbeat_ms`, an election after 4 to 8
/// heartbeats without one. openraft 0.9 also uses the heartbeat interval as the timeout of
/// each replication message: a message (at most 4 entries) must be received, logged and
/// synced within it, or it is sent again. 200 ms leaves room for batches of megabytes on a
/// loaded machine; a shorter interval fails over faster and suits small batches.
pub fn raft_config(snapshot_every_entries: u64, heartbeat_ms: u64) -> openraft::Config {
    let heartbeat_ms = heartbeat_ms.max(10);
    openraft::Config {
        cluster_name: "vellum".into(),
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: 4 * heartbeat_ms,
        election_timeout_max: 8 * heartbeat_ms,
        // At most 4 entries per message: a message must be handled within one heartbeat
        // (above), and with entries of at most vellum_raft::MAX_ENTRY_BYTES it fits
        // raft_routes::MAX_RAFT_BODY_BYTES.
        max_payload_entries: 4,
        install_snapshot_timeout: 60_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every_entries),
        max_in_snapshot_log_to_keep: 100,
        purge_batch_size: 1,
        ..openraft::Config::default()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the node `config` describes.
pub async fn open(config: NodeConfig) -> Result<AppState, BoxError> {
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let backend = match config.node_id {
        None => {
            let data = config.data.clone();
            let options = config.options.clone();
            let db = tokio::task::spawn_blocking(move || Database::open(&data, options)).await??;
            Backend::Single(db)
        }
        Some(id) => {
            let fs = vellum_fs::RealFs::shared();
            let (log, sm) = {
                let (fs, data, options) = (fs.clone(), config.data.clone(), config.options.clone());
                tokio::task::spawn_blocking(move || -> Result<_, vellum_raft::Error> {
                    let log = LogStore::open(fs.clone(), &data.join("raft"))?;
                    let sm = StateMachine::open(fs, &data.join("sm"), options)?;
                    Ok((log, sm))
                })
                .await??
            };
            let raft_config = Arc::new(
                raft_config(config.snapshot_every_entries, config.heartbeat_ms).validate()?,
            );
            let raft = Raft::new(
                id,
                raft_config,
                HttpNetwork::new(http.clone()),
                log.clone(),
                sm.clone(),
            )
            .await?;
            let first = config.peers.iter().map(|(p, _)| *p).min();
            if first == Some(id) && !raft.is_initialized().await? {
                let members: BTreeMap<NodeId, openraft::BasicNode> = config
                    .peers
                    .iter()
                    .map(|(p, addr)| (*p, openraft::BasicNode::new(addr.clone())))
                    .collect();
                tracing::info!(node = id, ?members, "initializing the cluster");
                raft.initialize(members).await?;
            }
            let inbox = SnapshotInbox::new(sm.clone());
            Backend::Cluster(Box::new(ClusterNode {
                id,
                raft,
                sm,
                log,
                inbox,
            }))
        }
    };
    Ok(AppState(Arc::new(Inner {
        backend,
        metrics: Metrics::default(),
        http,
        uploads: config.data.join(UPLOADS_DIR),
    })))
}

/// Closes the node after the server stopped: Raft stops, then every collection is
/// checkpointed (a restart replays nothing).
pub async fn close(state: &AppState) -> Result<(), BoxError> {
    if let Backend::Cluster(n) = &state.backend {
        n.raft.shutdown().await?;
    }
    let st = state.clone();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || -> Result<(), BoxError> {
        match &st.backend {
            Backend::Single(db) => {
                db.checkpoint_all()?;
            }
            Backend::Cluster(n) => n.sm.checkpoint()?,
        }
        Ok(())
    })
    .await??;
    state.metrics.checkpoint_duration.observe(started.elapsed());
    tracing::info!(
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "checkpointed on shutdown"
    );
    Ok(())
}
