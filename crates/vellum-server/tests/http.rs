//! The server on a real socket on 127.0.0.1: collections, points and search over HTTP/JSON,
//! and bad requests answered with a 4xx naming what is wrong.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};
use vellum_server::NodeConfig;

/// One HTTP/1.1 request with `Connection: close`; returns (status, JSON body).
fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, json)
}

#[test]
fn collections_points_and_search_work_over_http_and_bad_requests_get_a_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt
        .block_on(vellum_server::open(NodeConfig::single(
            dir.path().join("db"),
        )))
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(vellum_server::serve(
        listener,
        state,
        std::future::pending(),
    ));

    assert_eq!(request(addr, "GET", "/healthz", None).0, 200);
    let create = json!({"vectors": {"size": 3, "distance": "Euclid"}});
    assert_eq!(
        request(addr, "PUT", "/collections/docs", Some(&create)).0,
        200
    );
    assert_eq!(
        request(addr, "PUT", "/collections/docs", Some(&create)).0,
        409
    );
    let points = json!({"points": [
        {"id": 1, "vector": [0.0, 0.0, 1.0], "payload": {"title": "one"}},
        {"id": 2, "vector": [5.0, 5.0, 5.0]},
        {"id": 3, "vector": [0.0, 0.1, 1.0]}
    ]});
    let (status, body) = request(addr, "PUT", "/collections/docs/points", Some(&points));
    assert_eq!(status, 200, "{body}");
    let (_, info) = request(addr, "GET", "/collections/docs", None);
    assert_eq!(info["result"]["points_count"], 3);
    assert_eq!(info["result"]["config"]["vectors"]["distance"], "Euclid");
    let (_, list) = request(addr, "GET", "/collections", None);
    assert_eq!(list["result"]["collections"][0]["name"], "docs");
    let (_, p) = request(addr, "GET", "/collections/docs/points/1", None);
    assert_eq!(p["result"]["payload"]["title"], "one");
    let q = json!({"vector": [0.0, 0.0, 1.0], "limit": 2, "with_payload": true});
    let (status, hits) = request(addr, "POST", "/collections/docs/points/search", Some(&q));
    assert_eq!(status, 200, "{hits}");
    let ids: Vec<u64> = hits["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(hits["result"][0]["payload"]["title"], "one");

    // A typed filter (Qdrant's form) restricts the search; points are deleted by id and by
    // filter.
    let q = json!({"vector": [0.0, 0.0, 1.0], "limit": 3,
                   "filter": {"must": [{"key": "title", "match": "one"}]}});
    let (status, hits) = request(addr, "POST", "/collections/docs/points/search", Some(&q));
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["result"].as_array().unwrap().len(), 1, "{hits}");
    let del = json!({"points": [2]});
    let (status, body) = request(addr, "POST", "/collections/docs/points/delete", Some(&del));
    assert_eq!(
        (status, &body["result"]["points"]),
        (200, &json!(1)),
        "{body}"
    );
    let del = json!({"filter": {"must": [{"key": "title", "match": "one"}]}});
    let (status, body) = request(addr, "POST", "/collections/docs/points/delete", Some(&del));
    assert_eq!(
        (status, &body["result"]["points"]),
        (200, &json!(1)),
        "{body}"
    );
    let (_, info) = request(addr, "GET", "/collections/docs", None);
    assert_eq!(info["result"]["points_count"], 1);
    let bad_filter = json!({"filter": {"must": [{"key": "title", "match": {"nope": 1}}]}});
    let (status, err) = request(
        addr,
        "POST",
        "/collections/docs/points/delete",
        Some(&bad_filter),
    );
    assert_eq!(status, 400);
    assert!(
        err["status"]["error"].as_str().unwrap().contains("must[0]"),
        "{err}"
    );
    assert_eq!(request(addr, "GET", "/readyz", None).0, 200);
    // A damaged upload is refused before any collection appears.
    let mut s = TcpStream::connect(addr).unwrap();
    let junk = b"VLMSNAP? not an archive at all";
    write!(
        s,
        "POST /collections/restored/snapshots/upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        junk.len()
    )
    .unwrap();
    s.write_all(junk).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert_eq!(&response[9..12], "400", "{response}");
    assert_eq!(request(addr, "GET", "/collections/restored", None).0, 404);
    assert_eq!(request(addr, "GET", "/cluster", None).0, 404);

    // Bad requests: a 4xx whose error names the problem.
    let wrong_dim = json!({"points": [{"id": 9, "vector": [1.0]}]});
    let (status, err) = request(addr, "PUT", "/collections/docs/points", Some(&wrong_dim));
    assert_eq!(status, 400, "{err}");
    assert!(
        err["status"]["error"]
            .as_str()
            .unwrap()
            .contains("dimension"),
        "{err}"
    );
    let bad_metric = json!({"vectors": {"size": 3, "distance": "Manhattan"}});
    let (status, err) = request(addr, "PUT", "/collections/other", Some(&bad_metric));
    assert_eq!(status, 400);
    assert!(
        err["status"]["error"]
            .as_str()
            .unwrap()
            .contains("vectors.distance"),
        "{err}"
    );
    assert_eq!(request(addr, "GET", "/collections/missing", None).0, 404);
    assert_eq!(
        request(addr, "GET", "/collections/docs/points/77", None).0,
        404
    );
    let zero = json!({"vector": [0.0, 0.0, 1.0], "limit": 0});
    assert_eq!(
        request(addr, "POST", "/collections/docs/points/search", Some(&zero)).0,
        400
    );
    let unknown_field = json!({"vector": [0.0, 0.0, 1.0], "top": 3});
    assert!(
        (400..500).contains(
            &request(
                addr,
                "POST",
                "/collections/docs/points/search",
                Some(&unknown_field)
            )
            .0
        )
    );
    assert_eq!(request(addr, "DELETE", "/collections/docs", None).0, 200);
    assert_eq!(request(addr, "GET", "/collections/docs", None).0, 404);
}
