//! `vellum torture`: kill -9 proof on the real file system.
//!
//! A child process (`vellum torture-child`) writes deterministic batches with sync policy
//! `Always` and prints `ACK <n>` after each acknowledged batch; background checkpoints run
//! meanwhile. The parent kills it with SIGKILL at a random moment, reopens the database, and
//! checks: every acknowledged batch is present (vectors and payloads bit-exact), nothing
//! beyond the one batch that may have been in flight, every live slot is in the HNSW graph
//! or in the pending tail exactly once (`verify`, while the indexer inserts the tail), and
//! exact search equals brute force over the model. Then it starts the next child
//! where the recovered state ends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use vellum::fs::rng::SplitMix64;
use vellum::{
    CollectionConfig, Database, DatabaseOptions, HnswParams, Metric, Point, SearchParams,
    WriteBatch,
};

use crate::BoxError;

const DIM: usize = 8;
const ID_SPACE: u64 = 400;
const COLLECTION: &str = "torture";

#[derive(Debug, Args)]
pub(crate) struct TortureArgs {
    /// Database directory (created; reused across kills).
    dir: PathBuf,
    /// How many times to kill the writer.
    #[arg(long, default_value_t = 200)]
    kills: u32,
    /// Seed for the kill timing.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Longest a child runs before it is killed, in milliseconds.
    #[arg(long, default_value_t = 60)]
    max_run_ms: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ChildArgs {
    dir: PathBuf,
    /// The first batch number to write.
    start: u64,
}

type Model = BTreeMap<u64, (Vec<f32>, Vec<u8>)>;

/// One batch: its upserts (id, vector, payload) and an optional delete.
type BatchOps = (Vec<(u64, Vec<f32>, Vec<u8>)>, Option<u64>);

/// The operations of batch `n`: three upserts, and every fourth batch a delete.
fn batch_ops(n: u64) -> BatchOps {
    let mut rng = SplitMix64::new(n.wrapping_mul(0x9E37_79B9) ^ 0xBA7C4);
    let ups = (0..3)
        .map(|j| {
            let id = rng.below(ID_SPACE);
            let v: Vec<f32> = (0..DIM)
                .map(|_| (rng.next_u64() >> 40) as f32 / 16_777_216.0)
                .collect();
            (id, v, format!("batch {n} op {j}").into_bytes())
        })
        .collect();
    let delete = (n % 4 == 3).then(|| rng.below(ID_SPACE));
    (ups, delete)
}

fn apply_batch(model: &mut Model, n: u64) {
    let (ups, delete) = batch_ops(n);
    for (id, v, p) in ups {
        model.insert(id, (v, p));
    }
    if let Some(id) = delete {
        model.remove(&id);
    }
}

fn options() -> DatabaseOptions {
    DatabaseOptions::default()
        .with_checkpoint_after_ops(60)
        // A child lives tens of milliseconds: poll often so kills also land mid-checkpoint.
        .with_checkpoint_poll_interval(Duration::from_millis(5))
        .with_wal_segment_size_bytes(64 << 10)
        .with_slots_per_segment(64)
}

fn config() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::L2).hnsw(HnswParams {
        m: 8,
        ef_construction: 32,
        ef_search: 64,
        seed: 3,
    })
}

/// The child: write batches from `start` on, forever, acknowledging each on stdout.
pub(crate) fn child(args: &ChildArgs) -> Result<(), BoxError> {
    let db = Database::open(&args.dir, options())?;
    let c = match db.collection(COLLECTION) {
        Ok(c) => c,
        Err(_) => db.create_collection(COLLECTION, config())?,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "READY")?;
    out.flush()?;
    for n in args.start.. {
        let (ups, delete) = batch_ops(n);
        let mut batch = WriteBatch::new();
        for (id, v, p) in ups {
            batch.upsert(Point::new(id, v).with_payload(p));
        }
        if let Some(id) = delete {
            batch.delete(id);
        }
        c.write(batch)?;
        writeln!(out, "ACK {n}")?;
        out.flush()?;
    }
    Ok(())
}

