//! Operations routes: health, readiness, Prometheus metrics, cluster status and membership.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vellum_raft::NodeId;

use crate::error::ApiError;
use crate::handlers::{Reply, ok};
use crate::metrics::{Gauge, label};
use crate::state::{AppState, Backend, ClusterNode, WRITE_TIMEOUT};

/// `GET /healthz`: the process answers.
pub(crate) async fn health() -> Reply {
    ok(json!("alive"))
}

/// `GET /readyz`: a single node is ready once it serves; a cluster member once it knows a
/// leader (writes can be acknowledged).
pub(crate) async fn ready(State(state): State<AppState>) -> Reply {
    match &state.backend {
        Backend::Single(_) => ok(json!({ "ready": true, "leader": null })),
        Backend::Cluster(n) => match n.leader() {
            Some((leader, _)) => ok(json!({ "ready": true, "leader": leader })),
            None => Err(ApiError::unavailable("no leader known yet")),
        },
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let db = state.database().clone();
    let mut points = Vec::new();
    let mut wal_bytes = 0u64;
    for (name, _) in db.list_collections() {
        if let Ok(c) = db.collection(&name) {
            let s = c.stats();
            wal_bytes += s.wal_bytes;
            points.push((format!("collection=\"{}\"", label(&name)), s.points as f64));
        }
    }
    let mut gauges = vec![
        Gauge {
            name: "vellum_collections",
            help: "Collections.",
            samples: vec![(String::new(), points.len() as f64)],
        },
        Gauge {
            name: "vellum_points",
            help: "Live points per collection.",
            samples: points,
        },
    ];
    if let Backend::Cluster(n) = &state.backend {
        let m = n.raft.metrics().borrow().clone();
        wal_bytes += n.log.wal_stats().log_bytes;
        let g = |name, help, v: f64| Gauge {
            name,
            help,
            samples: vec![(String::new(), v)],
        };
        gauges.push(g(
            "vellum_raft_term",
            "Current Raft term.",
            m.current_term as f64,
        ));
        gauges.push(g(
            "vellum_raft_last_log_index",
            "Last index in this node's Raft log.",
            m.last_log_index.unwrap_or(0) as f64,
        ));
        gauges.push(g(
            "vellum_raft_applied_index",
            "Last index applied to this node's database.",
            m.last_applied.map_or(0, |l| l.index) as f64,
        ));
        gauges.push(g(
            "vellum_raft_is_leader",
            "1 if this node leads.",
            f64::from(u8::from(m.current_leader == Some(n.id))),
        ));
    }
    gauges.push(Gauge {
        name: "vellum_wal_bytes",
        help: "Bytes of write-ahead (or Raft) log segments in use.",
        samples: vec![(String::new(), wal_bytes as f64)],
    });
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
        .into_response()
}

fn cluster_node(state: &AppState) -> Result<&ClusterNode, ApiError> {
    match &state.backend {
        Backend::Cluster(n) => Ok(n),
        Backend::Single(_) => Err(ApiError(
            StatusCode::NOT_FOUND,
            "this server runs a single node without Raft (start it with --node-id)".into(),
        )),
    }
}

/// `GET /cluster`: this node's view of the cluster.
pub(crate) async fn status(State(state): State<AppState>) -> Reply {
    let n = cluster_node(&state)?;
    let m = n.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let nodes: Vec<Value> = membership
        .nodes()
        .map(|(id, node)| {
            json!({
                "id": id,
                "address": node.addr,
                "role": if voters.contains(id) { "voter" } else { "learner" },
            })
        })
        .collect();
    ok(json!({
        "id": n.id,
        "state": format!("{:?}", m.state),
        "term": m.current_term,
        "leader": m.current_leader,
        "last_log_index": m.last_log_index,
        "applied_index": m.last_applied.map(|l| l.index),
        "snapshot_index": m.snapshot.map(|l| l.index),
        "purged_index": m.purged.map(|l| l.index),
        "nodes": nodes,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddNodeBody {
    address: String,
}

/// Sends the request on to the leader when this node does not lead.
async fn on_leader(
    state: &AppState,
    n: &ClusterNode,
    method: Method,
    path: &str,
    body: Bytes,
) -> Option<Result<Response, ApiError>> {
    let (leader, addr) = match n.leader() {
        Some(l) => l,
        None => return Some(Err(ApiError::unavailable("no leader known"))),
    };
    if leader == n.id {
        return None;
    }
    let resp = state
        .http
        .request(method, format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .timeout(WRITE_TIMEOUT * 6)
        .body(body.to_vec())
        .send()
        .await;
    Some(match resp {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match r.bytes().await {
                Ok(b) => Ok(
                    (status, [("content-type", "application/json")], b.to_vec()).into_response()
                ),
                Err(e) => Err(ApiError::unavailable(format!("leader {leader}: {e}"))),
            }
        }
        Err(e) => Err(ApiError::unavailable(format!(
            "leader {leader} at {addr}: {e}"
        ))),
    })
}

fn voters(n: &ClusterNode) -> BTreeSet<NodeId> {
    n.raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// `PUT /cluster/nodes/{id}` `{"address": "127.0.0.1:7004"}`: adds a running node as a
/// learner, waits until it caught up, then makes it a voter.
pub(crate) async fn add_node(
    State(state): State<AppState>,
    Path(id): Path<NodeId>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let n = cluster_node(&state)?;
    let parsed: AddNodeBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if let Some(r) = on_leader(
        &state,
        n,
        Method::PUT,
        &format!("/cluster/nodes/{id}"),
        body,
    )
    .await
    {
        return r;
    }
    n.raft
        .add_learner(id, openraft::BasicNode::new(parsed.address), true)
        .await
        .map_err(|e| ApiError::unavailable(format!("adding node {id}: {e}")))?;
    let mut set = voters(n);
    set.insert(id);
    n.raft
        .change_membership(set, false)
        .await
        .map_err(|e| ApiError::unavailable(format!("making node {id} a voter: {e}")))?;
    Ok(Json(json!({ "status": "ok", "result": true })).into_response())
}

/// `DELETE /cluster/nodes/{id}`: removes a node from the membership.
pub(crate) async fn remove_node(
    State(state): State<AppState>,
    Path(id): Path<NodeId>,
) -> Result<Response, ApiError> {
    let n = cluster_node(&state)?;
    let path = format!("/cluster/nodes/{id}");
    if let Some(r) = on_leader(&state, n, Method::DELETE, &path, Bytes::new()).await {
        return r;
    }
    let mut set = voters(n);
    if !set.remove(&id) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("node {id} is not a voter"),
        ));
    }
    n.raft
        .change_membership(set, false)
        .await
        .map_err(|e| ApiError::unavailable(format!("removing node {id}: {e}")))?;
    Ok(Json(json!({ "status": "ok", "result": true })).into_response())
}
