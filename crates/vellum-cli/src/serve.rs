//! `vellum serve`: a node with the HTTP API (vellum-server) until SIGTERM or Ctrl-C, then
//! a graceful stop (in-flight requests finish, every collection is checkpointed).

use std::path::PathBuf;

use clap::Args;
use vellum::DatabaseOptions;

use crate::BoxError;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Data directory (created if absent).
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// Address to listen on (loopback by default; the API has no authentication).
    #[arg(long, default_value = "127.0.0.1:6333")]
    pub(crate) listen: String,
    /// Run as a member of a Raft cluster with this id (omit for a single node).
    #[arg(long)]
    pub(crate) node_id: Option<u64>,
    /// The first members, `ID=HOST:PORT` comma-separated, this node included. The lowest
    /// id initializes the cluster on its first start. Without peers, a member waits to be
    /// added (`vellum remote cluster add`).
    #[arg(long, value_delimiter = ',', requires = "node_id")]
    pub(crate) peers: Vec<String>,
    /// Raft entries between two snapshots (a follower further behind than the leader's
    /// log catches up by a snapshot).
    #[arg(long, default_value_t = 5000)]
    pub(crate) snapshot_every: u64,
    /// Milliseconds between the leader's heartbeats; an election starts after 4 to 8 missed
    /// ones. Also the time a replication message has to be logged and synced.
    #[arg(long, default_value_t = vellum_server::DEFAULT_HEARTBEAT_MS)]
    pub(crate) heartbeat_ms: u64,
}

fn parse_peer(s: &str) -> Result<(u64, String), BoxError> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("--peers: {s:?} is not ID=HOST:PORT"))?;
    let id: u64 = id
        .parse()
        .map_err(|e| format!("--peers: {id:?} is not a node id: {e}"))?;
    if addr.is_empty() {
        return Err(format!("--peers: node {id} has no address").into());
    }
    Ok((id, addr.to_owned()))
}

pub(crate) fn run(args: &ServeArgs) -> Result<(), BoxError> {
    let peers = args
        .peers
        .iter()
        .map(|p| parse_peer(p))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(id) = args.node_id
        && !peers.is_empty()
        && !peers.iter().any(|(p, _)| *p == id)
    {
        return Err(format!("--peers must include this node ({id})").into());
    }
    let config = vellum_server::NodeConfig {
        data: args.data.clone(),
        options: DatabaseOptions::default(),
        node_id: args.node_id,
        peers,
        snapshot_every_entries: args.snapshot_every.max(1),
        heartbeat_ms: args.heartbeat_ms,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("listening on {}: {e}", args.listen))?;
        let local = listener.local_addr()?;
        let state = vellum_server::open(config).await?;
        // The line scripts and `vellum cluster up` wait for.
        println!(
            "vellum serving {} on http://{local}{}",
            args.data.display(),
            args.node_id
                .map(|id| format!(" as node {id}"))
                .unwrap_or_default()
        );
        vellum_server::serve(listener, state.clone(), vellum_server::shutdown_signal()).await?;
        eprintln!("vellum: stopping: checkpointing every collection");
        vellum_server::close(&state).await?;
        Ok::<(), BoxError>(())
    })
}
