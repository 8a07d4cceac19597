//! The receiving side of the Raft transport ([`crate::network`]): `POST /raft/...` with
//! postcard bodies, answered with a postcard `Result<T, String>`. Meant for the cluster's
//! own network (loopback or a private network): these routes are not authenticated.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{Snapshot, SnapshotMeta, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vellum_raft::{NodeId, Request, TypeConfig};
use vellum_snapshot_format::Chunk;

use crate::error::ApiError;
use crate::state::{AppState, Backend, ClusterNode, WriteReply};

/// The largest Raft message accepted: a batch of entries (openraft sends at most
/// `max_payload_entries` per message, each at most `vellum_raft::MAX_ENTRY_BYTES`).
pub const MAX_RAFT_BODY_BYTES: usize = 160 << 20;

/// The Raft routes (cluster mode only).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/write", post(write))
        .route("/raft/read_index", get(read_index))
        .route("/raft/snapshot/{id}/{file}", post(snapshot_chunk))
        .route(
            "/raft/snapshot/{id}/{file}/finish",
            post(snapshot_file_done),
        )
        .route("/raft/snapshot/{id}/install", post(snapshot_install))
        .layer(DefaultBodyLimit::max(MAX_RAFT_BODY_BYTES))
}

fn reply<T: Serialize>(r: Result<T, String>) -> Response {
    match postcard::to_allocvec(&r) {
        Ok(b) => (StatusCode::OK, b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    postcard::from_bytes(body)
        .map_err(|e| ApiError::bad_request(format!("message does not decode: {e}")))
}

fn node(state: &AppState) -> Result<&ClusterNode, ApiError> {
    match &state.backend {
        Backend::Cluster(n) => Ok(n),
        Backend::Single(_) => Err(ApiError(
            StatusCode::NOT_FOUND,
            "this server runs a single node without Raft".into(),
        )),
    }
}

async fn append(State(state): State<AppState>, body: Bytes) -> Response {
    let n = match node(&state) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let rpc: AppendEntriesRequest<TypeConfig> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    reply(n.raft.append_entries(rpc).await.map_err(|e| e.to_string()))
}

async fn vote(State(state): State<AppState>, body: Bytes) -> Response {
    let n = match node(&state) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let rpc: VoteRequest<NodeId> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    reply(n.raft.vote(rpc).await.map_err(|e| e.to_string()))
}

async fn write(State(state): State<AppState>, body: Bytes) -> Response {
    let n = match node(&state) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let req: Request = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let r: WriteReply = n.write_as_leader(req).await;
    match postcard::to_allocvec(&r) {
        Ok(b) => (StatusCode::OK, b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn read_index(State(state): State<AppState>) -> Response {
    let n = match node(&state) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    reply(
        n.raft
            .ensure_linearizable()
            .await
            .map(|id| id.map(|l| l.index))
            .map_err(|e| e.to_string()),
    )
}

async fn snapshot_chunk(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Backend::Cluster(_) = &state.backend else {
        return node(&state).err().map_or_else(
            || StatusCode::NOT_FOUND.into_response(),
            IntoResponse::into_response,
        );
    };
    let chunk = match Chunk::decode(&body) {
        Ok((c, used)) if used == body.len() => c,
        Ok(_) => {
            return (StatusCode::BAD_REQUEST, "trailing bytes after the chunk").into_response();
        }
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let st = state.clone();
    let r = tokio::task::spawn_blocking(move || match &st.backend {
        Backend::Cluster(n) => n
            .inbox
            .receive(&id, &file, &chunk)
            .map_err(|e| e.to_string()),
        Backend::Single(_) => Err("not a cluster node".to_owned()),
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    reply(r)
}

async fn snapshot_file_done(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let st = state.clone();
    let r = tokio::task::spawn_blocking(move || match &st.backend {
        Backend::Cluster(n) => n.inbox.finish_file(&id, &file).map_err(|e| e.to_string()),
        Backend::Single(_) => Err("not a cluster node".to_owned()),
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    reply(r)
}

type InstallMessage = (
    Vote<NodeId>,
    SnapshotMeta<NodeId, openraft::BasicNode>,
    Vec<u8>,
);

async fn snapshot_install(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let n = match node(&state) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let (vote, meta, manifest_json): InstallMessage = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if meta.snapshot_id != id {
        return reply::<()>(Err(format!(
            "snapshot id {:?} in the message, {id:?} in the path",
            meta.snapshot_id
        )));
    }
    let st = state.clone();
    let finished = tokio::task::spawn_blocking(move || match &st.backend {
        Backend::Cluster(n) => n
            .inbox
            .finish(&id, &manifest_json)
            .map_err(|e| e.to_string()),
        Backend::Single(_) => Err("not a cluster node".to_owned()),
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let (_, files) = match finished {
        Ok(f) => f,
        Err(e) => return reply::<()>(Err(e)),
    };
    let snapshot = Snapshot {
        meta,
        snapshot: Box::new(files),
    };
    reply(
        n.raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| e.to_string()),
    )
}
