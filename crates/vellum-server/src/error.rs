//! A failed request: its status and a message naming what is wrong, sent as
//! `{"status": {"error": message}}` (Qdrant's shape).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vellum_raft::Refusal;

/// A failed request.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }

    /// 503 with `message` (no leader, not acknowledged in time, shutting down).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, message.into())
    }

    /// 500 with `message`.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }

    /// The status a refusal of the database maps to.
    pub fn refused(kind: Refusal, reason: String) -> ApiError {
        let status = match kind {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::Conflict => StatusCode::CONFLICT,
            Refusal::Invalid => StatusCode::BAD_REQUEST,
        };
        ApiError(status, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "status": { "error": self.1 } }))).into_response()
    }
}

impl From<vellum::Error> for ApiError {
    fn from(e: vellum::Error) -> Self {
        let status = match &e {
            vellum::Error::UnknownCollection { .. } => StatusCode::NOT_FOUND,
            vellum::Error::CollectionExists { .. } => StatusCode::CONFLICT,
            vellum::Error::InvalidName { .. }
            | vellum::Error::DimensionMismatch { .. }
            | vellum::Error::NonFinite { .. }
            | vellum::Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<vellum_raft::Error> for ApiError {
    fn from(e: vellum_raft::Error) -> Self {
        ApiError::internal(e)
    }
}
