//! Vellum over HTTP/JSON (axum): a single node serving one `vellum::Database`, with
//! endpoints in the conventions of Qdrant's REST API (docs/API.md, in progress with the
//! server issue). Every request body is bounded ([`MAX_BODY_BYTES`]); a bad request gets a
//! 4xx with a JSON error naming what is wrong.
//!
//! | Method and path | What |
//! |---|---|
//! | `GET /healthz` | liveness |
//! | `GET /collections` | names |
//! | `PUT /collections/{name}` | create: `{"vectors": {"size": 4, "distance": "Cosine"}}` |
//! | `GET /collections/{name}` | points, dimension, metric |
//! | `DELETE /collections/{name}` | drop |
//! | `PUT /collections/{name}/points` | upsert: `{"points": [{"id": 1, "vector": [..], "payload": {..}}]}` |
//! | `GET /collections/{name}/points/{id}` | one point |
//! | `POST /collections/{name}/points/search` | `{"vector": [..], "limit": 10, "with_payload": true}` |
#![forbid(unsafe_code)]

mod handlers;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use vellum::Database;

/// The largest request body accepted (a batch of points), in bytes.
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// The HTTP routes over `db`.
pub fn router(db: Database) -> Router {
    Router::new()
        .route("/healthz", get(handlers::health))
        .route("/collections", get(handlers::list_collections))
        .route(
            "/collections/{name}",
            put(handlers::create_collection)
                .get(handlers::collection_info)
                .delete(handlers::drop_collection),
        )
        .route("/collections/{name}/points", put(handlers::upsert_points))
        .route("/collections/{name}/points/{id}", get(handlers::get_point))
        .route("/collections/{name}/points/search", post(handlers::search))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(db)
}

/// Serves `db` on `listener` until the future is dropped or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, db: Database) -> std::io::Result<()> {
    axum::serve(listener, router(db)).await
}
