//! Vellum over HTTP/JSON (axum + tokio): one node serving a `vellum::Database`, alone or as
//! a member of a Raft cluster (vellum-raft, with its messages over the same listener).
//! Endpoints follow the conventions of Qdrant's REST API; docs/API.md lists them with
//! examples and `GET /openapi.json` describes them.
//!
//! Every request body is bounded ([`MAX_BODY_BYTES`]; Raft messages
//! [`raft_routes::MAX_RAFT_BODY_BYTES`]); a bad request gets a 4xx with a JSON error naming
//! what is wrong. On SIGTERM the server stops accepting, finishes what is in flight and
//! checkpoints ([`close`]).
#![forbid(unsafe_code)]

pub mod api_doc;
mod error;
mod handlers;
pub mod metrics;
pub mod network;
mod ops;
pub mod raft_routes;
mod snapshots;
mod start;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

pub use error::ApiError;
pub use handlers::MAX_LIMIT;
pub use start::{DEFAULT_HEARTBEAT_MS, NodeConfig, close, open, raft_config};
pub use state::{AppState, Backend, ClusterNode, Consistency, WRITE_TIMEOUT};

/// The largest request body of the public API (a batch of points), in bytes.
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// Every route of the node.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(ops::health))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(api_doc::openapi()) }),
        )
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/cluster", get(ops::status))
        .route(
            "/cluster/nodes/{id}",
            put(ops::add_node).delete(ops::remove_node),
        )
        .route("/collections", get(handlers::list_collections))
        .route(
            "/collections/{name}",
            put(handlers::create_collection)
                .get(handlers::collection_info)
                .delete(handlers::drop_collection),
        )
        .route(
            "/collections/{name}/points",
            put(handlers::upsert_points).post(handlers::retrieve_points),
        )
        .route(
            "/collections/{name}/points/delete",
            post(handlers::delete_points),
        )
        .route("/collections/{name}/points/{id}", get(handlers::get_point))
        .route("/collections/{name}/points/search", post(handlers::search))
        .route(
            "/collections/{name}/snapshots",
            post(snapshots::create).get(snapshots::list),
        )
        .route(
            "/collections/{name}/snapshots/{id}",
            get(snapshots::download).delete(snapshots::delete),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Uploads are streamed to disk: no body limit but the import's.
    let uploads = Router::new().route(
        "/collections/{name}/snapshots/upload",
        post(snapshots::upload).layer(DefaultBodyLimit::disable()),
    );
    let api = api.merge(uploads);
    api.merge(raft_routes::routes()).with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then waits for the requests in
/// flight. Call [`close`] after it to checkpoint.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Answers go out at once (no Nagle delay behind a small write).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
