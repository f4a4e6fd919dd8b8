//! The raft_kv example as a three-process cluster on loopback: concurrent clients PUT
//! while, round after round, a node chosen by a seeded RNG (the leader in most rounds) is
//! killed with SIGKILL; the others elect a leader and keep taking writes; the killed node
//! restarts from its directory and catches up; at the end every acknowledged PUT reads
//! back from the leader with its last acknowledged value.
//!
//! The nodes are the example binary (`target/<profile>/examples/raft_kv`, built by
//! `cargo build --example raft_kv`, a no-op when fresh; tests/common/raft.rs), sharing a
//! secret file made for the run. Every request has a timeout, every wait a deadline, and a
//! guard kills the processes whatever happens. `RAFT_CLUSTER_SEED=N` replays a run (the seed is printed).

#[path = "common/raft.rs"]
mod raft;

use raft::{client, cluster, leader, put, raft_state, Node, WAIT_TIMEOUT};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kill rounds.
const ROUNDS: usize = 3;
/// Concurrent writers.
const CLIENTS: usize = 8;
/// Keys each writer cycles through (its own: no two writers share a key).
const KEYS_PER_CLIENT: u64 = 25;
/// Acknowledged writes that must follow each kill before the round goes on.
const WRITES_AFTER_KILL: u64 = 30;
/// Snapshot every this many entries: small, so purges and snapshot installs happen (PUTs
/// that meet are one entry: a few hundred PUTs make about a hundred entries).
const SNAPSHOT_LOGS: &str = "30";

/// splitmix64: a small seeded generator, enough to choose victims reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one writer saw for one key: the last value acknowledged, and values whose PUT
/// failed after it (each may or may not have been committed).
#[derive(Debug, Default, Clone)]
struct KeyLog {
    acked: Option<String>,
    unsure_after: Vec<String>,
}

