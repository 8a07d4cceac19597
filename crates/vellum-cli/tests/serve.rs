//! `vellum serve` as a process: it answers on its port, and SIGTERM stops it gracefully —
//! it exits 0 after checkpointing, so a reopen replays nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn sigterm_stops_the_server_after_a_checkpoint_so_a_reopen_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_owned();
    let r = http(
        &addr,
        "PUT",
        "/collections/c",
        r#"{"vectors":{"size":2,"distance":"Euclid"}}"#,
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = http(
        &addr,
        "PUT",
        "/collections/c/points",
        r#"{"points":[{"id":1,"vector":[1,2]},{"id":2,"vector":[3,4]}]}"#,
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let db = vellum::Database::open(&data, vellum::DatabaseOptions::default()).unwrap();
    let stats = db.collection("c").unwrap().stats();
    assert_eq!(stats.points, 2);
    assert_eq!(
        stats.ops_since_checkpoint, 0,
        "checkpointed on SIGTERM: {stats:?}"
    );
}
