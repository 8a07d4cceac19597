//! The API's description, kept next to the code: every endpoint with an example request
//! and answer. `GET /openapi.json` serves it as an OpenAPI 3.1 document, docs/API.md is
//! generated from it (a test fails when the file differs), and a test replays the examples
//! in order against a live node, so the documentation cannot drift from what the server
//! does.

use serde_json::{Value, json};

/// Who serves an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every node.
    Any,
    /// Single nodes only.
    Single,
    /// Cluster members only.
    Cluster,
}

/// One endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path template (`{name}` parameters).
    pub path: &'static str,
    /// The example's path (`SNAPSHOT_ID` stands for an id the example before created).
    pub example_path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Query parameters, documented.
    pub query: &'static [(&'static str, &'static str)],
    /// An example request body (JSON), if it takes one.
    pub request: Option<Value>,
    /// The example's status.
    pub status: u16,
    /// The example's answer (`Value::Null`: not JSON).
    pub response: Value,
    /// Who serves it.
    pub mode: Mode,
}

const CONSISTENCY: (&str, &str) = (
    "consistency",
    "`local` (default: this node's applied state, at once) or `linearizable` (sees every \
     write acknowledged before the read; a follower asks the leader for its commit index)",
);

#[allow(clippy::too_many_lines)]
/// Every public endpoint, in the order of a session that exercises them all.
pub fn endpoints() -> Vec<Endpoint> {
    let e =
        |method, path, example_path, summary, request: Option<Value>, status, response: Value| {
            Endpoint {
                method,
                path,
                example_path,
                summary,
                query: &[],
                request,
                status,
                response,
                mode: Mode::Any,
            }
        };
    vec![
        e(
            "GET",
            "/healthz",
            "/healthz",
            "Liveness: the process answers.",
            None,
            200,
            json!({"status": "ok", "result": "alive"}),
        ),
        Endpoint {
            summary: "Readiness: a single node once it serves; a cluster member once it knows a leader (503 before).",
            ..e(
                "GET",
                "/readyz",
                "/readyz",
                "",
                None,
                200,
                json!({"status": "ok", "result": {"ready": true, "leader": null}}),
            )
        },
        Endpoint {
            summary: "Create a collection. `distance`: `Cosine`, `Euclid` or `Dot`; optional `index` (`hnsw`, default, or `flat`) and `quantization` (`int8`, `f16`, `binary`). 409 if it exists.",
            ..e(
                "PUT",
                "/collections/{name}",
                "/collections/docs",
                "",
                Some(json!({"vectors": {"size": 4, "distance": "Cosine"}})),
                200,
                json!({"status": "ok", "result": true}),
            )
        },
        Endpoint {
            query: &[CONSISTENCY],
            ..e(
                "GET",
                "/collections",
                "/collections",
                "List the collections.",
                None,
                200,
                json!({"status": "ok", "result": {"collections": [{"name": "docs"}]}}),
            )
        },
        Endpoint {
            summary: "Upsert a batch of points atomically: acknowledged once durable (single node) or committed by a majority and applied (cluster). `payload` must be a JSON object.",
            ..e(
                "PUT",
                "/collections/{name}/points",
                "/collections/docs/points",
                "",
                Some(json!({"points": [
                    {"id": 1, "vector": [0.9, 0.1, 0.0, 0.0], "payload": {"city": "Berlin", "stars": 4}},
                    {"id": 2, "vector": [0.1, 0.9, 0.0, 0.0], "payload": {"city": "Paris", "stars": 5}},
                    {"id": 3, "vector": [0.8, 0.2, 0.1, 0.0], "payload": {"city": "Paris", "stars": 3}}
                ]})),
                200,
                json!({"status": "ok", "result": {"points": 3, "status": "completed"}}),
            )
        },
        Endpoint {
            query: &[CONSISTENCY],
            ..e(
                "GET",
                "/collections/{name}",
                "/collections/docs",
                "A collection's size and shape.",
                None,
                200,
                json!({"status": "ok", "result": {"points_count": 3, "payloads_count": 3, "last_lsn": 1,
                       "config": {"vectors": {"size": 4, "distance": "Cosine"}, "index": "hnsw"}}}),
            )
        },
        Endpoint {
            query: &[CONSISTENCY],
            ..e(
                "GET",
                "/collections/{name}/points/{id}",
                "/collections/docs/points/2",
                "One point with its vector and payload (404 if absent).",
                None,
                200,
                json!({"status": "ok", "result": {"id": 2, "vector": [0.1, 0.9, 0.0, 0.0], "payload": {"city": "Paris", "stars": 5}}}),
            )
        },
        Endpoint {
            query: &[CONSISTENCY],
            ..e(
                "POST",
                "/collections/{name}/points",
                "/collections/docs/points",
                "Retrieve the points among `ids` that exist (at most 100,000 ids); `with_payload` (default true), `with_vector` (default false).",
                Some(json!({"ids": [1, 2, 99], "with_vector": false})),
                200,
                json!({"status": "ok", "result": [
                    {"id": 1, "vector": null, "payload": {"city": "Berlin", "stars": 4}},
                    {"id": 2, "vector": null, "payload": {"city": "Paris", "stars": 5}}
                ]}),
            )
        },
        Endpoint {
            query: &[CONSISTENCY],
            ..e(
                "POST",
                "/collections/{name}/points/search",
                "/collections/docs/points/search",
                "The `limit` nearest points (1..=10000, default 10); `score` is the distance (smaller is closer). Optional: `filter` (Qdrant's form: must/should/must_not of match, range, exists, has_id), `ef` or `params.hnsw_ef`, `exact` or `params.exact` (scan every point), `with_payload`, `with_vector`.",
                Some(
                    json!({"vector": [1.0, 0.0, 0.0, 0.0], "limit": 2, "with_payload": true,
                            "filter": {"must": [{"key": "city", "match": "Paris"}]}}),
                ),
                200,
                json!({"status": "ok", "result": [
                    {"id": 3, "score": 0.0, "vector": null, "payload": {"city": "Paris", "stars": 3}},
                    {"id": 2, "score": 0.0, "vector": null, "payload": {"city": "Paris", "stars": 5}}
                ]}),
            )
        },
        Endpoint {
            summary: "Delete points by id (`points`) or by `filter` (one of them); returns how many.",
            ..e(
                "POST",
                "/collections/{name}/points/delete",
                "/collections/docs/points/delete",
                "",
                Some(json!({"filter": {"must": [{"key": "stars", "range": {"lt": 4}}]}})),
                200,
                json!({"status": "ok", "result": {"points": 1, "status": "completed"}}),
            )
        },
        Endpoint {
            query: &[(
                "incremental",
                "`true`: store only the files changed since the newest snapshot (default `false`: full)",
            )],
            ..e(
                "POST",
                "/collections/{name}/snapshots",
                "/collections/docs/snapshots",
                "Create a snapshot in the collection's catalog on this node (it holds every write acknowledged before the call).",
                None,
                200,
                json!({"status": "ok", "result": {"id": "0f3c…", "kind": "full", "parent": null, "lsn_start": 0, "lsn_end": 2,
                       "created_unix_ms": 1_764_600_000_000_u64, "size": 9_000, "blake3": "…"}}),
            )
        },
        e(
            "GET",
            "/collections/{name}/snapshots",
            "/collections/docs/snapshots",
            "The collection's snapshots, newest first.",
            None,
            200,
            json!({"status": "ok", "result": [{"id": "0f3c…", "kind": "full", "parent": null, "lsn_start": 0, "lsn_end": 2,
                 "created_unix_ms": 1_764_600_000_000_u64, "size": 9_000, "blake3": "…"}]}),
        ),
        e(
            "GET",
            "/collections/{name}/snapshots/{id}",
            "/collections/docs/snapshots/SNAPSHOT_ID",
            "Download a snapshot's archive, streamed (`application/octet-stream`; an incremental one needs its parents').",
            None,
            200,
            Value::Null,
        ),
        Endpoint {
            mode: Mode::Single,
            ..e(
                "POST",
                "/collections/{name}/snapshots/upload",
                "/collections/restored/snapshots/upload",
                "Upload a full snapshot archive (the body, streamed to disk) and restore it as the new collection `name`, verified whole before it appears. Single nodes only.",
                None,
                200,
                json!({"status": "ok", "result": {"collection": "restored", "bytes": 9_000}}),
            )
        },
        e(
            "DELETE",
            "/collections/{name}/snapshots/{id}",
            "/collections/docs/snapshots/SNAPSHOT_ID",
            "Delete a snapshot (refused while an incremental one names it as parent).",
            None,
            200,
            json!({"status": "ok", "result": true}),
        ),
        Endpoint {
            summary: "Prometheus metrics: writes, points written, write errors, searches, latency histograms of writes, searches, snapshots and checkpoints, points per collection, log bytes, and in a cluster the Raft term, last log index, applied index and leadership.",
            ..e("GET", "/metrics", "/metrics", "", None, 200, Value::Null)
        },
        Endpoint {
            mode: Mode::Cluster,
            ..e(
                "GET",
                "/cluster",
                "/cluster",
                "This node's view of the cluster (404 on a single node).",
                None,
                200,
                json!({"status": "ok", "result": {"id": 1, "state": "Leader", "term": 2, "leader": 1, "last_log_index": 7,
                       "applied_index": 7, "snapshot_index": null, "purged_index": null,
                       "nodes": [{"id": 1, "address": "127.0.0.1:6333", "role": "voter"},
                                 {"id": 2, "address": "127.0.0.1:6334", "role": "voter"},
                                 {"id": 3, "address": "127.0.0.1:6335", "role": "voter"}]}}),
            )
        },
        Endpoint {
            mode: Mode::Cluster,
            ..e(
                "PUT",
                "/cluster/nodes/{id}",
                "/cluster/nodes/4",
                "Add a running node (started with `--node-id` and no `--peers`) as a learner, wait until it caught up, make it a voter. Sent on to the leader from any member.",
                Some(json!({"address": "127.0.0.1:6336"})),
                200,
                json!({"status": "ok", "result": true}),
            )
        },
        Endpoint {
            mode: Mode::Cluster,
            ..e(
                "DELETE",
                "/cluster/nodes/{id}",
                "/cluster/nodes/4",
                "Remove a member.",
                None,
                200,
                json!({"status": "ok", "result": true}),
            )
        },
        e(
            "DELETE",
            "/collections/{name}",
            "/collections/docs",
            "Drop a collection.",
            None,
            200,
            json!({"status": "ok", "result": true}),
        ),
        e(
            "GET",
            "/openapi.json",
            "/openapi.json",
            "This description as an OpenAPI 3.1 document.",
            None,
            200,
            Value::Null,
        ),
    ]
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// The OpenAPI 3.1 document.
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for ep in endpoints() {
        let mut params: Vec<Value> = path_params(ep.path)
            .into_iter()
            .map(|p| json!({"name": p, "in": "path", "required": true,
                            "schema": {"type": if p == "name" { "string" } else if p == "id" && ep.path.starts_with("/cluster") { "integer" } else { "string" }}}))
            .collect();
        params.extend(ep.query.iter().map(|(name, doc)| {
            json!({"name": name, "in": "query", "required": false, "description": doc, "schema": {"type": "string"}})
        }));
        let mut op = json!({
            "summary": ep.summary,
            "parameters": params,
            "responses": {
                ep.status.to_string(): if ep.response.is_null() {
                    json!({"description": "OK"})
                } else {
                    json!({"description": "OK", "content": {"application/json": {"example": ep.response}}})
                },
                "4XX": {"description": "A bad request: `{\"status\": {\"error\": \"what is wrong\"}}`"},
                "503": {"description": "No leader, or not acknowledged in time (repeating a write is safe)"}
            }
        });
        if let Some(req) = &ep.request {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"example": req}}});
        } else if ep.path.ends_with("/upload") {
            op["requestBody"] =
                json!({"required": true, "content": {"application/octet-stream": {}}});
        }
        let entry = paths.entry(ep.path.to_owned()).or_insert_with(|| json!({}));
        entry[ep.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vellum",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A crash-safe vector store over HTTP/JSON, in the conventions of Qdrant's REST API."
        },
        "paths": paths,
    })
}

