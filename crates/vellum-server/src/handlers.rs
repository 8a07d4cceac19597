//! The request handlers: JSON in, JSON out, database errors mapped to status codes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vellum::{CollectionConfig, Database, Metric, Point, SearchParams};

/// A failed request: its status and message, sent as `{"status": {"error": message}}`.
pub(crate) struct ApiError(StatusCode, String);

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

type Reply = Result<Json<Value>, ApiError>;

fn ok(result: Value) -> Reply {
    Ok(Json(json!({ "status": "ok", "result": result })))
}

/// Runs blocking database work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

pub(crate) async fn health() -> Reply {
    ok(json!("alive"))
}

pub(crate) async fn list_collections(State(db): State<Database>) -> Reply {
    let names: Vec<Value> = db
        .list_collections()
        .into_iter()
        .map(|(name, _)| json!({ "name": name }))
        .collect();
    ok(json!({ "collections": names }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    vectors: VectorsBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VectorsBody {
    size: usize,
    distance: String,
}

fn metric_of(distance: &str) -> Result<Metric, ApiError> {
    match distance {
        "Cosine" => Ok(Metric::Cosine),
        "Euclid" => Ok(Metric::L2),
        "Dot" => Ok(Metric::Dot),
        other => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("vectors.distance: {other:?} is not Cosine, Euclid or Dot"),
        )),
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "Cosine",
        Metric::L2 => "Euclid",
        Metric::Dot => "Dot",
        _ => "Unknown",
    }
}

pub(crate) async fn create_collection(
    State(db): State<Database>,
    Path(name): Path<String>,
    Json(body): Json<CreateBody>,
) -> Reply {
    let metric = metric_of(&body.vectors.distance)?;
    if body.vectors.size == 0 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "vectors.size: must be at least 1".into(),
        ));
    }
    blocking(move || {
        db.create_collection(&name, CollectionConfig::new(body.vectors.size, metric))?;
        Ok(())
    })
    .await?;
    ok(json!(true))
}

pub(crate) async fn collection_info(State(db): State<Database>, Path(name): Path<String>) -> Reply {
    let c = db.collection(&name)?;
    let config = c.config();
    ok(json!({
        "points_count": c.len(),
        "config": { "vectors": { "size": config.dim, "distance": metric_name(config.metric) } },
    }))
}

pub(crate) async fn drop_collection(State(db): State<Database>, Path(name): Path<String>) -> Reply {
    blocking(move || Ok(db.drop_collection(&name)?)).await?;
    ok(json!(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpsertBody {
    points: Vec<PointBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointBody {
    id: u64,
    vector: Vec<f32>,
    #[serde(default)]
    payload: Option<Value>,
}

pub(crate) async fn upsert_points(
    State(db): State<Database>,
    Path(name): Path<String>,
    Json(body): Json<UpsertBody>,
) -> Reply {
    let count = body.points.len();
    let lsn = blocking(move || {
        let c = db.collection(&name)?;
        let mut points = Vec::with_capacity(body.points.len());
        for p in body.points {
            let point = Point::new(p.id, p.vector);
            points.push(match p.payload {
                Some(v) => point.with_json(&v)?,
                None => point,
            });
        }
        Ok(c.upsert_batch(points)?)
    })
    .await?;
    ok(json!({ "operation_id": lsn, "points": count, "status": "completed" }))
}

fn point_json(id: u64, vector: Option<&[f32]>, payload: Option<&[u8]>) -> Value {
    let payload: Value = payload
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    json!({ "id": id, "vector": vector, "payload": payload })
}

pub(crate) async fn get_point(
    State(db): State<Database>,
    Path((name, id)): Path<(String, u64)>,
) -> Reply {
    let c = db.collection(&name)?;
    match c.get(id)? {
        Some(p) => ok(point_json(p.id, Some(&p.vector), p.payload.as_deref())),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("point {id} is not in collection {name:?}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    vector: Vec<f32>,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    with_payload: bool,
    #[serde(default)]
    ef: Option<usize>,
}

fn default_limit() -> usize {
    10
}

pub(crate) async fn search(
    State(db): State<Database>,
    Path(name): Path<String>,
    Json(body): Json<SearchBody>,
) -> Reply {
    if body.limit == 0 || body.limit > 10_000 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("limit: {} is not in 1..=10000", body.limit),
        ));
    }
    let hits = blocking(move || {
        let c = db.collection(&name)?;
        let params = SearchParams {
            ef: body.ef,
            with_payload: body.with_payload,
            ..SearchParams::default()
        };
        Ok(c.search_with(&body.vector, body.limit, &params)?)
    })
    .await?;
    let result: Vec<Value> = hits
        .iter()
        .map(|h| {
            let mut v = point_json(h.id, None, h.payload.as_deref());
            v["score"] = json!(h.distance);
            v
        })
        .collect();
    ok(json!(result))
}
