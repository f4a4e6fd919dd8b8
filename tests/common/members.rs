//! Shared by tests/raft_membership.rs and raft_membership_auth.rs: `raft_kv` nodes that
//! `--init` alone or `--join`, the membership as `GET /cluster` shows it, signed changes
//! retried while they may pass, a writer of keys never written before. Included with
//! `#[path = "common/members.rs"] mod members;` beside `admin`, `auth` and `raft`.
#![allow(dead_code)]

use crate::admin::{Admin, Reply};
use crate::auth::{MAC_HEADER, TIME_HEADER};
use crate::raft::{client, leader, put, Node, WAIT_TIMEOUT};
use reqwest::{Method, StatusCode};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Snapshot every this many entries: small, so a node that joins late gets a snapshot
/// (the membership travels in it) rather than the whole log.
pub const SNAPSHOT_LOGS: &str = "30";
/// Longest wait for a membership to settle (a join waits for a learner to catch up).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A node `id` at `addr` under `root`, not started: `--init` alone if `join` is None,
/// else `--join join`. Its `--peers` names itself only (used by `--init` alone).
pub fn node(root: &Path, id: u64, addr: SocketAddr, join: Option<SocketAddr>) -> Node {
    let mut extra = vec!["--snapshot-logs".to_string(), SNAPSHOT_LOGS.to_string()];
    if let Some(at) = join {
        extra.extend(["--join".to_string(), at.to_string()]);
    }
    Node {
        id,
        addr,
        dir: root.join(format!("n{id}")),
        child: None,
        peers: format!("{id}={addr}"),
        extra,
        secret: root.join("secret"),
    }
}

/// A node's `GET /cluster`, if it answers.
pub async fn cluster_view(http: &reqwest::Client, addr: SocketAddr) -> Option<serde_json::Value> {
    let r = http
        .get(format!("http://{addr}/cluster"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// The ids in a JSON array (none if it is not one).
pub fn ids(v: &serde_json::Value) -> BTreeSet<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|i| i.as_u64()).collect())
        .unwrap_or_default()
}

/// Waits until the leader among `live` reports exactly `voters` as voters, no learner and
/// no change half done; returns its view.
pub async fn wait_voters(
    http: &reqwest::Client,
    live: &[SocketAddr],
    voters: &[u64],
) -> serde_json::Value {
    let want: BTreeSet<u64> = voters.iter().copied().collect();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = None;
    loop {
        let (lead, _, _) = leader(http, live, None).await;
        for addr in live {
            let Some(v) = cluster_view(http, *addr).await else {
                continue;
            };
            if v["id"].as_u64() != Some(lead) {
                continue;
            }
            if ids(&v["voters"]) == want && ids(&v["learners"]).is_empty() && v["joint"] == false {
                return v;
            }
            last = Some(v);
        }
        assert!(
            Instant::now() < deadline,
            "voters never became {want:?} within {SETTLE_TIMEOUT:?}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signed membership request through `at` (redirects followed), retried while the
/// answer says it may pass (no leader yet: 503; another change in progress: 409 retry);
/// the final answer.
pub async fn change(
    admin: &Admin,
    at: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
) -> Reply {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let last = match admin.send(at, method.clone(), path, body.as_bytes()).await {
            Ok(r)
                if r.status == StatusCode::SERVICE_UNAVAILABLE
                    || (r.status == StatusCode::CONFLICT && r.body["retry"] == true) =>
            {
                format!("{r:?}")
            }
            Ok(r) => return r,
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "{method} {path} through {at}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keys acknowledged so far, in order (key `w{n}` holds `v{n}`), with the node that
/// acknowledged each.
pub type Acked = Arc<Mutex<Vec<(u64, SocketAddr)>>>;

/// PUTs `w0`, `w1`, ... once each (never a key twice: a failed PUT is simply not
/// acknowledged) to any of `addrs`, following redirects, until `stop`.
pub async fn writer(addrs: Arc<Vec<SocketAddr>>, stop: Arc<AtomicBool>, acked: Acked) -> u64 {
    let http = client();
    let mut hint = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if put(&http, &addrs, &mut hint, &format!("w{n}"), &format!("v{n}")).await {
            // `put` leaves `hint` at the node that answered 200.
            acked.lock().expect("acked").push((n, addrs[hint]));
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n += 1;
    }
    n
}

/// Waits until `more` writes past the count now are acknowledged.
pub async fn wait_writes(acked: &Acked, more: usize, what: &str) {
    let target = acked.lock().expect("acked").len() + more;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let now = acked.lock().expect("acked").len();
        if now >= target {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: writes stalled at {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Node `id`'s address: `addrs[id - 1]` (node 6, which reuses the address of the node
/// it replaces, has that address pushed as the sixth).
pub fn addr_of(addrs: &[SocketAddr], id: u64) -> SocketAddr {
    addrs[(id - 1) as usize]
}
/// POSTs or DELETEs `body` at `path` on node `to` at `addr`, with the headers given.
pub async fn raw(
    http: &reqwest::Client,
    method: Method,
    addr: SocketAddr,
    path: &str,
    body: &str,
    headers: Option<(u64, String)>,
) -> StatusCode {
    let mut req = http
        .request(method, format!("http://{addr}{path}"))
        .body(body.to_owned());
    if let Some((time, mac)) = headers {
        req = req
            .header(TIME_HEADER, time.to_string())
            .header(MAC_HEADER, mac);
    }
    req.send()
        .await
        .map_or(StatusCode::BAD_GATEWAY, |r| r.status())
}

/// Waits for `node`'s process to exit (it must within [`WAIT_TIMEOUT`]); its status.
pub async fn exit_status(node: &mut Node) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let child = node.child.as_mut().expect("running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            node.child = None;
            return status;
        }
        assert!(Instant::now() < deadline, "node {} still runs", node.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
