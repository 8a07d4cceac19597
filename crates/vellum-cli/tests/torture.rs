//! Kill -9 torture in CI (properties P1 and P20 of docs/PROPERTIES.md): 200 SIGKILLs of a durable writer at
//! random moments; after each, everything it acknowledged is recovered bit-exact, nothing
//! but the one in-flight batch beyond it, graph + pending tail = store, and search agrees
//! with exact search. Run thousands locally with `vellum torture DIR --kills 5000`.

use std::process::Command;

#[test]
fn two_hundred_sigkills_lose_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let out = Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args([
            "torture",
            db.to_str().unwrap(),
            "--kills",
            "200",
            "--seed",
            "20261121",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "torture failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("200 kills"), "{stdout}");
    // The pending-tail case is exercised: recoveries opened with points not yet indexed.
    let with_tail: u32 = stdout
        .split("; ")
        .find_map(|part| part.strip_suffix(" recoveries opened with a pending tail"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pending-tail count in {stdout}"));
    assert!(with_tail > 0, "{stdout}");
    println!("{stdout}");
}
