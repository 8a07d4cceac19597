//! The engine's `tracing` events on standard error: warnings and errors by default, more
//! with `-v`/`-vv`, or whatever `RUST_LOG` asks for (it wins when set). Standard output
//! stays the command's result (JSON with `--json`), so logging never mixes with it.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber for this process (once; a second call does nothing).
pub(crate) fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(default),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
