//! raft_kv's membership endpoints and `--join` without the cluster's secret, on processes
//! on loopback.
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
use members::{cluster_view, exit_status, ids, node, raw, wait_voters};
use raft::{client, free_addrs, leader, raft_state, read_message, write_secret, WAIT_TIMEOUT};
use reqwest::{Method, StatusCode};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// A secret under `root`, `n` free addresses, and node 1 started at the first as a
/// cluster of its own.
fn first_node(root: &Path, n: usize) -> (Secret, Vec<std::net::SocketAddr>, raft::Node) {
    write_secret(&root.join("secret"));
    let secret = Secret::load(&root.join("secret")).expect("the secret");
    let addrs = free_addrs(n);
    let mut one = node(root, 1, addrs[0], None);
    one.start(true);
    (secret, addrs, one)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_membership_changes_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (secret, addrs, _one) = first_node(root, 2);
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

    // The command line: with another secret, refused (an unsigned 401, exit 1); with the cluster's,
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
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout + &stderr)
    };
    let add = ["add-learner".to_string(), "2".into(), addrs[1].to_string()];
    let (ok, out) = admin_cli(&root.join("other-secret"), &add);
    // The node's 401 cannot be signed for a request under another secret: reported as
    // an answer not signed, never as the node's word.
    assert!(
        !ok && out.contains("answered 401 Unauthorized not signed"),
        "another secret: {out}"
    );
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

/// A stand-in at the address the operator named: it says it is node 1 (`/raft/state` is
/// not authenticated) and answers everything else 401, unsigned, as if refused (a probe
/// relayed the signed request to the real leader meanwhile, and it was applied).
async fn impostor() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let serve = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let (status, body) = if head.starts_with(b"GET /raft/state ") {
                ("200 OK", r#"{"id":1}"#)
            } else {
                ("401 Unauthorized", "bad MAC")
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    (addr, serve)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_refusal_is_not_taken_for_the_nodes_answer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_secret(&tmp.path().join("secret"));
    let secret = Secret::load(&tmp.path().join("secret")).expect("the secret");
    let (at, serve) = impostor().await;
    let admin = Admin::new(secret);
    let body = br#"{"remove":[2]}"#;
    let got = admin.send(at, Method::POST, "/cluster/voters", body).await;
    serve.abort();
    // What answered is not known to be a node of the cluster, nor that the request was
    // not applied: not a refusal the operator may act on.
    let e = match got {
        Err(e) => e.to_string(),
        Ok(reply) => panic!("an unsigned 401 taken for the node's answer: {reply:?}"),
    };
    assert!(e.contains("not signed"), "{e}");
    assert!(e.contains("may have been applied"), "{e}");
}

/// A relay at the address the operator named: it passes each request to the real node
/// `to` and its answer back, signed body and MAC untouched, but with the status line
/// `status` (a stand-in on the port of a node that is down, on-path).
async fn relay_rewriting_status(
    to: std::net::SocketAddr,
    status: &'static str,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let serve = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let Some((req, _)) = read_message(&mut s).await else {
                return;
            };
            let Ok(mut node) = tokio::net::TcpStream::connect(to).await else {
                return;
            };
            if node.write_all(&req).await.is_err() {
                return;
            }
            let Some((reply, reply_head_end)) = read_message(&mut node).await else {
                return;
            };
            let reply_head = String::from_utf8_lossy(&reply[..reply_head_end]).into_owned();
            let first_line_end = reply_head.find("\r\n").unwrap_or(0);
            // One request per connection: the client must not reuse it.
            let mut forged = format!("HTTP/1.1 {status}\r\nconnection: close").into_bytes();
            forged.extend_from_slice(&reply[first_line_end..]);
            let _ = s.write_all(&forged).await;
        }
    });
    (addr, serve)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_change_the_status_of_a_signed_answer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (secret, addrs, _one) = first_node(root, 1);
    let http = client();
    leader(&http, &addrs, None).await;
    wait_voters(&http, &addrs, &[1]).await;
    // Node 7 is no member: the node refuses to make it a voter (not 200). The relay says
    // 200 with the node's signed body.
    let (at, serve) = relay_rewriting_status(addrs[0], "200 OK").await;
    let admin = Admin::new(secret);
    let got = admin
        .send(at, Method::POST, "/cluster/voters", br#"{"add":[7]}"#)
        .await;
    serve.abort();
    match got {
        Err(e) => assert!(e.to_string().contains("not signed"), "{e}"),
        Ok(reply) => panic!("a relayed status taken for the node's: {reply:?}"),
    }
    let view = cluster_view(&http, addrs[0]).await.expect("node 1's view");
    assert_eq!(ids(&view["voters"]), BTreeSet::from([1]), "{view}");
}
