//! Collection snapshots over HTTP: create (in the collection's catalog on this node),
//! list, download as a stream, delete, and upload-and-restore as a stream. Neither
//! direction holds an archive in memory: downloads are read in 1 MiB pieces through a
//! bounded channel, uploads are written to a staging file and verified whole by the import
//! before the new collection appears.

use std::io::Read;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use vellum::SnapshotKind;

use crate::error::ApiError;
use crate::handlers::{Reply, ok};
use crate::state::{AppState, Backend, blocking};

/// Bytes per piece of a download.
const DOWNLOAD_PIECE_BYTES: usize = 1 << 20;
/// Pieces read ahead of the client.
const DOWNLOAD_PIECES_AHEAD: usize = 4;

fn meta_json(m: &vellum::SnapshotMeta) -> serde_json::Value {
    json!({
        "id": m.id.to_hex(),
        "kind": if m.kind == vellum_snapshot_format::SnapshotKind::Incremental { "incremental" } else { "full" },
        "parent": m.parent.map(|p| p.to_hex()),
        "lsn_start": m.lsn_start,
        "lsn_end": m.lsn_end,
        "created_unix_ms": m.created_unix_ms,
        "size": m.archive_bytes,
        "blake3": m.archive_hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateQuery {
    #[serde(default)]
    incremental: bool,
}

/// `POST /collections/{name}/snapshots[?incremental=true]`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<CreateQuery>,
) -> Reply {
    let db = state.database().clone();
    let started = Instant::now();
    let kind = if q.incremental {
        SnapshotKind::Incremental
    } else {
        SnapshotKind::Full
    };
    let m = blocking(move || Ok(db.create_snapshot(&name, kind)?)).await?;
    state.metrics.snapshot_duration.observe(started.elapsed());
    ok(meta_json(&m))
}

/// `GET /collections/{name}/snapshots`: newest first.
pub(crate) async fn list(State(state): State<AppState>, Path(name): Path<String>) -> Reply {
    let db = state.database().clone();
    let list = blocking(move || Ok(db.list_snapshots(&name)?)).await?;
    ok(json!(list.iter().map(meta_json).collect::<Vec<_>>()))
}

/// `DELETE /collections/{name}/snapshots/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Reply {
    let db = state.database().clone();
    blocking(move || Ok(db.delete_snapshot(&name, &id)?)).await?;
    ok(json!(true))
}

/// `GET /collections/{name}/snapshots/{id}`: the archive, streamed. An incremental
/// snapshot's archive needs its parents' (the list names them) to be restored.
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let db = state.database().clone();
    let path = blocking(move || {
        let chain = db.snapshot_chain_paths(&name, &id)?;
        chain
            .last()
            .cloned()
            .ok_or_else(|| ApiError::internal("an empty snapshot chain"))
    })
    .await?;
    let file = std::fs::File::open(&path)
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let len = file
        .metadata()
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(DOWNLOAD_PIECES_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; DOWNLOAD_PIECE_BYTES];
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break; // the client went away
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [
            ("content-type", "application/octet-stream".to_owned()),
            ("content-length", len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /collections/{name}/snapshots/upload`: the body is an archive (a full snapshot);
/// it becomes the new collection `name` once verified. Single node only: a cluster's
/// collections change only through its log.
pub(crate) async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Reply {
    let Backend::Single(db) = &state.backend else {
        return Err(ApiError::bad_request(
            "restoring an uploaded snapshot into a cluster is not supported: a cluster's \
             collections change only through its replicated log (restore on a single node, \
             or upsert the points)",
        ));
    };
    vellum::validate_name(&name).map_err(ApiError::from)?;
    if db.collection(&name).is_ok() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("collection {name:?} already exists"),
        ));
    }
    let limit = vellum::ImportLimits::default().max_total_bytes;
    tokio::fs::create_dir_all(&state.uploads)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", state.uploads.display())))?;
    let staged = state.uploads.join(format!(
        "{name}-{:016x}.vsnap",
        vellum::fs::rng::random_u64()
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&staged)
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", staged.display())))?;
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
            total += piece.len() as u64;
            if total > limit {
                return Err(ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the archive is larger than the import limit of {limit} bytes"),
                ));
            }
            file.write_all(&piece)
                .await
                .map_err(|e| ApiError::internal(format!("{}: {e}", staged.display())))?;
        }
        file.sync_all()
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", staged.display())))?;
        let (db, staged, name) = (db.clone(), staged.clone(), name.clone());
        // The import verifies the whole archive before the collection appears.
        blocking(move || {
            db.import_snapshot(std::slice::from_ref(&staged), &name)
                .map_err(|e| match e {
                    vellum::Error::Snapshot(_) => ApiError::bad_request(format!("archive: {e}")),
                    other => ApiError::from(other),
                })?;
            Ok(total)
        })
        .await
    }
    .await;
    let _ = tokio::fs::remove_file(&staged).await;
    let bytes = result?;
    ok(json!({ "collection": name, "bytes": bytes }))
}
