//! The public API's handlers: collections, points and search. JSON in, JSON out; writes go
//! through [`AppState::submit`] (applied here, or committed by the cluster), reads through
//! [`AppState::database_for_read`].

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use vellum::{Metric, SearchFilter, SearchParams};
use vellum_raft::{CollectionSpec, PointData, Request};

use crate::error::ApiError;
use crate::state::{AppState, Consistency, blocking};

pub(crate) type Reply = Result<Json<Value>, ApiError>;

pub(crate) fn ok(result: Value) -> Reply {
    Ok(Json(json!({ "status": "ok", "result": result })))
}

/// `?consistency=local|linearizable` on reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    #[serde(default)]
    consistency: Consistency,
}

pub(crate) async fn list_collections(
    State(state): State<AppState>,
    Query(q): Query<ReadQuery>,
) -> Reply {
    let db = state.database_for_read(q.consistency).await?;
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
    /// `hnsw` (default) or `flat`.
    #[serde(default)]
    index: Option<String>,
    /// `int8`, `f16` or `binary`.
    #[serde(default)]
    quantization: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VectorsBody {
    size: u32,
    distance: String,
}

fn metric_of(distance: &str) -> Result<&'static str, ApiError> {
    match distance {
        "Cosine" => Ok("cosine"),
        "Euclid" => Ok("l2"),
        "Dot" => Ok("dot"),
        other => Err(ApiError::bad_request(format!(
            "vectors.distance: {other:?} is not Cosine, Euclid or Dot"
        ))),
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
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<CreateBody>,
) -> Reply {
    vellum::validate_name(&name).map_err(ApiError::from)?;
    if body.vectors.size == 0 {
        return Err(ApiError::bad_request("vectors.size: must be at least 1"));
    }
    let mut spec = CollectionSpec::new(body.vectors.size, metric_of(&body.vectors.distance)?);
    spec.flat = match body.index.as_deref() {
        None | Some("hnsw") => false,
        Some("flat") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "index: {other:?} is not hnsw or flat"
            )));
        }
    };
    spec.quantization = body.quantization;
    spec.to_config()
        .map_err(|e| ApiError::bad_request(format!("quantization: {e}")))?;
    if state.is_single() && state.database().collection(&name).is_ok() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("collection {name:?} already exists"),
        ));
    }
    state
        .submit(Request::CreateCollection { name, spec })
        .await?;
    ok(json!(true))
}

