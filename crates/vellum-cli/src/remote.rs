//! `vellum remote --server URL ...`: the collection commands against a running server
//! (single node or any cluster member: writes are forwarded to the leader).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::BoxError;
use crate::cli::{FormatArg, MetricArg};
use crate::client::Client;
use crate::output::progress;

#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// The server (`http://127.0.0.1:6333` or `127.0.0.1:6333`).
    #[arg(long, env = "VELLUM_SERVER")]
    server: String,
    /// Seconds to wait for one request.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    command: RemoteCommand,
}

#[derive(Debug, Subcommand)]
enum RemoteCommand {
    /// List the collections.
    List,
    /// Create a collection.
    Create {
        /// Its name.
        collection: String,
        /// Dimensions.
        #[arg(long)]
        dim: u32,
        /// Distance metric.
        #[arg(long, value_enum, default_value_t = MetricArg::L2)]
        metric: MetricArg,
        /// Exact search only (no HNSW graph).
        #[arg(long)]
        flat: bool,
        /// A quantized copy: int8, f16 or binary.
        #[arg(long)]
        quantization: Option<String>,
    },
    /// A collection's size and shape.
    Inspect {
        /// Its name.
        collection: String,
    },
    /// Drop a collection.
    Drop {
        /// Its name.
        collection: String,
    },
    /// Upload vectors from a .fvecs, .bvecs or .npy file in acknowledged batches.
    Import {
        /// The collection.
        collection: String,
        /// The file.
        file: PathBuf,
        /// File format (by extension if omitted).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Id of the first row; rows get consecutive ids.
        #[arg(long, default_value_t = 0)]
        first_id: u64,
        /// Points per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Search a collection.
    Search {
        /// The collection.
        collection: String,
        /// The query vector, comma-separated.
        #[arg(long, allow_hyphen_values = true)]
        query: String,
        /// Results.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// HNSW candidate list size.
        #[arg(long)]
        ef: Option<usize>,
        /// A filter in Qdrant's JSON form.
        #[arg(long)]
        filter: Option<String>,
        /// Return payloads.
        #[arg(long)]
        with_payload: bool,
        /// Scan every point (ground truth).
        #[arg(long)]
        exact: bool,
        /// See every write acknowledged before the search (asks the leader).
        #[arg(long)]
        linearizable: bool,
    },
    /// Delete points by id or by filter.
    Delete {
        /// The collection.
        collection: String,
        /// Ids, comma-separated.
        #[arg(long, value_delimiter = ',', conflicts_with = "filter")]
        ids: Vec<u64>,
        /// A filter in Qdrant's JSON form.
        #[arg(long)]
        filter: Option<String>,
    },
    /// The cluster as this node sees it; add or remove members.
    Cluster {
        #[command(subcommand)]
        command: Option<ClusterCommand>,
    },
    /// The server's Prometheus metrics.
    Metrics,
    /// A collection's snapshots on the server: create, list, download, upload.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotRemote,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotRemote {
    /// Create a snapshot in the collection's catalog on the server.
    Create {
        /// The collection.
        collection: String,
        /// Only what changed since the newest snapshot.
        #[arg(long)]
        incremental: bool,
    },
    /// The collection's snapshots, newest first.
    List {
        /// The collection.
        collection: String,
    },
    /// Download a snapshot's archive to a file (streamed).
    Download {
        /// The collection.
        collection: String,
        /// The snapshot id.
        id: String,
        /// The file to write.
        file: PathBuf,
    },
    /// Upload an archive and restore it as a new collection (single-node servers).
    Upload {
        /// The new collection's name.
        collection: String,
        /// The archive file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Add a running node (started with --node-id and no --peers) as a voter.
    Add {
        /// Its id.
        id: u64,
        /// Its address, HOST:PORT.
        address: String,
    },
    /// Remove a member.
    Remove {
        /// Its id.
        id: u64,
    },
}

fn metric_distance(m: MetricArg) -> &'static str {
    match m {
        MetricArg::L2 => "Euclid",
        MetricArg::Cosine => "Cosine",
        MetricArg::Dot => "Dot",
    }
}

fn print(json_out: bool, value: &Value, text: impl FnOnce() -> String) {
    if json_out {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

pub(crate) fn run(args: RemoteArgs, json_out: bool) -> Result<ExitCode, BoxError> {
    let c = Client::new(&args.server, Duration::from_secs(args.timeout))?;
    match args.command {
        RemoteCommand::List => {
            let r = c.ok("GET", "/collections", None)?;
            print(json_out, &r, || {
                r["collections"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c["name"].as_str())
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        RemoteCommand::Create {
            collection,
            dim,
            metric,
            flat,
            quantization,
        } => {
            let mut body = json!({"vectors": {"size": dim, "distance": metric_distance(metric)}});
            if flat {
                body["index"] = json!("flat");
            }
            if let Some(q) = quantization {
                body["quantization"] = json!(q);
            }
            let r = c.ok("PUT", &format!("/collections/{collection}"), Some(&body))?;
            print(json_out, &r, || {
                format!("created {collection:?} ({dim} dimensions) on {}", c.url())
            });
        }
        RemoteCommand::Inspect { collection } => {
            let r = c.ok("GET", &format!("/collections/{collection}"), None)?;
            print(json_out, &r, || {
                format!(
                    "{collection}: {} points, {} dimensions, {}, {} index",
                    r["points_count"],
                    r["config"]["vectors"]["size"],
                    r["config"]["vectors"]["distance"].as_str().unwrap_or("?"),
                    r["config"]["index"].as_str().unwrap_or("?")
                )
            });
        }
        RemoteCommand::Drop { collection } => {
            let r = c.ok("DELETE", &format!("/collections/{collection}"), None)?;
            print(json_out, &r, || format!("dropped {collection:?}"));
        }
        RemoteCommand::Import {
            collection,
            file,
            format,
            first_id,
            batch,
        } => {
            let format = crate::commands::create::format_of(&file, format)?;
            let vectors = crate::commands::create::read_vectors(&file, format)?;
            let rows = vectors.rows();
            let bar = (!json_out).then(|| progress(rows as u64, "uploading"));
            let started = Instant::now();
            let path = format!("/collections/{collection}/points");
            for start in (0..rows).step_by(batch.max(1)) {
                let end = (start + batch.max(1)).min(rows);
                let points: Vec<Value> = (start..end)
                    .map(|i| json!({"id": first_id + i as u64, "vector": vectors.row(i)}))
                    .collect();
                c.ok("PUT", &path, Some(&json!({ "points": points })))?;
                if let Some(b) = &bar {
                    b.set_position(end as u64);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let secs = started.elapsed().as_secs_f64();
            let r = json!({"rows": rows, "seconds": secs, "points_per_second": rows as f64 / secs.max(1e-9)});
            print(json_out, &r, || {
                format!(
                    "uploaded {rows} vectors into {collection:?} in {secs:.2} s ({:.0} points/s, each batch acknowledged)",
                    rows as f64 / secs.max(1e-9)
                )
            });
        }
        RemoteCommand::Search {
            collection,
            query,
            k,
            ef,
            filter,
            with_payload,
            exact,
            linearizable,
        } => {
            let vector = query
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<f32>()
                        .map_err(|e| format!("--query component {s:?}: {e}"))
                })
                .collect::<Result<Vec<f32>, String>>()?;
            let mut body =
                json!({"vector": vector, "limit": k, "with_payload": with_payload, "exact": exact});
            if let Some(ef) = ef {
                body["ef"] = json!(ef);
            }
            if let Some(f) = filter {
                body["filter"] = serde_json::from_str(&f).map_err(|e| format!("--filter: {e}"))?;
            }
            let consistency = if linearizable {
                "?consistency=linearizable"
            } else {
                ""
            };
            let r = c.ok(
                "POST",
                &format!("/collections/{collection}/points/search{consistency}"),
                Some(&body),
            )?;
            print(json_out, &r, || {
                r.as_array()
                    .map(|hits| {
                        hits.iter()
                            .map(|h| {
                                let payload = if h["payload"].is_null() {
                                    String::new()
                                } else {
                                    format!("  {}", h["payload"])
                                };
                                format!("{}\t{}{payload}", h["id"], h["score"])
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        RemoteCommand::Delete {
            collection,
            ids,
            filter,
        } => {
            let body = match filter {
                Some(f) => {
                    json!({"filter": serde_json::from_str::<Value>(&f).map_err(|e| format!("--filter: {e}"))?})
                }
                None => json!({"points": ids}),
            };
            let r = c.ok(
                "POST",
                &format!("/collections/{collection}/points/delete"),
                Some(&body),
            )?;
            print(json_out, &r, || format!("deleted {} points", r["points"]));
        }
        RemoteCommand::Cluster { command } => {
            let r = match command {
                None => c.ok("GET", "/cluster", None)?,
                Some(ClusterCommand::Add { id, address }) => c.ok(
                    "PUT",
                    &format!("/cluster/nodes/{id}"),
                    Some(&json!({"address": address})),
                )?,
                Some(ClusterCommand::Remove { id }) => {
                    c.ok("DELETE", &format!("/cluster/nodes/{id}"), None)?
                }
            };
            print(json_out, &r, || {
                serde_json::to_string_pretty(&r).unwrap_or_default()
            });
        }
        RemoteCommand::Metrics => print!("{}", c.text("/metrics")?),
        RemoteCommand::Snapshot { command } => snapshot(&c, command, json_out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshot(c: &Client, command: SnapshotRemote, json_out: bool) -> Result<(), BoxError> {
    match command {
        SnapshotRemote::Create {
            collection,
            incremental,
        } => {
            let q = if incremental { "?incremental=true" } else { "" };
            let r = c.ok(
                "POST",
                &format!("/collections/{collection}/snapshots{q}"),
                None,
            )?;
            print(json_out, &r, || {
                format!(
                    "snapshot {} of {collection:?} ({}, {} bytes, LSN {})",
                    r["id"].as_str().unwrap_or("?"),
                    r["kind"].as_str().unwrap_or("?"),
                    r["size"],
                    r["lsn_end"]
                )
            });
        }
        SnapshotRemote::List { collection } => {
            let r = c.ok("GET", &format!("/collections/{collection}/snapshots"), None)?;
            print(json_out, &r, || {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        format!(
                            "{}  {}  {} bytes  LSN {}",
                            s["id"].as_str().unwrap_or("?"),
                            s["kind"].as_str().unwrap_or("?"),
                            s["size"],
                            s["lsn_end"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SnapshotRemote::Download {
            collection,
            id,
            file,
        } => {
            let bytes = c.download(&format!("/collections/{collection}/snapshots/{id}"), &file)?;
            let r = json!({"file": file.display().to_string(), "bytes": bytes});
            print(json_out, &r, || {
                format!("{bytes} bytes written to {}", file.display())
            });
        }
        SnapshotRemote::Upload { collection, file } => {
            let r = c.upload(
                &format!("/collections/{collection}/snapshots/upload"),
                &file,
            )?;
            print(json_out, &r, || {
                format!(
                    "restored {} as {collection:?} ({} bytes uploaded)",
                    file.display(),
                    r["bytes"]
                )
            });
        }
    }
    Ok(())
}
