//! Helpers the CLI's end-to-end tests share: run the binary, expect success, write a
//! .fvecs file.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `vellum` binary with `args`.
pub fn vellum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(args)
        .output()
        .expect("runs")
}

/// Runs it and returns standard output, failing the test on a non-zero exit.
pub fn ok(args: &[&str]) -> String {
    let out = vellum(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `rows` vectors of `dim` floats, row `r` component `d` = `(r * 7 + d) / 10`.
pub fn write_fvecs(path: &Path, rows: usize, dim: usize) {
    let mut bytes = Vec::new();
    for r in 0..rows {
        bytes.extend_from_slice(&(dim as i32).to_le_bytes());
        for d in 0..dim {
            bytes.extend_from_slice(&((r * 7 + d) as f32 / 10.0).to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}