/// Reopens the database and reads what it holds; also returns how many points waited in
/// the pending tail (acknowledged, not yet in the graph) when it opened.
fn read_model(dir: &Path) -> Result<(Option<Model>, u64), BoxError> {
    let db = Database::open(dir, options().with_background_checkpoints(false))?;
    let Ok(c) = db.collection(COLLECTION) else {
        return Ok((None, 0));
    };
    let pending_at_open = c.stats().index_pending;
    let mut model = Model::new();
    for id in c.ids() {
        let p = c.get(id)?.ok_or("a listed id has no point")?;
        model.insert(id, (p.vector, p.payload.unwrap_or_default()));
    }
    // Every live slot in the graph or in the pending tail, exactly once, vector by vector
    // (the indexer may be inserting the tail meanwhile).
    let report = c.verify()?;
    if !report.is_ok() {
        return Err(format!("verify after recovery: {:?}", report.problems).into());
    }
    let q = vec![0.5f32; DIM];
    let got: Vec<u64> = c
        .search_with(
            &q,
            5,
            &SearchParams {
                exact: true,
                ..Default::default()
            },
        )?
        .iter()
        .map(|h| h.id)
        .collect();
    let mut brute: Vec<(f32, u64)> = model
        .iter()
        .map(|(id, (v, _))| (v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum(), *id))
        .collect();
    brute.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let want: Vec<u64> = brute.iter().take(5).map(|x| x.1).collect();
    if got != want {
        return Err(format!("exact search {got:?} != brute force {want:?}").into());
    }
    // Checkpoint between kills so the next recovery replays only what the next child
    // writes (otherwise every reopen replays the whole history).
    c.checkpoint()?;
    Ok((Some(model), pending_at_open))
}

/// What a torture run found.
#[derive(Debug, Default)]
pub(crate) struct TortureReport {
    pub kills: u32,
    pub acked_batches: u64,
    pub in_flight_recovered: u64,
    /// Recoveries that opened with acknowledged points not yet in the graph.
    pub recovered_with_pending_tail: u32,
}

pub(crate) fn run(args: &TortureArgs, json_out: bool) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let mut rng = SplitMix64::new(args.seed);
    let mut model = Model::new();
    let mut next = 0u64;
    let mut report = TortureReport::default();
    let started = Instant::now();
    for kill in 0..args.kills {
        let mut child = Command::new(&exe)
            .arg("torture-child")
            .arg(&args.dir)
            .arg(next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it get going, then kill it at a random moment.
        let ready = rx.recv_timeout(Duration::from_secs(30));
        if ready.as_deref() != Ok("READY") {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            return Err(format!(
                "child {kill} did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        std::thread::sleep(Duration::from_micros(rng.below(args.max_run_ms * 1000 + 1)));
        child.kill()?; // SIGKILL
        let status = child.wait()?;
        let _ = reader.join();
        let mut acked: Option<u64> = None;
        for line in rx.try_iter() {
            if let Some(n) = line.strip_prefix("ACK ") {
                acked = Some(n.parse()?);
            }
        }
        if status.success() {
            return Err("the child exited by itself".into());
        }
        // Everything acknowledged must be there; at most the next batch beyond it.
        let mut expected = model.clone();
        let last_acked = acked.map_or(next, |a| a + 1);
        for n in next..last_acked {
            apply_batch(&mut expected, n);
        }
        let mut with_next = expected.clone();
        apply_batch(&mut with_next, last_acked);
        let (recovered, pending_at_open) = read_model(&args.dir)?;
        let recovered = recovered.unwrap_or_default();
        report.recovered_with_pending_tail += u32::from(pending_at_open > 0);
        if recovered == expected {
            next = last_acked;
        } else if recovered == with_next {
            next = last_acked + 1;
            report.in_flight_recovered += 1;
        } else {
            let missing: Vec<u64> = expected
                .keys()
                .filter(|k| !recovered.contains_key(k))
                .copied()
                .take(5)
                .collect();
            return Err(format!(
                "kill {kill}: recovered {} points, expected {} (acknowledged up to batch {:?}); missing ids {missing:?}",
                recovered.len(),
                expected.len(),
                acked
            )
            .into());
        }
        model = if next == last_acked {
            expected
        } else {
            with_next
        };
        report.kills = kill + 1;
        report.acked_batches = next;
    }
    let secs = started.elapsed().as_secs_f64();
    if json_out {
        println!(
            "{}",
            serde_json::json!({"kills": report.kills, "batches_recovered": report.acked_batches, "in_flight_batches_recovered": report.in_flight_recovered, "recovered_with_pending_tail": report.recovered_with_pending_tail, "seconds": secs})
        );
    } else {
        println!(
            "{} kills in {secs:.1} s: every acknowledged batch recovered ({} batches in all; {} in-flight batches also made it, whole); {} recoveries opened with a pending tail; graph + tail = store and exact search agree every time",
            report.kills,
            report.acked_batches,
            report.in_flight_recovered,
            report.recovered_with_pending_tail
        );
    }
    Ok(())
}
