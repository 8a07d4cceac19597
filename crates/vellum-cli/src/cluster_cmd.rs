//! `vellum cluster up --nodes 3 DIR`: a Raft cluster of server processes on 127.0.0.1,
//! in the foreground until Ctrl-C or SIGTERM, which stops every node gracefully.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::BoxError;
use crate::local_cluster::LocalCluster;

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start nodes on 127.0.0.1 (each `vellum serve` in DIR/nodeN, its log in
    /// DIR/nodeN.log), print their URLs, and run until Ctrl-C or SIGTERM.
    Up {
        /// Data directory of the cluster (reused: a second `up` restarts the same nodes).
        dir: PathBuf,
        /// Nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
        nodes: u64,
        /// First port (node N listens on base + N - 1); free ports if omitted.
        #[arg(long)]
        base_port: Option<u16>,
        /// Raft entries between two snapshots.
        #[arg(long, default_value_t = 5000)]
        snapshot_every: u64,
    },
    /// Kill -9 proof across processes: three nodes, a client writing acknowledged batches,
    /// SIGKILL of random nodes (often the leader) and SIGSTOP pauses; then every
    /// acknowledged point is checked on every node.
    Torture(crate::cluster_torture::ClusterTortureArgs),
}

pub(crate) fn run(args: ClusterArgs, json_out: bool) -> Result<(), BoxError> {
    match args.command {
        ClusterCommand::Torture(t) => crate::cluster_torture::run(&t, json_out),
        ClusterCommand::Up {
            dir,
            nodes,
            base_port,
            snapshot_every,
        } => {
            let mut cluster = LocalCluster::start(&dir, nodes, base_port, snapshot_every)?;
            let leader = cluster.wait_leader(std::time::Duration::from_secs(30))?;
            let urls = cluster.urls();
            let file = json!({
                "nodes": urls.iter().map(|(id, url)| json!({"id": id, "url": url})).collect::<Vec<_>>(),
            });
            std::fs::write(dir.join("cluster.json"), serde_json::to_vec_pretty(&file)?)?;
            if json_out {
                println!("{}", json!({"leader": leader, "nodes": file["nodes"]}));
            } else {
                for (id, url) in &urls {
                    let role = if *id == leader { "  (leader)" } else { "" };
                    println!("node {id}: {url}{role}");
                }
                println!(
                    "cluster of {nodes} up in {} (Ctrl-C stops it); try:\n  curl {}/cluster",
                    dir.display(),
                    urls[0].1
                );
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(vellum_server::shutdown_signal());
            eprintln!("stopping the nodes (each checkpoints)");
            cluster.terminate_all()?;
            Ok(())
        }
    }
}
