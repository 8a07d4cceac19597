//! Three-node clusters in one process, each node on its own simulated file system: writes
//! acknowledged by the cluster survive leader crashes (crash images, not clean stops) and
//! partitions, a partitioned old leader cannot acknowledge, a follower behind the purge
//! point catches up by snapshot, and randomized schedules of all of these lose nothing
//! (docs/REPLICATION.md, docs/PROPERTIES.md P23).

use std::collections::BTreeMap;
use std::time::Duration;

use vellum::DatabaseOptions;
use vellum_fs::{CrashModel, SimFs};
use vellum_raft::cluster::{Cluster, Storage, default_config};
use vellum_raft::{CollectionSpec, NodeId, PointData, Request, Response};

const DIM: usize = 8;
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

fn vector(id: u64, version: u64) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((id * 31 + d as u64 * 7 + version * 131) % 1000) as f32 / 100.0)
        .collect()
}

fn batch(first: u64, n: u64, version: u64) -> Request {
    Request::Upsert {
        collection: "docs".into(),
        points: (first..first + n)
            .map(|id| PointData {
                id,
                vector: vector(id, version),
                payload: Some(format!("v{version}").into_bytes()),
            })
            .collect(),
    }
}

fn options() -> DatabaseOptions {
    DatabaseOptions::default().with_background_checkpoints(false)
}

async fn three_nodes(config: openraft::Config) -> Cluster {
    let cluster = Cluster::new(config, options()).unwrap();
    for id in 1..=3 {
        cluster.start(id, Storage::Sim(SimFs::new())).await.unwrap();
    }
    cluster.initialize(1, &[1, 2, 3]).await.unwrap();
    let create = Request::CreateCollection {
        name: "docs".into(),
        spec: CollectionSpec::new(DIM as u32, "l2"),
    };
    let resp = cluster.write(create, WRITE_TIMEOUT).await;
    assert_eq!(resp, Some(Response::Applied { points: 0 }));
    cluster
}

/// Kills `id` into a crash image of its file system and starts it again on the image.
async fn crash_and_restart(cluster: &Cluster, id: NodeId, seed: u64) {
    let Some(Storage::Sim(fs)) = cluster.kill(id).await else {
        panic!("node {id} was not running on a simulated file system");
    };
    let image = fs
        .crash_images(&CrashModel::torn_512(), 1, seed)
        .next()
        .expect("one crash image");
    cluster.start(id, Storage::Sim(image)).await.unwrap();
}

/// Every acknowledged point (id -> version) is on every running node with its vector.
fn check_all_nodes(cluster: &Cluster, acked: &BTreeMap<u64, u64>) {
    for id in cluster.running() {
        let node = cluster.node(id).unwrap();
        let coll = node.sm.database().collection("docs").unwrap();
        for (pid, version) in acked {
            let p = coll
                .get(*pid)
                .unwrap()
                .unwrap_or_else(|| panic!("node {id} lost acknowledged point {pid}"));
            assert_eq!(p.vector, vector(*pid, *version), "node {id} point {pid}");
        }
    }
}

