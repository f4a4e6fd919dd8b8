//! raft_kv under partitions, as three processes on loopback (`tests/common/raft.rs`):
//! a PUT to a leader cut off from its followers is answered (504, "outcome unknown")
//! within the request deadline, not held for the length of the partition, and a GET at
//! the deadline too (not at once, for one missed round of heartbeats); and a follower
//! cut off for seconds comes back without forcing an election (the term and the leader
//! are unchanged).
//!
//! A node is cut off by freezing the others (`SIGSTOP`, then `SIGCONT`): to the node left
//! running its peers are exactly as unreachable as behind a broken network (connections
//! open into the kernel's backlog and nothing ever answers). The frozen nodes do not see
//! time pass; raft_kv's election timer does not count time in which it did not run
//! (`examples/raft_kv/prevote.rs`), so they neither.

#[path = "common/raft.rs"]
mod raft;

use raft::{client, put, raft_state, started_cluster, Node};
use reqwest::StatusCode;
use rustix::process::{kill_process, Pid, Signal};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a partition lasts: several times the request deadline and the election timeout.
const PARTITION: Duration = Duration::from_secs(6);
/// raft_kv's default `--request-timeout-ms`, and the slack allowed above it for a loaded
/// machine.
const REQUEST_DEADLINE: Duration = Duration::from_millis(2_000);
const SLACK: Duration = Duration::from_millis(1_000);

/// Sends `sig` to node `n`'s process.
fn signal(n: &Node, sig: Signal) {
    let child = n.child.as_ref().expect("the node runs");
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    kill_process(pid, sig).expect("signal raft_kv");
}

/// Freezes every node but `keep` (returns their indexes).
fn isolate(nodes: &[Node], keep: usize) -> Vec<usize> {
    let others: Vec<usize> = (0..nodes.len()).filter(|&i| i != keep).collect();
    for &i in &others {
        signal(&nodes[i], Signal::STOP);
    }
    others
}

fn resume(nodes: &[Node], frozen: &[usize]) {
    for &i in frozen {
        signal(&nodes[i], Signal::CONT);
    }
}

/// Sends the request `build` makes to the node at index `lead` while every other node is
/// frozen, with a client that would wait out the partition (the bound must come from the
/// server); the answer and how long it took.
async fn sent_while_isolated(
    nodes: &[Node],
    lead: usize,
    build: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
) -> (reqwest::Result<reqwest::Response>, Duration) {
    let frozen = isolate(nodes, lead);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PARTITION + Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let sent = Instant::now();
    let answer = build(&http).send().await;
    let took = sent.elapsed();
    resume(nodes, &frozen);
    (answer, took)
}

/// A started cluster, its addresses, and one acknowledged write; the leader's index.
async fn started(root: &std::path::Path) -> (Vec<Node>, Vec<SocketAddr>, usize) {
    let (nodes, addrs, lead) = started_cluster(root, &[]).await;
    let http = client();
    let mut hint = (lead - 1) as usize;
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while !put(&http, &addrs, &mut hint, "warm", "up").await {
        assert!(Instant::now() < deadline, "no write acknowledged");
    }
    (nodes, addrs, hint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_an_isolated_leader_is_answered_within_the_deadline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, lead) = started(tmp.path()).await;
    let url = format!("http://{}/kv/cut-off", addrs[lead]);
    let (answer, took) =
        sent_while_isolated(&nodes, lead, |http| http.put(url).body("maybe")).await;
    let answer = answer.expect("the leader answers");
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    assert!(
        took <= REQUEST_DEADLINE + SLACK,
        "answered {status} after {took:?}, the deadline is {REQUEST_DEADLINE:?} (partition {PARTITION:?})"
    );
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "body {body}");
    assert_eq!(body["outcome"], "unknown", "body {body}");
    // The partition ends: the cluster takes writes again.
    let http = client();
    let mut hint = lead;
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while !put(&http, &addrs, &mut hint, "after", "heal").await {
        assert!(Instant::now() < deadline, "no write after the partition");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_at_an_isolated_leader_is_answered_at_the_deadline_as_a_put_is() {
    // A round of heartbeats that misses a quorum is asked again until the deadline (504),
    // as docs/replication.md says; it was answered 503 "not enough for a quorum" at once
    // (found by a probe: 3 of 3 with both followers paused, and 1 read in 28,597 on a
    // healthy cluster, 6 in 6,848 under load).
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, lead) = started(tmp.path()).await;
    let url = format!("http://{}/kv/warm", addrs[lead]);
    let (answer, took) = sent_while_isolated(&nodes, lead, |http| http.get(url)).await;
    let status = answer.expect("the leader answers").status();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "after {took:?}");
    assert!(
        took >= REQUEST_DEADLINE - Duration::from_millis(100) && took <= REQUEST_DEADLINE + SLACK,
        "answered {status} after {took:?}, the deadline is {REQUEST_DEADLINE:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_back_from_isolation_forces_no_election() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, lead) = started(tmp.path()).await;
    let http = client();
    let before = raft_state(&http, addrs[lead])
        .await
        .expect("the leader's state");
    let follower = (lead + 1) % addrs.len();
    let frozen = isolate(&nodes, follower);
    tokio::time::sleep(PARTITION).await;
    let cut_off = raft_state(&http, addrs[follower])
        .await
        .expect("the follower's state");
    resume(&nodes, &frozen);
    // Heartbeats reach the follower again; writes go on.
    let mut hint = lead;
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while !put(&http, &addrs, &mut hint, "after", "heal").await {
        assert!(Instant::now() < deadline, "no write after the partition");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for addr in &addrs {
        let now = raft_state(&http, *addr).await.expect("a node's state");
        assert_eq!(
            (now["term"].clone(), now["leader"].clone()),
            (before["term"].clone(), before["leader"].clone()),
            "node {}: term and leader before the partition {before}, now {now}; the isolated \
             follower was at term {} when cut off",
            now["id"],
            cut_off["term"]
        );
    }
}
