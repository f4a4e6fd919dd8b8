//! Idempotent PUTs of raft_kv (`Client-Id` and `Client-Seq`, examples/raft_kv/dedup.rs),
//! as three processes on loopback (`tests/common/raft.rs`): a retry is applied once and
//! answered with the first result, after a leader change, after a snapshot that purged
//! the first write's entry and a restart of every node, and after a 504 "outcome
//! unknown" from a leader cut off (its followers `SIGSTOP`ped). Each retry carries another
//! body: had it been applied again, the key would read back the retry's body.

#[path = "common/raft.rs"]
mod raft;

use raft::{client, cluster, leader, put, raft_state, Node, WAIT_TIMEOUT};
use reqwest::StatusCode;
use rustix::process::{kill_process, Pid, Signal};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Plain writes after the idempotent one: enough entries for snapshots (every 5) to purge
/// its entry.
const FILLER_WRITES: usize = 40;

/// PUTs `value` with `Client-Id: client` and `Client-Seq: seq`, following 307s and trying
/// the nodes in turn, until a 200: the entry index it reports and whether it says replay.
async fn put_once(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    key: &str,
    value: &str,
    client: &str,
    seq: u64,
) -> (u64, bool) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let mut at = 0;
    loop {
        let sent = http
            .put(format!("http://{}/kv/{key}", addrs[at]))
            .header("Client-Id", client)
            .header("Client-Seq", seq.to_string())
            .body(value.to_owned())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::OK => {
                let index = r.headers()["x-raft-index"]
                    .to_str()
                    .ok()
                    .and_then(|i| i.parse().ok())
                    .expect("x-raft-index");
                return (index, r.headers().contains_key("x-idempotent-replay"));
            }
            Ok(r) if r.status() == StatusCode::TEMPORARY_REDIRECT => {
                let to = r.headers()["location"].to_str().unwrap_or("").to_owned();
                if let Some(i) = addrs
                    .iter()
                    .position(|a| to.starts_with(&format!("http://{a}/")))
                {
                    at = i;
                    continue;
                }
                at = (at + 1) % addrs.len();
            }
            _ => at = (at + 1) % addrs.len(),
        }
        assert!(Instant::now() < deadline, "PUT {key} not acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `key` as read (linearizably) from the leader, found among `addrs`.
async fn read(http: &reqwest::Client, addrs: &[SocketAddr], key: &str) -> String {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        for addr in addrs {
            let url = format!("http://{addr}/kv/{key}");
            if let Ok(r) = http.get(url).send().await {
                if r.status() == StatusCode::OK {
                    return r.text().await.expect("body");
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "GET {key}: no leader answered 200"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_all(nodes: &mut [Node]) {
    for (i, n) in nodes.iter_mut().enumerate() {
        n.start(i == 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_leader_change_is_applied_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(tmp.path(), &[]);
    start_all(&mut nodes);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let http = client();
    let (first, replay) = put_once(&http, &addrs, "k", "first", "c1", 1).await;
    assert!(!replay, "the first attempt is no replay");
    let (old, _, _) = leader(&http, &addrs, None).await;
    nodes[(old - 1) as usize].kill();
    let live: Vec<SocketAddr> = nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| n.addr)
        .collect();
    let (new, _, _) = leader(&http, &live, Some(old)).await;
    assert_ne!(new, old);
    let (again, replay) = put_once(&http, &live, "k", "second", "c1", 1).await;
    assert_eq!(
        (again, replay),
        (first, true),
        "the retry is answered with the first write's entry"
    );
    assert_eq!(read(&http, &live, "k").await, "first");
    // A new seq of the same client is a new write.
    let (third, replay) = put_once(&http, &live, "k", "third", "c1", 2).await;
    assert!(third > first && !replay, "seq 2 applied at {third}");
    assert_eq!(read(&http, &live, "k").await, "third");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_snapshot_and_a_restart_is_applied_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(tmp.path(), &["--snapshot-logs", "5"]);
    start_all(&mut nodes);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let http = client();
    let (first, _) = put_once(&http, &addrs, "k", "first", "c1", 7).await;
    let mut hint = 0;
    for i in 0..FILLER_WRITES {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while !put(&http, &addrs, &mut hint, &format!("f{i}"), "x").await {
            assert!(Instant::now() < deadline, "filler write {i}");
        }
    }
    // Every node's log must have lost the first write's entry: only the snapshot's table
    // can know it after the restart.
    for addr in &addrs {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let s = raft_state(&http, *addr).await.expect("state");
            if s["purged"].as_u64().is_some_and(|p| p >= first) {
                break;
            }
            assert!(Instant::now() < deadline, "{addr} kept entry {first}: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for n in nodes.iter_mut() {
        n.kill();
    }
    start_all(&mut nodes);
    let (again, replay) = put_once(&http, &addrs, "k", "second", "c1", 7).await;
    assert_eq!((again, replay), (first, true), "after the restart");
    assert_eq!(read(&http, &addrs, "k").await, "first");
}

/// Sends `sig` to node `n`'s process.
fn signal(n: &Node, sig: Signal) {
    let child = n.child.as_ref().expect("the node runs");
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    kill_process(pid, sig).expect("signal raft_kv");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_an_outcome_unknown_gets_the_first_result() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(tmp.path(), &["--request-timeout-ms", "500"]);
    start_all(&mut nodes);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let http = client();
    put_once(&http, &addrs, "warm", "up", "c0", 1).await;
    let (lead, _, _) = leader(&http, &addrs, None).await;
    let lead = (lead - 1) as usize;
    let followers: Vec<usize> = (0..3).filter(|&i| i != lead).collect();
    for &i in &followers {
        signal(&nodes[i], Signal::STOP);
    }
    let cut_off = http
        .put(format!("http://{}/kv/k", addrs[lead]))
        .header("Client-Id", "c1")
        .header("Client-Seq", "1")
        .body("first")
        .send()
        .await;
    for &i in &followers {
        signal(&nodes[i], Signal::CONT);
    }
    let cut_off = cut_off.expect("answered");
    assert_eq!(cut_off.status(), StatusCode::GATEWAY_TIMEOUT);
    // The entry is in the leader's log; once the followers are back it commits, and the
    // retry (another body) is answered with it.
    let (index, replay) = put_once(&http, &addrs, "k", "second", "c1", 1).await;
    assert!(
        replay,
        "the retry reports the first attempt's entry {index}"
    );
    assert_eq!(read(&http, &addrs, "k").await, "first");
}
