//! Server processes on 127.0.0.1: `vellum cluster up`, `vellum demo --cluster` and the
//! cluster torture start nodes with it (each `vellum serve --node-id N --peers ...` on its
//! own data directory and port), stop them with signals, and ask them who leads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::BoxError;
use crate::client::Client;

/// One node's process.
#[derive(Debug)]
pub(crate) struct NodeProc {
    pub(crate) id: u64,
    pub(crate) addr: String,
    child: Option<Child>,
}

/// Nodes of a cluster on this machine. Dropping it kills the nodes still running.
#[derive(Debug)]
pub(crate) struct LocalCluster {
    dir: PathBuf,
    exe: PathBuf,
    snapshot_every: u64,
    pub(crate) nodes: Vec<NodeProc>,
}

/// A free port on 127.0.0.1 (the OS picks it; the node binds it right after).
fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LocalCluster {
    /// Starts `n` nodes with data under `dir` (ports from `base_port`, or free ones) and
    /// waits until they elected a leader.
    pub(crate) fn start(
        dir: &Path,
        n: u64,
        base_port: Option<u16>,
        snapshot_every: u64,
    ) -> Result<LocalCluster, BoxError> {
        std::fs::create_dir_all(dir)?;
        let mut nodes = Vec::new();
        for id in 1..=n {
            let port = match base_port {
                Some(p) => p
                    .checked_add(u16::try_from(id - 1)?)
                    .ok_or("--base-port: the ports run past 65535")?,
                None => free_port()?,
            };
            nodes.push(NodeProc {
                id,
                addr: format!("127.0.0.1:{port}"),
                child: None,
            });
        }
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            exe: std::env::current_exe()?,
            snapshot_every,
            nodes,
        };
        for id in 1..=n {
            cluster.spawn(id)?;
        }
        cluster.wait_leader(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn node(&self, id: u64) -> &NodeProc {
        &self.nodes[usize::try_from(id - 1).unwrap_or(usize::MAX)]
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        &mut self.nodes[usize::try_from(id - 1).unwrap_or(usize::MAX)]
    }

    /// Node `id`'s data directory.
    pub(crate) fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node{id}"))
    }

    /// Starts (or restarts) node `id`; its output goes to `node{id}.log` in the directory.
    pub(crate) fn spawn(&mut self, id: u64) -> Result<(), BoxError> {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.addr))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{id}.log")))?;
        let child = Command::new(&self.exe)
            .arg("serve")
            .arg("--data")
            .arg(self.data_dir(id))
            .arg("--listen")
            .arg(&self.node(id).addr)
            .arg("--node-id")
            .arg(id.to_string())
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--snapshot-every")
            .arg(self.snapshot_every.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.node_mut(id).child = Some(child);
        // Up once it answers (it binds before it opens its data).
        let c = self.client(id, Duration::from_secs(2))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if c.call("GET", "/healthz", None).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .node_mut(id)
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "node {id} exited with {status} (see {})",
                    self.dir.join(format!("node{id}.log")).display()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("node {id} did not answer within 30 s").into())
    }

    /// Whether node `id`'s process runs.
    pub(crate) fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    /// Sends `signal` to node `id`'s process.
    pub(crate) fn signal(&self, id: u64, signal: Signal) -> Result<(), BoxError> {
        let child = self.node(id).child.as_ref().ok_or("node not running")?;
        let pid = Pid::from_raw(i32::try_from(child.id())?).ok_or("pid 0")?;
        kill_process(pid, signal)?;
        Ok(())
    }

    /// SIGKILL node `id` and reap it.
    pub(crate) fn kill(&mut self, id: u64) -> Result<(), BoxError> {
        if let Some(mut child) = self.node_mut(id).child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM every node (a graceful stop: each checkpoints) and waits for them.
    pub(crate) fn terminate_all(&mut self) -> Result<(), BoxError> {
        for id in 1..=self.nodes.len() as u64 {
            if self.is_running(id) {
                let _ = self.signal(id, Signal::CONT);
                self.signal(id, Signal::TERM)?;
            }
        }
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                child.wait()?;
            }
        }
        Ok(())
    }

    /// A client of node `id`.
    pub(crate) fn client(&self, id: u64, timeout: Duration) -> Result<Client, BoxError> {
        Client::new(&self.node(id).addr, timeout)
    }

    /// The leader the running nodes agree on (highest term among those that say they
    /// lead), if any answers.
    pub(crate) fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for n in &self.nodes {
            if n.child.is_none() {
                continue;
            }
            let Ok(c) = Client::new(&n.addr, Duration::from_millis(500)) else {
                continue;
            };
            if let Ok(a) = c.call("GET", "/cluster", None)
                && a.status == 200
            {
                let r = &a.body["result"];
                let term = r["term"].as_u64().unwrap_or(0);
                if r["leader"].as_u64() == Some(n.id) && best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, n.id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits until some node leads.
    pub(crate) fn wait_leader(&self, timeout: Duration) -> Result<u64, BoxError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no leader within {} s", timeout.as_secs()).into())
    }

    /// The URLs of the nodes.
    pub(crate) fn urls(&self) -> Vec<(u64, String)> {
        self.nodes
            .iter()
            .map(|n| (n.id, format!("http://{}", n.addr)))
            .collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
