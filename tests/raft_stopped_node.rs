//! A raft_kv node whose Raft core stopped (openraft returned a `Fatal` error: here its log
//! lost its active segment, so its next append failed) stays up, serves nothing and takes
//! no part in elections: it grants no pre-vote, so a candidate that cannot win (its only
//! other voter stopped) never raises its term; and it answers client PUTs and GETs 503
//! `{"error": "stopped", "leader": ...}`, never a 307 (docs/replication.md, "Errors"): a
//! stopped follower names the leader it last knew, a stopped leader names none.
//!
//! Three processes on loopback (`tests/common/raft.rs`). A follower's core is stopped by
//! deleting its log's segments while the leader writes: the log's writer finds its
//! segment has no name after the next fsync and fails the batch (`FileRemoved`), and
//! openraft stops the node on that `StorageError`.

#[path = "common/raft.rs"]
mod raft;

use raft::{client, put, raft_state, started_cluster, Node};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the survivor is watched once the leader is gone: several election attempts
/// (tests run with `--election-ms 500`: a first attempt after 1 to 1.5 s of silence, then
/// one every 0.5 to 1 s).
const WATCH: Duration = Duration::from_secs(6);

/// A node's `/raft/state` field `key` as a number (0 if absent).
async fn state_u64(http: &reqwest::Client, addr: SocketAddr, key: &str) -> u64 {
    let s = raft_state(http, addr).await.expect("the node answers");
    s[key].as_u64().unwrap_or(0)
}

/// Stops the Raft core of the node at index `victim` (not the leader): deletes its log's
/// segments, then writes through the leader (index `lead`) until the node says its core
/// no longer runs.
async fn stop_core(nodes: &[Node], addrs: &[SocketAddr], victim: usize, lead: usize) {
    let log = nodes[victim].dir.join("log");
    for entry in std::fs::read_dir(&log).expect("read the victim's log directory") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "wal") {
            std::fs::remove_file(&path).expect("delete a segment");
        }
    }
    let http = client();
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    for i in 0.. {
        let s = raft_state(&http, addrs[victim])
            .await
            .expect("the victim answers");
        if s["running"] == false {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} still runs after its segments were deleted: {s}",
            nodes[victim].id
        );
        let mut hint = lead;
        put(&http, addrs, &mut hint, &format!("stop-{i}"), "x").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_grants_no_pre_vote_so_a_lone_candidate_keeps_its_term() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut nodes, addrs, lead) = started_cluster(tmp.path(), &[]).await;
    let lead = (lead - 1) as usize;
    let (stopped, survivor) = ((lead + 1) % 3, (lead + 2) % 3);
    stop_core(&nodes, &addrs, stopped, lead).await;
    let http = client();
    let term = state_u64(&http, addrs[survivor], "term").await;
    // The leader goes: the survivor hears no one and asks for pre-votes. The stopped node
    // cannot vote in the election itself, so a pre-vote granted by it would let the
    // survivor stand, again and again, each time at a higher term it cannot win.
    nodes[lead].kill();
    let deadline = Instant::now() + WATCH;
    while Instant::now() < deadline {
        let now = state_u64(&http, addrs[survivor], "term").await;
        assert_eq!(
            now, term,
            "node {} raised its term from {term} to {now} with the leader gone and node {}'s \
             core stopped: the stopped node granted its pre-vote",
            nodes[survivor].id, nodes[stopped].id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Status, JSON body (null if not JSON) and text of the answer to `req`.
async fn answer_of(req: reqwest::RequestBuilder) -> (StatusCode, serde_json::Value, String) {
    let answer = req.send().await.expect("the stopped node answers");
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_default();
    (status, body, text)
}

/// A PUT and a GET at the stopped node `at` (`who`, for messages) are both answered 503
/// `"stopped"` naming `leader`: the PUT came after the stop, so it was never proposed; a
/// read has no outcome.
async fn assert_refused(
    http: &reqwest::Client,
    at: SocketAddr,
    who: &str,
    leader: serde_json::Value,
) {
    let url = format!("http://{at}/kv/stopped");
    for (what, req, outcome) in [
        (
            "PUT",
            http.put(&url).body("value"),
            serde_json::json!("not applied"),
        ),
        ("GET", http.get(&url), serde_json::Value::Null),
    ] {
        let (status, body, text) = answer_of(req).await;
        assert_eq!(
            (status, &body["error"], &body["leader"], &body["outcome"]),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!("stopped"),
                &leader,
                &outcome
            ),
            "{what} at the stopped {who}: {status} {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_answers_503_stopped_naming_the_leader_it_last_knew() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, leader_id) = started_cluster(tmp.path(), &[]).await;
    let lead = (leader_id - 1) as usize;
    let stopped = (lead + 1) % 3;
    stop_core(&nodes, &addrs, stopped, lead).await;
    let http = client();
    assert_refused(
        &http,
        addrs[stopped],
        "follower",
        serde_json::json!(leader_id),
    )
    .await;
    // The rest of the cluster serves on.
    let mut hint = lead;
    assert!(
        put(&http, &addrs, &mut hint, "after", "stop").await,
        "the leader took no write after a follower stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_answers_503_stopped_naming_no_leader_and_the_others_go_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, leader_id) = started_cluster(tmp.path(), &[]).await;
    let lead = (leader_id - 1) as usize;
    stop_core(&nodes, &addrs, lead, lead).await;
    let http = client();
    // Its frozen metrics still name itself the leader: a 307 would send the client back to
    // it, so it names no leader (null).
    assert_refused(&http, addrs[lead], "leader", serde_json::Value::Null).await;
    // The other two elect a leader among themselves and take writes.
    let others: Vec<SocketAddr> = (0..3).filter(|&i| i != lead).map(|i| addrs[i]).collect();
    let (new_lead, _, _) = raft::leader(&http, &others, Some(leader_id)).await;
    assert_ne!(new_lead, leader_id);
    let mut hint = 0;
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while !put(&http, &others, &mut hint, "after", "stop").await {
        assert!(
            Instant::now() < deadline,
            "no write taken by the others after the leader stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What the stopped node last knew is frozen; it still names no leader after the
    // election it took no part in.
    let url = format!("http://{}/kv/stopped", addrs[lead]);
    let (status, body, text) = answer_of(http.get(&url)).await;
    assert_eq!(
        (status, &body["error"], &body["leader"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!("stopped"),
            &serde_json::Value::Null
        ),
        "GET at the stopped leader after the others elected node {new_lead}: {status} {text}"
    );
}
