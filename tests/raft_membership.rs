//! raft_kv's membership endpoints and `--join`, on processes on loopback: under a writer
//! that keeps PUTting keys never written before, a cluster started as one node grows to
//! three and to five (new nodes `--join`, through the leader and through a follower's 307),
//! shrinks to three (the leader removes itself, then a follower), and a voter whose
//! directory was deleted is replaced under a new id at its old address (the old id
//! removed, the new node joined). Afterwards every acknowledged key reads back with its
//! value and the three voters hold the same map. The new node restarts with `--join`
//! still given, and nothing is written.
//!
//! Membership changes without the cluster's secret: tests/raft_membership_auth.rs.
//!
//! The nodes are the example binary (tests/common/raft.rs; the membership helpers are in
//! tests/common/members.rs); every request has a timeout, every wait a deadline, and the
//! `Node` guards kill the processes whatever happens.

#[path = "../examples/raft_kv/admin.rs"]
mod admin;
#[path = "../examples/raft_kv/auth.rs"]
mod auth;
#[path = "common/members.rs"]
mod members;
#[path = "common/raft.rs"]
mod raft;

use admin::Admin;
use auth::Secret;
use members::{
    addr_of, change, cluster_view, node, wait_voters, wait_writes, writer, Acked, SETTLE_TIMEOUT,
};
use raft::{client, free_addrs, leader, raft_state, write_secret, Node, WAIT_TIMEOUT};
use reqwest::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Acknowledged writes to wait for between two membership steps.
const WRITES_PER_STEP: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_grows_shrinks_and_replaces_a_node_under_load_losing_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write_secret(&root.join("secret"));
    let admin = Admin::new(Secret::load(&root.join("secret")).expect("the secret"));
    let http = client();
    // Ids 1 to 5 at these addresses; node 6 takes the address of the node it replaces.
    let mut addrs = free_addrs(5);
    let mut nodes: Vec<Node> = Vec::new();

    // 1: one voter.
    nodes.push(node(root, 1, addrs[0], None));
    nodes[0].start(true);
    leader(&http, &addrs[..1], None).await;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(writer(Arc::new(addrs.clone()), stop.clone(), acked.clone()));
    wait_writes(&acked, WRITES_PER_STEP, "one node").await;

    // 1 → 3: two nodes join through node 1 at once (one waits while the other's change
    // is in progress).
    for id in [2, 3] {
        let mut n = node(root, id, addr_of(&addrs, id), Some(addrs[0]));
        n.start(false);
        nodes.push(n);
    }
    let v = wait_voters(&http, &addrs[..3], &[1, 2, 3]).await;
    println!("1 → 3: {v}");
    // Node 3 learned every address from the membership, not from --peers (its own only).
    let seen = cluster_view(&http, addrs[2]).await.expect("node 3's view");
    for id in 1..=3u64 {
        assert_eq!(
            seen["nodes"][id.to_string()],
            addr_of(&addrs, id).to_string(),
            "node 3's view: {seen}"
        );
    }
    wait_writes(&acked, WRITES_PER_STEP, "three nodes").await;

    // 3 → 5: two nodes join through a follower (307 to the leader, signed again).
    let (lead, _, _) = leader(&http, &addrs[..3], None).await;
    let follower = addr_of(&addrs, lead % 3 + 1);
    for id in [4, 5] {
        let mut n = node(root, id, addr_of(&addrs, id), Some(follower));
        n.start(false);
        nodes.push(n);
    }
    let v = wait_voters(&http, &addrs, &[1, 2, 3, 4, 5]).await;
    println!("3 → 5: {v}");
    wait_writes(&acked, WRITES_PER_STEP, "five nodes").await;

    // 5 → 3: the leader removes itself (it steps down once the change commits), then a
    // follower goes; each is stopped once removed.
    let mut voters: Vec<u64> = (1..=5).collect();
    for round in 0..2 {
        let live: Vec<SocketAddr> = voters.iter().map(|id| addr_of(&addrs, *id)).collect();
        let (lead, _, _) = leader(&http, &live, None).await;
        let gone = if round == 0 {
            lead
        } else {
            *voters.iter().find(|id| **id != lead).expect("a follower")
        };
        let through = *live
            .iter()
            .find(|a| **a != addr_of(&addrs, gone))
            .expect("another node");
        let r = change(
            &admin,
            through,
            Method::DELETE,
            &format!("/cluster/nodes/{gone}"),
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "removing node {gone}: {r:?}");
        voters.retain(|id| *id != gone);
        let live: Vec<SocketAddr> = voters.iter().map(|id| addr_of(&addrs, *id)).collect();
        let v = wait_voters(&http, &live, &voters).await;
        assert!(
            v["nodes"].get(gone.to_string()).is_none(),
            "node {gone} still a member: {v}"
        );
        nodes[(gone - 1) as usize].kill();
        println!(
            "removed node {gone} ({}): {v}",
            if round == 0 {
                "the leader"
            } else {
                "a follower"
            }
        );
        wait_writes(&acked, WRITES_PER_STEP, "after a removal").await;
    }

    // Replace a follower whose directory is lost: kill it, delete its directory, remove
    // its id, and start a new node (id 6) at the same address with --join.
    let live: Vec<SocketAddr> = voters.iter().map(|id| addr_of(&addrs, *id)).collect();
    let (lead, _, _) = leader(&http, &live, None).await;
    let lost = *voters.iter().find(|id| **id != lead).expect("a follower");
    let lost_addr = addr_of(&addrs, lost);
    nodes[(lost - 1) as usize].kill();
    std::fs::remove_dir_all(&nodes[(lost - 1) as usize].dir).expect("delete its directory");
    let through = addr_of(&addrs, lead);
    let r = change(
        &admin,
        through,
        Method::DELETE,
        &format!("/cluster/nodes/{lost}"),
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "removing lost node {lost}: {r:?}");
    voters.retain(|id| *id != lost);
    let live: Vec<SocketAddr> = voters.iter().map(|id| addr_of(&addrs, *id)).collect();
    wait_voters(&http, &live, &voters).await;
    // The leader has purged its log's start: node 6 can only catch up by a snapshot, and
    // learns the membership (every address) from it.
    let (lead, _, _) = leader(&http, &live, None).await;
    let state = raft_state(&http, addr_of(&addrs, lead))
        .await
        .expect("the leader's state");
    assert!(
        state["purged"].as_u64().is_some(),
        "nothing purged yet: {state}"
    );
    let mut new = node(root, 6, lost_addr, Some(through));
    new.dir = root.join("n6");
    new.start(false);
    nodes.push(new);
    addrs.push(lost_addr);
    voters.push(6);
    let live: Vec<SocketAddr> = voters.iter().map(|id| addr_of(&addrs, *id)).collect();
    let v = wait_voters(&http, &live, &voters).await;
    assert_eq!(v["nodes"]["6"], lost_addr.to_string(), "{v}");
    println!("replaced node {lost} by node 6 at {lost_addr}: {v}");
    wait_writes(&acked, WRITES_PER_STEP, "after the replacement").await;

    // Node 6 restarts with --join still on its command line: it asks again, nothing is
    // written (the same membership entry), and it catches up from its own log.
    let six = nodes.len() - 1;
    nodes[six].kill();
    wait_writes(&acked, WRITES_PER_STEP, "node 6 down").await;
    nodes[six].start(false);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let (_, _, target) = leader(&http, &live, None).await;
        let applied = raft_state(&http, lost_addr)
            .await
            .and_then(|s| s["last_applied"].as_u64());
        if applied.is_some_and(|a| a >= target) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 6 stuck at {applied:?} < {target}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its join (learner, then voter) has answered once both no-op requests are done:
    // give it the time of a few round trips, then compare.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = wait_voters(&http, &live, &voters).await;
    assert_eq!(
        again["log_index"], v["log_index"],
        "a repeated --join wrote a membership entry: {again}"
    );

    stop.store(true, Ordering::Relaxed);
    let tried = writer.await.expect("the writer");
    let acked = acked.lock().expect("acked").clone();
    let mut by_node = std::collections::BTreeMap::<SocketAddr, usize>::new();
    for (_, acker) in &acked {
        *by_node.entry(*acker).or_default() += 1;
    }
    println!("acknowledged by address: {by_node:?}");

    // Every acknowledged key reads back from the leader with its value (a 307 or 503
    // while leadership moves is asked again; a 404 fails at once).
    let mut lead = leader(&http, &live, None).await.0;
    for (n, acker) in &acked {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let (status, body) = loop {
            let at = addr_of(&addrs, lead);
            let r = http.get(format!("http://{at}/kv/w{n}")).send().await;
            let (status, body) = match r {
                Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
            };
            if status == StatusCode::OK || status == StatusCode::NOT_FOUND {
                break (status, body);
            }
            assert!(
                Instant::now() < deadline,
                "w{n}: {status} {body} from {lead}"
            );
            println!(
                "w{n}: {status} from node {lead} ({}): asking the leader again",
                body.trim()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            lead = leader(&http, &live, None).await.0;
        };
        if status != StatusCode::OK {
            let mut states = Vec::new();
            for addr in &live {
                states.push(raft_state(&http, *addr).await);
            }
            panic!("w{n}, acknowledged by {acker}: {status} {body} from leader {lead}; voters' states {states:?}");
        }
        assert_eq!(body, format!("v{n}"), "w{n}");
    }
    // The three voters converge on the same map, holding every acknowledged key.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let mut states = Vec::new();
        for addr in &live {
            states.push(raft_state(&http, *addr).await.expect("a voter answers"));
        }
        let applied: Vec<_> = states.iter().map(|s| s["last_applied"].as_u64()).collect();
        let keys: Vec<_> = states
            .iter()
            .map(|s| s["keys"].as_u64().unwrap_or(0))
            .collect();
        if applied.iter().all(|a| *a == applied[0]) && keys.iter().all(|k| *k == keys[0]) {
            assert!(
                keys[0] >= acked.len() as u64,
                "{keys:?} keys, {} acknowledged",
                acked.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "voters did not converge: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{} of {tried} PUTs acknowledged, all read back from leader {lead}; voters {voters:?}",
        acked.len()
    );
}
