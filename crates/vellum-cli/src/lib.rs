//! The `vellum` command as a library: argument parsing and every subcommand. `main.rs` only
//! calls [`main_with_args`].
//!
//! Today the engine's facade is not built yet (issue 7), so `vellum demo` shows what exists:
//! the crash-simulating file system checking the durable atomic-replace helper against every
//! crash image a power loss could leave.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vellum::fs::{CrashHarness, CrashModel, CrashPoints, Fs, RealFs, SimFs, atomic_replace};

/// A crash-safe persistence engine for vector indexes.
#[derive(Debug, Parser)]
#[command(name = "vellum", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what the engine does today, end to end.
    Demo {
        /// Working directory for the real-file-system part (a temporary one if omitted).
        dir: Option<std::path::PathBuf>,
    },
}

/// Parses `args` and runs the command; errors print to stderr and exit non-zero.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Command::Demo { dir } => demo(dir.as_deref()),
    }
}

fn read_all(fs: &dyn Fs, path: &Path) -> Result<Vec<u8>, vellum::fs::Error> {
    let file = fs.open(path)?;
    let mut buf = vec![0; file.len()? as usize];
    file.read_at(&mut buf, 0)?;
    Ok(buf)
}

fn demo(dir: Option<&Path>) -> Result<(), BoxError> {
    println!("Vellum demo: the layers built so far.");
    println!("(The database facade and the full demo come with issue 7.)\n");

    // 1. Crash simulation of a durable atomic replace, 8 KiB of new contents over old.
    let old = vec![b'o'; 5000];
    let new = vec![b'n'; 8192];
    let harness = CrashHarness {
        model: CrashModel::torn_512(),
        images_per_point: 256,
        points: CrashPoints::EveryOp,
        seed: 1,
    };
    let report = harness.run(
        |fs: &SimFs| {
            let path = Path::new("/db/config");
            let setup = vellum::fs::create_dir_all_durable(fs, Path::new("/db"))
                .and_then(|()| atomic_replace(fs, path, &old));
            setup.is_ok() && atomic_replace(fs, path, &new).is_ok()
        },
        |image, replaced| {
            let got = read_all(image, Path::new("/db/config")).ok();
            match got {
                Some(b) if b == new => Ok(()),
                Some(b) if b == old && !replaced => Ok(()),
                None if !replaced => Ok(()),
                Some(b) => Err(format!("mixed contents: {} bytes", b.len())),
                None => Err("file lost after an acknowledged replace".into()),
            }
        },
    );
    println!("simulated file system: atomic replace (8 KiB over 5 KB), torn 512 B sectors");
    println!("  {report}");
    println!("  every image held exactly the old or the new contents\n");

    // 2. The same helper on the real file system.
    let tmp;
    let root = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = std::env::temp_dir().join(format!("vellum-demo-{}", std::process::id()));
            tmp.clone()
        }
    };
    let real = RealFs::new();
    vellum::fs::create_dir_all_durable(&real, &root)?;
    let path = root.join("config");
    let started = std::time::Instant::now();
    atomic_replace(&real, &path, &new)?;
    let elapsed_us = started.elapsed().as_micros();
    let back = read_all(&real, &path)?;
    if back != new {
        return Err(format!("{} read back differently", path.display()).into());
    }
    println!(
        "real file system: durable atomic replace of {}",
        path.display()
    );
    println!("  took {elapsed_us} us (write, fdatasync, rename, directory fsync)");
    if dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}