/// One writer: its own keys in turn, each write retried with a fresh value until
/// acknowledged, until `stop`.
async fn writer(
    c: usize,
    addrs: Arc<Vec<SocketAddr>>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> HashMap<String, KeyLog> {
    let http = client();
    let mut log: HashMap<String, KeyLog> = HashMap::new();
    let mut hint = c % addrs.len();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("c{c}-k{}", seq % KEYS_PER_CLIENT);
        loop {
            seq += 1;
            let value = format!("c{c}-v{seq}");
            let ok = put(&http, &addrs, &mut hint, &key, &value).await;
            let entry = log.entry(key.clone()).or_default();
            if ok {
                entry.acked = Some(value);
                entry.unsure_after.clear();
                acks.fetch_add(1, Ordering::Relaxed);
                break;
            }
            entry.unsure_after.push(value);
            if stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    log
}

/// The HTTP contract besides PUT and GET on the leader: a follower redirects to the
/// leader; `/raft/state`, `/metrics` and `/health` say what they must.
async fn check_interface(http: &reqwest::Client, addrs: &[SocketAddr], lead: u64) {
    let leader_addr = addrs[(lead - 1) as usize];
    let follower = addrs[(lead % 3) as usize];
    // A follower learns of a new leader from its first heartbeat; until then it answers
    // 503 `{"leader": null}`, which is right too. Wait for it to name the leader.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let known = raft_state(http, follower).await;
        if known.as_ref().and_then(|s| s["leader"].as_u64()) == Some(lead) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "follower {follower} names no leader within {WAIT_TIMEOUT:?}: {known:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (method, body) in [(reqwest::Method::PUT, "v"), (reqwest::Method::GET, "")] {
        let r = http
            .request(method.clone(), format!("http://{follower}/kv/probe"))
            .body(body)
            .send()
            .await
            .expect("a follower answers");
        assert_eq!(
            r.status(),
            StatusCode::TEMPORARY_REDIRECT,
            "{method} on a follower"
        );
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert_eq!(
            location,
            format!("http://{leader_addr}/kv/probe"),
            "{method} on a follower"
        );
    }
    let r = http
        .get(format!("http://{leader_addr}/kv/probe"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a key never written");
    let state = raft_state(http, follower).await.expect("/raft/state");
    for field in ["id", "leader", "term", "last_log_index", "last_applied"] {
        assert!(state[field].is_u64(), "/raft/state lacks {field}: {state}");
    }
    assert_eq!(state["leader"].as_u64(), Some(lead), "{state}");
    let metrics = http
        .get(format!("http://{leader_addr}/metrics"))
        .send()
        .await
        .expect("/metrics");
    let metrics = metrics.text().await.expect("a body");
    for name in [
        "raft_term",
        "raft_last_applied_index",
        "raft_is_leader 1",
        "actix_wal_flushes_total",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "/metrics lacks {name}"
        );
    }
    let health = http
        .get(format!("http://{leader_addr}/health"))
        .send()
        .await
        .expect("/health");
    assert_eq!(health.status(), StatusCode::OK, "/health");
}

/// Waits until `acks` passes `target`.
async fn wait_acks(acks: &AtomicU64, target: u64, what: &str) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    while acks.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "{what}: writes stalled at {}",
            acks.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_kills_and_restarts() {
    let seed = match std::env::var("RAFT_CLUSTER_SEED") {
        Ok(s) => s.parse().expect("RAFT_CLUSTER_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    println!("raft_cluster seed {seed} (RAFT_CLUSTER_SEED={seed} replays the choices)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = cluster(tmp.path(), &["--snapshot-logs", SNAPSHOT_LOGS]);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        node.start(i == 0);
    }
    let http = client();
    let (first, _, _) = leader(&http, &addrs, None).await;
    println!("leader {first}");
    check_interface(&http, &addrs, first).await;

    let addrs = Arc::new(addrs);
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(writer(c, addrs.clone(), stop.clone(), acks.clone())))
        .collect();

    let mut leader_kills = 0;
    for round in 0..ROUNDS {
        // Mid-load: some writes acknowledged since the last round.
        wait_acks(
            &acks,
            acks.load(Ordering::Relaxed) + WRITES_AFTER_KILL,
            "before the kill",
        )
        .await;
        let (lead, term, _) = leader(&http, &addrs, None).await;
        // The leader in round 0 and two rounds in three; otherwise a follower.
        let victim = if round == 0 || rng.below(3) < 2 {
            lead
        } else {
            let followers: Vec<u64> = (1..=3).filter(|&id| id != lead).collect();
            followers[rng.below(2) as usize]
        };
        let v = (victim - 1) as usize;
        nodes[v].kill();
        let killed_at = Instant::now();
        let live: Vec<SocketAddr> = addrs.iter().copied().filter(|a| *a != addrs[v]).collect();
        let (new_lead, new_term, _) = leader(&http, &live, Some(victim)).await;
        if victim == lead {
            leader_kills += 1;
            assert!(
                new_term > term,
                "round {round}: a new leader needs a new term"
            );
        }
        wait_acks(
            &acks,
            acks.load(Ordering::Relaxed) + WRITES_AFTER_KILL,
            "after the kill",
        )
        .await;
        println!(
            "round {round}: killed node {victim} ({}), leader {new_lead} term {new_term}, writes resumed after {:?}",
            if victim == lead { "the leader" } else { "a follower" },
            killed_at.elapsed()
        );
        // Restart from its directory; it catches up to what the leader applied by then.
        nodes[v].start(v == 0);
        let (_, _, target) = leader(&http, &addrs, None).await;
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let applied = raft_state(&http, addrs[v])
                .await
                .and_then(|s| s["last_applied"].as_u64());
            if applied.is_some_and(|a| a >= target) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: node {victim} stuck at {applied:?} < {target}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(leader_kills >= 1, "no round killed the leader");

    stop.store(true, Ordering::Relaxed);
    let mut logs: HashMap<String, KeyLog> = HashMap::new();
    for w in writers {
        logs.extend(w.await.expect("writer task"));
    }
    let total = acks.load(Ordering::Relaxed);
    assert!(
        total >= (ROUNDS as u64) * 2 * WRITES_AFTER_KILL,
        "only {total} writes acknowledged"
    );

    // Every key reads back from the leader with its last acknowledged value (or with a
    // value written after it whose PUT failed, which may have been committed).
    let (lead, _, _) = leader(&http, &addrs, None).await;
    let at = addrs[(lead - 1) as usize];
    let (mut strict, mut checked) = (0, 0);
    for (key, log) in &logs {
        let Some(acked) = &log.acked else { continue };
        let r = http
            .get(format!("http://{at}/kv/{key}"))
            .send()
            .await
            .expect("GET from the leader");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{key}: acknowledged as {acked}, not found on the leader"
        );
        let got = r.text().await.expect("a body");
        if log.unsure_after.is_empty() {
            strict += 1;
            assert_eq!(&got, acked, "{key}: the last acknowledged value");
        } else {
            assert!(
                &got == acked || log.unsure_after.contains(&got),
                "{key}: read {got}, acknowledged {acked}, unsure after it {:?}",
                log.unsure_after
            );
        }
        checked += 1;
    }
    assert!(
        checked > 0 && strict * 2 >= checked,
        "{strict} of {checked} keys checked strictly"
    );
    // Every node, restarted ones included, holds the same map once it applied as far.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let states = loop {
        let mut states = Vec::new();
        for addr in addrs.iter() {
            states.push(raft_state(&http, *addr).await.expect("every node answers"));
        }
        let applied: Vec<_> = states.iter().map(|s| s["last_applied"].as_u64()).collect();
        if applied.iter().all(|a| *a == applied[0]) {
            break states;
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge: {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for s in &states {
        let keys = s["keys"].as_u64().expect("/raft/state has keys") as usize;
        assert!(
            keys >= checked,
            "node {} holds {keys} keys, {checked} were acknowledged: {s}",
            s["id"]
        );
        assert_eq!(
            s["keys"], states[0]["keys"],
            "nodes disagree on the map: {states:?}"
        );
    }
    // The log was purged below a snapshot somewhere (SNAPSHOT_LOGS is small).
    let state = raft_state(&http, at).await.expect("the leader's state");
    assert!(
        state["snapshot"].as_u64().is_some(),
        "no snapshot after {total} writes: {state}"
    );
    println!("{total} writes acknowledged; {checked} keys read back from leader {lead} ({strict} with no failed write after the last ack); leader state {state}");
}
