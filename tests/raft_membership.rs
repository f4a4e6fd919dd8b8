//! raft_kv's membership endpoints and `--join`, on processes on loopback.
//!
//! Under a writer that keeps PUTting keys never written before, a cluster started as one
//! node grows to three and to five (new nodes `--join`, through the leader and through a
//! follower's 307), shrinks to three (the leader removes itself, then a follower), and a
//! voter whose directory was deleted is replaced under a new id at its old address (the
//! old id removed, the new node joined). Afterwards every acknowledged key reads back
//! with its value and the three voters hold the same map. The new node restarts with
//! `--join` still given, and nothing is written.
//!
//! A membership change that is not signed with the cluster's secret (or is signed for
//! another body, path, node, or too long ago) is refused with 401 and changes nothing;
//! so is a node that tries `--join` with another secret (it stops with an error), and
//! `raft_kv_admin` with another secret; with the cluster's, the command line adds a
//! learner and makes it a voter. A node whose directory was deleted cannot `--join`
//! again under its old id.
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
    addr_of, change, cluster_view, exit_status, ids, node, raw, wait_voters, wait_writes, writer,
    Acked, SETTLE_TIMEOUT,
};
use raft::{client, free_addrs, leader, raft_state, write_secret, Node, WAIT_TIMEOUT};
use reqwest::{Method, StatusCode};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_membership_changes_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write_secret(&root.join("secret"));
    let secret = Secret::load(&root.join("secret")).expect("the secret");
    let addrs = free_addrs(2);
    let mut one = node(root, 1, addrs[0], None);
    one.start(true);
    // Node 2 runs, in no cluster: what an attacker would add.
    let mut two = node(root, 2, addrs[1], None);
    two.start(false);
    let http = client();
    leader(&http, &addrs[..1], None).await;
    let before = wait_voters(&http, &addrs[..1], &[1]).await;

    let learner = format!(r#"{{"id":2,"addr":"{}"}}"#, addrs[1]);
    let now = auth::now_ms();
    let stranger = Secret::from_bytes(&[b'x'; 32]).expect("32 bytes");
    let sign = |s: &Secret, to: u64, path: &str, time: u64, body: &str| {
        Some((time, s.sign_request(to, path, time, body.as_bytes())))
    };
    let attempts = [
        ("unsigned", None),
        (
            "another secret",
            sign(&stranger, 1, "/cluster/learners", now, &learner),
        ),
        (
            "another node",
            sign(&secret, 2, "/cluster/learners", now, &learner),
        ),
        (
            "another path",
            sign(&secret, 1, "/cluster/voters", now, &learner),
        ),
        (
            "another body",
            sign(&secret, 1, "/cluster/learners", now, "{}"),
        ),
        (
            "ten minutes old",
            sign(&secret, 1, "/cluster/learners", now - 600_000, &learner),
        ),
        (
            "a /raft/append MAC",
            sign(&secret, 1, "/raft/append", now, &learner),
        ),
    ];
    for (how, headers) in attempts {
        let status = raw(
            &http,
            Method::POST,
            addrs[0],
            "/cluster/learners",
            &learner,
            headers,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "add a learner, {how}");
    }
    let voters = r#"{"voters":[1,2]}"#;
    let status = raw(
        &http,
        Method::POST,
        addrs[0],
        "/cluster/voters",
        voters,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "change the voters, unsigned"
    );
    let status = raw(
        &http,
        Method::DELETE,
        addrs[0],
        "/cluster/nodes/1",
        "",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "remove a node, unsigned");
    let other = sign(&secret, 1, "/cluster/nodes/2", now, "");
    let status = raw(
        &http,
        Method::DELETE,
        addrs[0],
        "/cluster/nodes/1",
        "",
        other,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "remove node 1 with a MAC for node 2's path"
    );

    // Signed but invalid: refused too, before openraft is asked.
    let admin = Admin::new(secret.clone());
    for (body, want) in [
        (
            r#"{"id":0,"addr":"127.0.0.1:9"}"#.to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"id":2,"addr":"8.8.8.8:53"}"#.to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!(r#"{{"id":2,"addr":"{}"}}"#, addrs[0]),
            StatusCode::CONFLICT,
        ),
        ("not json".to_string(), StatusCode::BAD_REQUEST),
    ] {
        let r = admin
            .send(addrs[0], Method::POST, "/cluster/learners", body.as_bytes())
            .await
            .expect("a signed answer");
        assert_eq!(r.status, want, "{body}: {r:?}");
    }
    let r = admin
        .send(addrs[0], Method::DELETE, "/cluster/nodes/1", b"")
        .await
        .expect("an answer");
    assert_eq!(r.status, StatusCode::CONFLICT, "the only voter: {r:?}");

    // Nothing changed: the same membership entry, node 2 in no cluster.
    let after = cluster_view(&http, addrs[0]).await.expect("node 1's view");
    assert_eq!(after, before, "the membership changed");
    let outside = cluster_view(&http, addrs[1]).await.expect("node 2's view");
    assert!(
        ids(&outside["voters"]).is_empty(),
        "node 2 joined: {outside}"
    );
    let state = raft_state(&http, addrs[1]).await.expect("node 2's state");
    assert_eq!(state["leader"], serde_json::Value::Null, "{state}");

    // A node started with another secret and --join is refused (401) and stops with an
    // error; the membership is unchanged.
    let intruder_addr = free_addrs(1)[0];
    let mut intruder = node(root, 9, intruder_addr, Some(addrs[0]));
    intruder.secret = root.join("other-secret");
    write_secret(&intruder.secret);
    intruder.start(false);
    let status = exit_status(&mut intruder).await;
    assert!(
        !status.success(),
        "a refused --join exits with an error: {status}"
    );
    let after = cluster_view(&http, addrs[0]).await.expect("node 1's view");
    assert_eq!(after, before, "the membership changed");

    // The command line: with another secret, refused (401, exit 1); with the cluster's,
    // the same add is obeyed (the refusals above were the MAC's), then node 2 made a voter.
    let admin_cli = |secret: &Path, args: &[String]| {
        let out = std::process::Command::new(raft::admin_binary())
            .arg("--cluster-secret-file")
            .arg(secret)
            .args(["--node", &addrs[0].to_string()])
            .args(args)
            .output()
            .expect("run raft_kv_admin");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), stdout)
    };
    let add = ["add-learner".to_string(), "2".into(), addrs[1].to_string()];
    let (ok, out) = admin_cli(&root.join("other-secret"), &add);
    assert!(!ok && out.starts_with("401 "), "another secret: {out}");
    assert_eq!(
        cluster_view(&http, addrs[0]).await,
        Some(before.clone()),
        "the membership changed"
    );
    let (ok, out) = admin_cli(&root.join("secret"), &add);
    assert!(ok && out.starts_with("200 "), "add-learner: {out}");
    let after = cluster_view(&http, addrs[0]).await.expect("node 1's view");
    assert_eq!(ids(&after["learners"]), BTreeSet::from([2]), "{after}");
    let (ok, out) = admin_cli(
        &root.join("secret"),
        &["voters".into(), "add".into(), "2".into()],
    );
    assert!(ok && out.starts_with("200 "), "voters add: {out}");
    wait_voters(&http, &addrs, &[1, 2]).await;

    // The leader asked to add itself (a restarted node's --join reaching it through a
    // follower): 200 at once (openraft's replication metrics count the leader itself).
    let myself = format!(r#"{{"id":1,"addr":"{}"}}"#, addrs[0]);
    let started = Instant::now();
    let r = admin
        .send(
            addrs[1],
            Method::POST,
            "/cluster/learners",
            myself.as_bytes(),
        )
        .await
        .expect("a signed answer");
    assert_eq!(r.status, StatusCode::OK, "the leader adding itself: {r:?}");
    assert!(started.elapsed() < WAIT_TIMEOUT, "{:?}", started.elapsed());
    let settled = wait_voters(&http, &addrs, &[1, 2]).await;
    let (ok, out) = admin_cli(&root.join("secret"), &add);
    assert!(ok && out.starts_with("200 "), "node 2 added again: {out}");
    assert_eq!(
        wait_voters(&http, &addrs, &[1, 2]).await["log_index"],
        settled["log_index"],
        "re-adding wrote an entry"
    );

    // Node 2 loses its directory and comes back under its old id with --join: refused (it
    // forgot its vote), it stops with an error, and the membership is unchanged.
    two.kill();
    std::fs::remove_dir_all(&two.dir).expect("delete node 2's directory");
    two.extra
        .extend(["--join".to_string(), addrs[0].to_string()]);
    two.start(false);
    let status = exit_status(&mut two).await;
    assert!(
        !status.success(),
        "node 2 rejoined under its old id with an empty log: {status}"
    );
    assert_eq!(
        cluster_view(&http, addrs[0]).await.expect("node 1's view")["log_index"],
        settled["log_index"],
        "the membership changed"
    );
}