/// No two nodes hold different entries at one index.
async fn check_logs_agree(cluster: &Cluster) {
    use openraft::RaftLogReader;
    let mut seen: BTreeMap<u64, vellum_raft::LogId> = BTreeMap::new();
    for id in cluster.running() {
        let mut log = cluster.node(id).unwrap().log;
        for e in log.try_get_log_entries(0..u64::MAX).await.unwrap() {
            let prev = seen.insert(e.log_id.index, e.log_id);
            assert!(
                prev.is_none_or(|p| p == e.log_id),
                "index {}: {prev:?} and {:?}",
                e.log_id.index,
                e.log_id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acknowledged_by_the_cluster_survive_a_leader_crash() {
    let cluster = three_nodes(default_config()).await;
    let mut acked = BTreeMap::new();
    for b in 0..10u64 {
        let resp = cluster.write(batch(b * 10, 10, 1), WRITE_TIMEOUT).await;
        assert_eq!(resp, Some(Response::Applied { points: 10 }));
        acked.extend((b * 10..b * 10 + 10).map(|id| (id, 1)));
    }
    let leader = cluster.leader().unwrap();
    crash_and_restart(&cluster, leader, 7).await;
    for b in 10..20u64 {
        let resp = cluster.write(batch(b * 10, 10, 2), WRITE_TIMEOUT).await;
        assert_eq!(resp, Some(Response::Applied { points: 10 }));
        acked.extend((b * 10..b * 10 + 10).map(|id| (id, 2)));
    }
    assert!(cluster.wait_converged(Duration::from_secs(20)).await);
    check_all_nodes(&cluster, &acked);
    check_logs_agree(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_old_leader_cannot_acknowledge_a_write() {
    let cluster = three_nodes(default_config()).await;
    let old = cluster.leader().unwrap();
    cluster.router.isolate(old, true);
    let node = cluster.node(old).unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        node.raft.client_write(batch(0, 1, 9)),
    )
    .await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "an isolated leader acknowledged a write"
    );
    // The majority side elects a leader and goes on.
    let resp = cluster.write(batch(100, 5, 1), WRITE_TIMEOUT).await;
    assert_eq!(resp, Some(Response::Applied { points: 5 }));
    cluster.router.heal_all();
    assert!(cluster.wait_converged(Duration::from_secs(20)).await);
    let mut acked: BTreeMap<u64, u64> = (100..105).map(|id| (id, 1)).collect();
    // The unacknowledged write either never happened or happened everywhere.
    let coll = cluster
        .node(old)
        .unwrap()
        .sm
        .database()
        .collection("docs")
        .unwrap();
    if coll.get(0).unwrap().is_some() {
        acked.insert(0, 9);
    }
    check_all_nodes(&cluster, &acked);
    check_logs_agree(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_purge_point_catches_up_by_snapshot() {
    let config = openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(40),
        max_in_snapshot_log_to_keep: 0,
        ..default_config()
    };
    let cluster = three_nodes(config).await;
    let leader = cluster.leader().unwrap();
    let behind = (1..=3).find(|id| *id != leader).unwrap();
    // The follower goes down (its file system cut, as by a power loss) while the others
    // write on until the leader has snapshotted and purged past what the follower holds.
    let Some(Storage::Sim(fs)) = cluster.kill(behind).await else {
        panic!("node {behind} was running on a simulated file system");
    };
    let mut acked = BTreeMap::new();
    let mut b = 0u64;
    loop {
        let resp = cluster.write(batch(b * 5, 5, 3), WRITE_TIMEOUT).await;
        assert_eq!(resp, Some(Response::Applied { points: 5 }));
        acked.extend((b * 5..b * 5 + 5).map(|id| (id, 3)));
        b += 1;
        let purged = cluster
            .node(cluster.leader().unwrap())
            .unwrap()
            .log
            .state()
            .purged;
        if b >= 100 && purged.is_some_and(|p| p.index > 50) {
            break;
        }
        assert!(b < 2000, "the leader never purged its log");
    }
    let before = cluster.router.stats();
    // Small chunks, a fifth of them lost, in a shuffled order: the stream resends what the
    // receiver lacks.
    cluster.router.set_snapshot_chunk_bytes(16 << 10);
    cluster.router.set_faults(0.2, Duration::ZERO, 77);
    let image = fs
        .crash_images(&CrashModel::torn_512(), 1, 5)
        .next()
        .unwrap();
    cluster.start(behind, Storage::Sim(image)).await.unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(60)).await);
    cluster.router.set_faults(0.0, Duration::ZERO, 1);
    let after = cluster.router.stats();
    let sent = after.snapshot_bytes - before.snapshot_bytes;
    let lost = after.snapshot_chunks_lost - before.snapshot_chunks_lost;
    println!(
        "snapshot catch-up: {sent} archive bytes streamed to node {behind} after {b} batches, \
         {lost} chunks lost and sent again"
    );
    assert!(sent > 0, "the follower caught up by snapshot");
    assert!(lost > 0, "the loss was exercised");
    check_all_nodes(&cluster, &acked);
    // And it survives a crash right after.
    crash_and_restart(&cluster, behind, 3).await;
    assert!(cluster.wait_converged(Duration::from_secs(20)).await);
    check_all_nodes(&cluster, &acked);
}

/// One randomized schedule: writes, leader and follower crashes into crash images,
/// partitions, message loss and delays; at the end everything heals and converges.
async fn schedule(seed: u64, steps: u32) -> (u64, u64) {
    let config = openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(60),
        max_in_snapshot_log_to_keep: 5,
        ..default_config()
    };
    let cluster = three_nodes(config).await;
    cluster
        .router
        .set_faults(0.02, Duration::from_millis(3), seed);
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut crashes = 0;
    for step in 0..steps {
        match next() % 10 {
            0 => {
                // Crash the leader (or a random node) into a crash image.
                let victim = if next() % 2 == 0 {
                    cluster.leader().unwrap_or(1 + next() % 3)
                } else {
                    1 + next() % 3
                };
                if cluster.running().contains(&victim) && cluster.running().len() == 3 {
                    crash_and_restart(&cluster, victim, next()).await;
                    crashes += 1;
                }
            }
            1 => cluster.router.isolate(1 + next() % 3, true),
            2 => cluster.router.heal_all(),
            _ => {
                let first = (next() % 400) * 2;
                let version = u64::from(step) + 1;
                let n = 1 + next() % 8;
                let req = batch(first, n, version);
                if let Some(Response::Applied { .. }) =
                    cluster.write(req, Duration::from_secs(3)).await
                {
                    acked.extend((first..first + n).map(|id| (id, version)));
                }
            }
        }
    }
    cluster.router.heal_all();
    cluster.router.set_faults(0.0, Duration::ZERO, 1);
    // A last write through a settled leader, so every node has something to converge on.
    let resp = cluster.write(batch(10_000, 1, 1), WRITE_TIMEOUT).await;
    assert!(
        resp.is_some(),
        "seed {seed}: the healed cluster accepts writes"
    );
    acked.insert(10_000, 1);
    assert!(
        cluster.wait_converged(Duration::from_secs(30)).await,
        "seed {seed}: the healed cluster converges"
    );
    // Later writes replaced earlier versions: the newest acknowledged version wins, but an
    // unacknowledged later write may also have landed. Check the acknowledged ones that no
    // later attempt touched is too weak; instead every node must agree, and hold at least
    // every acknowledged id.
    check_logs_agree(&cluster).await;
    let nodes: Vec<_> = cluster.running();
    let reference = cluster
        .node(nodes[0])
        .unwrap()
        .sm
        .database()
        .collection("docs")
        .unwrap();
    for id in &nodes[1..] {
        let other = cluster
            .node(*id)
            .unwrap()
            .sm
            .database()
            .collection("docs")
            .unwrap();
        assert_eq!(
            reference.ids(),
            other.ids(),
            "seed {seed}: nodes hold different ids"
        );
        for pid in reference.ids() {
            assert_eq!(
                reference.get(pid).unwrap(),
                other.get(pid).unwrap(),
                "seed {seed} id {pid}"
            );
        }
    }
    for pid in acked.keys() {
        assert!(
            reference.get(*pid).unwrap().is_some(),
            "seed {seed}: acknowledged point {pid} is missing"
        );
    }
    (acked.len() as u64, crashes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_schedules_lose_no_acknowledged_write() {
    let count: u64 = std::env::var("VELLUM_RAFT_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let steps: u32 = std::env::var("VELLUM_RAFT_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let (mut points, mut crashes) = (0, 0);
    for seed in 1..=count {
        let (p, c) = schedule(seed, steps).await;
        points += p;
        crashes += c;
    }
    println!(
        "randomized schedules: {count} schedules of {steps} steps, {crashes} node crashes into \
         crash images, {points} acknowledged points checked on every node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_of_the_whole_cluster_loses_no_acknowledged_write() {
    // Every node crashes at once, right after the acknowledgements, into crash images that
    // keep any subset of the unsynced writes: only what a majority made durable survives,
    // which must include every acknowledged entry.
    for seed in 0..4u64 {
        let cluster = three_nodes(default_config()).await;
        let mut acked = BTreeMap::new();
        for b in 0..20u64 {
            let resp = cluster
                .write(batch(b * 4, 4, seed + 1), WRITE_TIMEOUT)
                .await;
            assert_eq!(resp, Some(Response::Applied { points: 4 }));
            acked.extend((b * 4..b * 4 + 4).map(|id| (id, seed + 1)));
        }
        let mut images = Vec::new();
        for id in 1..=3 {
            let Some(Storage::Sim(fs)) = cluster.kill(id).await else {
                panic!("node {id} was running on a simulated file system");
            };
            let image = fs
                .crash_images(&CrashModel::any_subset(), 1, seed * 10 + id)
                .next()
                .unwrap();
            images.push((id, image));
        }
        for (id, image) in images {
            cluster.start(id, Storage::Sim(image)).await.unwrap();
        }
        let resp = cluster.write(batch(1000, 1, 1), WRITE_TIMEOUT).await;
        assert!(
            resp.is_some(),
            "seed {seed}: the restarted cluster accepts writes"
        );
        acked.insert(1000, 1);
        assert!(cluster.wait_converged(Duration::from_secs(20)).await);
        check_all_nodes(&cluster, &acked);
        check_logs_agree(&cluster).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_is_acknowledged_before_a_majority_synced_it() {
    let cluster = three_nodes(default_config()).await;
    // Hold the Raft log's next sync on every node: appends become readable, none durable.
    let pauses: Vec<_> = (1..=3)
        .map(|id| match cluster.node(id).unwrap().storage {
            Storage::Sim(fs) => fs.pause_at(vellum_wal::fail_points::BEFORE_GROUP_SYNC),
            Storage::Real(_) => unreachable!("simulated nodes"),
        })
        .collect();
    let resp = cluster.write(batch(0, 3, 1), Duration::from_secs(2)).await;
    assert_eq!(
        resp, None,
        "a write was acknowledged while no node could sync it"
    );
    for p in &pauses {
        p.resume();
    }
    let resp = cluster.write(batch(10, 3, 1), WRITE_TIMEOUT).await;
    assert_eq!(resp, Some(Response::Applied { points: 3 }));
    assert!(cluster.wait_converged(Duration::from_secs(20)).await);
    check_all_nodes(&cluster, &(10..13).map(|id| (id, 1)).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_is_promoted_and_a_member_is_removed() {
    let cluster = three_nodes(default_config()).await;
    let mut acked = BTreeMap::new();
    for b in 0..10u64 {
        assert!(
            cluster
                .write(batch(b * 10, 10, 1), WRITE_TIMEOUT)
                .await
                .is_some()
        );
        acked.extend((b * 10..b * 10 + 10).map(|id| (id, 1)));
    }
    cluster.start(4, Storage::Sim(SimFs::new())).await.unwrap();
    cluster.add_learner(4).await.unwrap();
    let leader = cluster.leader().unwrap();
    let leaving = (1..=3).find(|id| *id != leader).unwrap();
    let voters: Vec<NodeId> = (1..=4).filter(|id| *id != leaving).collect();
    cluster.change_voters(&voters).await.unwrap();
    cluster.kill(leaving).await;
    for b in 10..15u64 {
        assert!(
            cluster
                .write(batch(b * 10, 10, 1), WRITE_TIMEOUT)
                .await
                .is_some()
        );
        acked.extend((b * 10..b * 10 + 10).map(|id| (id, 1)));
    }
    // The new member counts towards the quorum: with the old leader gone, 2 of 3 remain.
    let old_leader = cluster.leader().unwrap();
    crash_and_restart(&cluster, old_leader, 9).await;
    assert!(
        cluster
            .write(batch(500, 1, 1), WRITE_TIMEOUT)
            .await
            .is_some()
    );
    acked.insert(500, 1);
    assert!(cluster.wait_converged(Duration::from_secs(20)).await);
    check_all_nodes(&cluster, &acked);
    let m = cluster.node(4).unwrap().raft.metrics().borrow().clone();
    let members: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    assert_eq!(members, voters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_need_a_quorum_and_local_reads_may_be_stale() {
    use vellum_raft::{ReadMode, database_for_read};
    let cluster = three_nodes(default_config()).await;
    assert!(cluster.write(batch(0, 2, 1), WRITE_TIMEOUT).await.is_some());
    let old = cluster.node(cluster.leader().unwrap()).unwrap();
    let db = database_for_read(&old.raft, &old.sm, ReadMode::Linearizable)
        .await
        .unwrap();
    assert!(db.collection("docs").unwrap().get(1).unwrap().is_some());
    // Cut off, the old leader refuses linearizable reads but serves local (stale) ones.
    cluster.router.isolate(old.raft.metrics().borrow().id, true);
    assert!(
        cluster
            .write(batch(100, 1, 1), WRITE_TIMEOUT)
            .await
            .is_some()
    );
    let refused = tokio::time::timeout(
        Duration::from_secs(3),
        database_for_read(&old.raft, &old.sm, ReadMode::Linearizable),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a cut-off node served a linearizable read"
    );
    let local = database_for_read(&old.raft, &old.sm, ReadMode::Local)
        .await
        .unwrap();
    let coll = local.collection("docs").unwrap();
    assert!(coll.get(1).unwrap().is_some());
    assert!(
        coll.get(100).unwrap().is_none(),
        "the local read is stale, as documented"
    );
    // On the new leader, a linearizable read sees the newer write.
    let new = cluster.node(cluster.leader().unwrap()).unwrap();
    let db = database_for_read(&new.raft, &new.sm, ReadMode::Linearizable)
        .await
        .unwrap();
    assert!(db.collection("docs").unwrap().get(100).unwrap().is_some());
}