pub(crate) async fn collection_info(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Reply {
    let db = state.database_for_read(q.consistency).await?;
    let c = db.collection(&name)?;
    let config = c.config();
    let stats = c.stats();
    ok(json!({
        "points_count": c.len(),
        "config": {
            "vectors": { "size": config.dim, "distance": metric_name(config.metric) },
            "index": if matches!(config.index, vellum::IndexKind::Flat) { "flat" } else { "hnsw" },
        },
        "payloads_count": stats.payloads,
        "last_lsn": stats.last_lsn,
    }))
}

pub(crate) async fn drop_collection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Reply {
    if state.is_single() {
        state.database().collection(&name)?;
    }
    state.submit(Request::DropCollection { name }).await?;
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

/// Checks points before they are proposed; the database checks again when it applies
/// them. The collection's dimension is checked here on a single node only: a cluster
/// member's own state may lag a collection just created (or dropped) through another one,
/// so there the leader's apply decides.
fn check_points(state: &AppState, name: &str, points: &[PointBody]) -> Result<(), ApiError> {
    let dim = if state.is_single() {
        Some(state.database().collection(name)?.config().dim)
    } else {
        None
    };
    for (i, p) in points.iter().enumerate() {
        if let Some(dim) = dim
            && p.vector.len() != dim
        {
            return Err(ApiError::bad_request(format!(
                "points[{i}].vector: {} numbers, the collection has {dim} dimensions",
                p.vector.len()
            )));
        }
        if let Some(j) = p.vector.iter().position(|x| !x.is_finite()) {
            return Err(ApiError::bad_request(format!(
                "points[{i}].vector[{j}]: not a finite number"
            )));
        }
        if let Some(v) = &p.payload
            && !v.is_object()
        {
            return Err(ApiError::bad_request(format!(
                "points[{i}].payload: must be a JSON object"
            )));
        }
    }
    Ok(())
}

pub(crate) async fn upsert_points(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<UpsertBody>,
) -> Reply {
    check_points(&state, &name, &body.points)?;
    let points = body
        .points
        .into_iter()
        .map(|p| PointData {
            id: p.id,
            vector: p.vector,
            payload: p.payload.map(|v| v.to_string().into_bytes()),
        })
        .collect();
    let n = state
        .submit(Request::Upsert {
            collection: name,
            points,
        })
        .await?;
    ok(json!({ "points": n, "status": "completed" }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteBody {
    #[serde(default)]
    points: Option<Vec<u64>>,
    #[serde(default)]
    filter: Option<Value>,
}

pub(crate) async fn delete_points(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<DeleteBody>,
) -> Reply {
    if state.is_single() {
        state.database().collection(&name)?;
    }
    let req = match (body.points, body.filter) {
        (Some(ids), None) => Request::Delete {
            collection: name,
            ids,
        },
        (None, Some(filter)) => {
            vellum::Filter::from_json(&filter).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Request::DeleteWhere {
                collection: name,
                filter: filter.to_string(),
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either points (a list of ids) or filter, not both",
            ));
        }
    };
    let n = state.submit(req).await?;
    ok(json!({ "points": n, "status": "completed" }))
}

fn point_json(id: u64, vector: Option<&[f32]>, payload: Option<&[u8]>) -> Value {
    let payload: Value = payload
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    // Each f32 as its shortest decimal (0.1, not the f64 0.10000000149011612): parsed back
    // as f32 it is the same number.
    let vector: Option<Vec<Value>> = vector.map(|v| {
        v.iter()
            .map(|x| {
                x.to_string()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            })
            .collect()
    });
    json!({ "id": id, "vector": vector, "payload": payload })
}

pub(crate) async fn get_point(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, u64)>,
    Query(q): Query<ReadQuery>,
) -> Reply {
    let db = state.database_for_read(q.consistency).await?;
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
pub(crate) struct RetrieveBody {
    ids: Vec<u64>,
    #[serde(default = "yes")]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
}

fn yes() -> bool {
    true
}

/// The most ids one retrieve asks for.
pub const MAX_RETRIEVE_IDS: usize = 100_000;

/// `POST /collections/{name}/points` `{"ids": [..]}`: the points among the ids that exist.
pub(crate) async fn retrieve_points(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ReadQuery>,
    Json(body): Json<RetrieveBody>,
) -> Reply {
    if body.ids.len() > MAX_RETRIEVE_IDS {
        return Err(ApiError::bad_request(format!(
            "ids: {} ids, at most {MAX_RETRIEVE_IDS} per request",
            body.ids.len()
        )));
    }
    let db = state.database_for_read(q.consistency).await?;
    let points = blocking(move || Ok(db.collection(&name)?.get_many(&body.ids)?)).await?;
    let result: Vec<Value> = points
        .iter()
        .map(|p| {
            point_json(
                p.id,
                body.with_vector.then_some(p.vector.as_slice()),
                if body.with_payload {
                    p.payload.as_deref()
                } else {
                    None
                },
            )
        })
        .collect();
    ok(json!(result))
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
    with_vector: bool,
    #[serde(default)]
    ef: Option<usize>,
    #[serde(default)]
    params: Option<SearchParamsBody>,
    #[serde(default)]
    filter: Option<Value>,
    /// Scan every point (the ground truth) instead of the index.
    #[serde(default)]
    exact: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParamsBody {
    #[serde(default)]
    hnsw_ef: Option<usize>,
    #[serde(default)]
    exact: bool,
}

fn default_limit() -> usize {
    10
}

/// The largest `ef` of a search run on the async worker instead of the blocking pool.
const INLINE_MAX_EF: usize = 256;

/// The most results one search returns.
pub const MAX_LIMIT: usize = 10_000;

pub(crate) async fn search(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ReadQuery>,
    Json(body): Json<SearchBody>,
) -> Result<Response, ApiError> {
    if body.limit == 0 || body.limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit: {} is not in 1..={MAX_LIMIT}",
            body.limit
        )));
    }
    let filter = match &body.filter {
        Some(f) => {
            Some(vellum::Filter::from_json(f).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let db = state.database_for_read(q.consistency).await?;
    let started = Instant::now();
    let ef = body.ef.or(body.params.as_ref().and_then(|p| p.hnsw_ef));
    let exact = body.exact || body.params.as_ref().is_some_and(|p| p.exact);
    let run = move || -> Result<Vec<vellum::Hit>, ApiError> {
        let c = db.collection(&name)?;
        let params = SearchParams {
            ef,
            with_payload: body.with_payload,
            with_vector: body.with_vector,
            exact,
            filter: filter.as_ref().map(SearchFilter::Where),
        };
        Ok(c.search_with(&body.vector, body.limit, &params)?)
    };
    // An index search with a small candidate list takes tens of microseconds: it runs on
    // the async worker (a hand-off to the blocking pool would cost as much as the search).
    // Exact scans, filtered searches and large lists go to the blocking pool.
    let small =
        !exact && body.filter.is_none() && ef.unwrap_or(0) <= INLINE_MAX_EF && body.limit <= 100;
    let hits = if small { run()? } else { blocking(run).await? };
    state
        .metrics
        .searches
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state.metrics.search_latency.observe(started.elapsed());
    // Serialized straight from the hits (no JSON tree built first): this is the hot path.
    let result: Vec<HitOut<'_>> = hits
        .iter()
        .map(|h| HitOut {
            id: h.id,
            score: h.distance,
            payload: h
                .payload
                .as_deref()
                .and_then(|b| serde_json::from_slice::<&RawValue>(b).ok()),
            vector: h.vector.as_deref(),
        })
        .collect();
    Ok(Json(Answer {
        status: "ok",
        result,
    })
    .into_response())
}

/// `{"status": "ok", "result": ...}` as a typed value.
#[derive(Serialize)]
struct Answer<T> {
    status: &'static str,
    result: T,
}

/// One search hit as it is answered (an `f32` is written as its shortest decimal).
#[derive(Serialize)]
struct HitOut<'a> {
    id: u64,
    score: f32,
    payload: Option<&'a RawValue>,
    vector: Option<&'a [f32]>,
}