/// docs/API.md.
pub fn markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# Vellum HTTP API\n\n\
         Generated from `crates/vellum-server/src/api_doc.rs` (the same table serves \
         `GET /openapi.json`); a test replays every example below against a live node, and \
         another fails when this file is not what the table generates \
         (`VELLUM_UPDATE_API_DOCS=1 cargo test -p vellum-server --test api_doc` rewrites it).\n\n\
         Start a node with `vellum serve --data DIR --listen 127.0.0.1:6333` (single node) or \
         `vellum cluster up --nodes 3 DIR` (three Raft members on 127.0.0.1). Answers are \
         `{\"status\": \"ok\", \"result\": ...}`; a failed request gets a 4xx or 5xx with \
         `{\"status\": {\"error\": \"...\"}}` naming what is wrong (the field, the collection, \
         the dimension). Bodies are JSON, at most 32 MiB (snapshot uploads are streamed). In \
         a cluster, any member takes writes (followers forward them to the leader); a write \
         is acknowledged once a majority logged it and the leader applied it. A 503 means no \
         leader or no acknowledgement within 10 s: the write may still be applied, and \
         repeating it is safe (upserts and deletes are idempotent).\n\n\
         The `/raft/*` routes carry Raft messages between members (postcard bodies); they \
         are not authenticated: run nodes on loopback or a private network.\n\n\
         | Method | Path | What |\n|---|---|---|\n",
    );
    let eps = endpoints();
    for ep in &eps {
        let first = ep
            .summary
            .split(". ")
            .next()
            .unwrap_or(ep.summary)
            .trim_end_matches('.');
        let _ = writeln!(out, "| `{}` | `{}` | {first} |", ep.method, ep.path);
    }
    for ep in &eps {
        let _ = write!(out, "\n## `{} {}`\n\n{}\n", ep.method, ep.path, ep.summary);
        match ep.mode {
            Mode::Single => out.push_str("\nSingle nodes only.\n"),
            Mode::Cluster => out.push_str("\nCluster members only.\n"),
            Mode::Any => {}
        }
        if !ep.query.is_empty() {
            out.push_str("\nQuery parameters:\n");
            for (name, doc) in ep.query {
                let _ = writeln!(out, "- `{name}`: {doc}");
            }
        }
        let body = match &ep.request {
            Some(r) => format!(" -H 'content-type: application/json' -d '{r}'"),
            None if ep.path.ends_with("/upload") => " --data-binary @snapshot.vsnap".to_owned(),
            None => String::new(),
        };
        let path = ep.example_path.replace("SNAPSHOT_ID", "{id}");
        let _ = write!(
            out,
            "\n```sh\ncurl -X {} 'http://127.0.0.1:6333{path}'{body}\n```\n",
            ep.method
        );
        if !ep.response.is_null() {
            let pretty = serde_json::to_string_pretty(&ep.response).unwrap_or_default();
            let _ = write!(out, "\n{} answer:\n\n```json\n{pretty}\n```\n", ep.status);
        }
    }
    out
}
