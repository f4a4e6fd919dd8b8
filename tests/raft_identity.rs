//! raft_kv's node identity: a node that lost its directory is not the member it was.
//!
//! A voter whose directory is deleted and which is started again under its old id, with
//! its old command line (no `--join`), has forgotten its log and its vote. Were it taken
//! for the member it was, it could vote twice in one term, and the leader would see a
//! follower's log go back (openraft 0.9.25's leader panics on that in a debug build:
//! `follower log reversion is not allowed`). Here the cluster keeps taking writes, the
//! leader keeps running, and the restarted node is never sent an entry, a snapshot or a
//! vote request it obeys: its term stays 0 and its log empty. The node that was started
//! with `--init`, started again with it, makes a cluster of its own whose vote requests
//! the others refuse: their leader and term stay as they were. A peer that is down while
//! `--init` runs is named with incarnation 0 until it answers the leader, then with its
//! own, and is refused as any member once it lost its directory. A node whose identity
//! file is missing, damaged or another node's refuses to start; put back, it rejoins.
//!
//! The nodes are the example binary (tests/common/raft.rs); every request has a timeout,
//! every wait a deadline, and the `Node` guards kill the processes whatever happens.

#[path = "common/raft.rs"]
mod raft;

use raft::{client, cluster, leader, put, raft_state};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Keys written before the node loses its directory, and again after it is back.
const KEYS: usize = 20;
/// How long the cluster runs with the restarted node among its members.
const WATCH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_directory_is_refused_under_its_old_id() {
    lose_a_directory(Lost::Follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_init_node_that_lost_its_directory_starts_no_second_cluster() {
    lose_a_directory(Lost::InitNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_at_init_is_named_once_it_answers_and_then_refused_when_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(tmp.path(), &[]);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    // Node 3 is down while node 1 initializes: two of three answer, which is a majority.
    nodes[0].start(true);
    nodes[1].start(false);
    let http = client();
    let (lead, _, _) = leader(&http, &addrs[..2], None).await;
    let mut hint = lead as usize - 1;
    for i in 0..KEYS {
        put_until(&http, &addrs[..2], &mut hint, i).await;
    }
    assert_eq!(
        incarnation_of(&http, addrs[lead as usize - 1], 3).await,
        "0"
    );
    nodes[2].start(false);
    // The leader names it within a few of its rounds.
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while incarnation_of(&http, addrs[lead as usize - 1], 3).await == "0" {
        assert!(Instant::now() < deadline, "node 3 never named");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let named = incarnation_of(&http, addrs[lead as usize - 1], 3).await;
    // Named, it is refused once it lost its directory, as any member.
    nodes[2].kill();
    std::fs::remove_dir_all(&nodes[2].dir).expect("delete node 3's directory");
    nodes[2].start(false);
    let (lead2, term, _) = leader(&http, &addrs[..2], None).await;
    let until = Instant::now() + WATCH;
    let mut i = KEYS;
    while Instant::now() < until {
        put_until(&http, &addrs[..2], &mut hint, i).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = leader(&http, &addrs[..2], None).await;
    assert_eq!(
        (now.0, now.1),
        (lead2, term),
        "the leader or its term changed"
    );
    let s = raft_state(&http, addrs[2]).await.expect("node 3 answers");
    assert_eq!(s["keys"], 0, "node 3 was sent the map: {s}");
    assert_eq!(s["term"], 0, "node 3 took a term from the cluster: {s}");
    let still = incarnation_of(&http, addrs[lead2 as usize - 1], 3).await;
    assert_eq!(
        still, named,
        "the membership's incarnation of node 3 changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_identity_file_is_lost_or_damaged_refuses_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut nodes, addrs, http, lead) = started(tmp.path()).await;
    let mut hint = lead as usize - 1;
    put_until(&http, &addrs, &mut hint, 0).await;
    let follower = nodes.iter().position(|n| n.id != lead).expect("a follower");
    let (node, file) = (&mut nodes[follower], "identity");
    // Its log holds the cluster's entries by now (the PUT was acknowledged by a majority;
    // wait until this follower has it too).
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while raft_state(&http, node.addr).await.map(|s| s["keys"] == 1) != Some(true) {
        assert!(Instant::now() < deadline, "the follower never got the key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.kill();
    let path = node.dir.join(file);
    let kept = std::fs::read(&path).expect("the identity file");
    for (what, damage) in [
        ("missing", None),
        ("damaged", Some(b"raft_kv identity 2 zz\n".to_vec())),
        ("another node's", Some(b"raft_kv identity 7 abc\n".to_vec())),
    ] {
        match &damage {
            None => std::fs::remove_file(&path).expect("remove the identity file"),
            Some(bytes) => std::fs::write(&path, bytes).expect("damage the identity file"),
        }
        let out = node.run_to_exit();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: started anyway");
        assert!(
            stderr.contains("identity"),
            "{what}: the error names the file: {stderr}"
        );
    }
    // Put back, the node starts and takes the cluster's writes again.
    std::fs::write(&path, kept).expect("restore the identity file");
    node.start(false);
    put_until(&http, &addrs, &mut hint, 1).await;
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while raft_state(&http, nodes[follower].addr)
        .await
        .map(|s| s["keys"] == 2)
        != Some(true)
    {
        assert!(
            Instant::now() < deadline,
            "the restored node never got the new key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Node `id`'s incarnation in the membership as the node at `at` sees it (hex).
async fn incarnation_of(http: &reqwest::Client, at: SocketAddr, id: u64) -> String {
    let view: serde_json::Value = http
        .get(format!("http://{at}/cluster"))
        .send()
        .await
        .expect("GET /cluster")
        .json()
        .await
        .expect("JSON");
    view["incarnations"][id.to_string()]
        .as_str()
        .unwrap_or_else(|| panic!("no incarnation of node {id}: {view}"))
        .to_owned()
}

/// Which node loses its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// A follower, started again without `--init` (as it was started first).
    Follower,
    /// Node 1, which was started with `--init`, started again with it (its command line
    /// kept): with an empty log it asks for its peers' identities and initializes a
    /// cluster of its own, whose vote requests the others must refuse.
    InitNode,
}

/// Three nodes take `KEYS` writes; one loses its directory and starts again under its
/// old id; for `WATCH` the cluster keeps taking writes with no leader change (and its
/// term unchanged), and the lost node holds no key; every key reads back.
async fn lose_a_directory(which: Lost) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut nodes, addrs, http, lead) = started(tmp.path()).await;
    let mut hint = lead as usize - 1;
    for i in 0..KEYS {
        put_until(&http, &addrs, &mut hint, i).await;
    }
    let lost = match which {
        Lost::Follower => nodes.iter().position(|n| n.id != lead).expect("a follower"),
        Lost::InitNode => 0,
    };
    nodes[lost].kill();
    std::fs::remove_dir_all(&nodes[lost].dir).expect("delete the directory");
    let others: Vec<SocketAddr> = (0..3).filter(|i| *i != lost).map(|i| addrs[i]).collect();
    // The others lead (again, if the lost node led) before it comes back.
    let (lead, term, _) = leader(&http, &others, None).await;
    nodes[lost].start(which == Lost::InitNode);

    let until = Instant::now() + WATCH;
    let mut i = KEYS;
    while Instant::now() < until {
        put_until(&http, &addrs, &mut hint, i).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leading = lead as usize - 1;
    let exited = nodes[leading]
        .child
        .as_mut()
        .expect("the leader runs")
        .try_wait()
        .expect("the leader's status");
    assert_eq!(exited, None, "the leader's process exited");
    let now = leader(&http, &others, None).await;
    assert_eq!(
        (now.0, now.1),
        (lead, term),
        "the leader or its term changed"
    );

    let s = raft_state(&http, addrs[lost])
        .await
        .expect("the restarted node answers /raft/state");
    assert_eq!(s["keys"], 0, "the restarted node was sent the map: {s}");
    assert_ne!(s["state"], "Leader", "{s}");
    match which {
        Lost::Follower => {
            assert_eq!(
                s["last_log_index"],
                serde_json::Value::Null,
                "the restarted node was sent the log: {s}"
            );
            assert_eq!(
                s["term"], 0,
                "the restarted node took a term from the cluster: {s}"
            );
        }
        // Its own initial membership entry and nothing else.
        Lost::InitNode => assert_eq!(s["last_log_index"], 0, "{s}"),
    }
    for j in 0..i {
        let r = http
            .get(format!("http://{}/kv/k{j}", addrs[leading]))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.text().await.expect("a body"), format!("v{j}"), "k{j}");
    }
}

/// Three nodes under `root` started (node 1 with `--init`), their addresses, a client,
/// and the leader's id once there is one.
async fn started(
    root: &std::path::Path,
) -> (Vec<raft::Node>, Vec<SocketAddr>, reqwest::Client, u64) {
    let mut nodes = cluster(root, &[]);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        node.start(i == 0);
    }
    let http = client();
    let (lead, _, _) = leader(&http, &addrs, None).await;
    (nodes, addrs, http, lead)
}

/// PUTs `k{i}` = `v{i}` until it is acknowledged (a PUT is idempotent here), within
/// `raft::WAIT_TIMEOUT`.
async fn put_until(http: &reqwest::Client, addrs: &[SocketAddr], hint: &mut usize, i: usize) {
    let deadline = Instant::now() + raft::WAIT_TIMEOUT;
    while !put(http, addrs, hint, &format!("k{i}"), &format!("v{i}")).await {
        assert!(Instant::now() < deadline, "PUT k{i} was never acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
