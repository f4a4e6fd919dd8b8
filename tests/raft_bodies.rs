//! A raft_kv node reads no request body it cannot afford: an RPC whose head is not signed
//! with the cluster's secret is refused before a byte of its body is read, a body that
//! does not arrive in time is cut off, and the bodies of signed RPCs in flight fit a byte
//! budget. (A probe held 150 bodies of 32 MiB on one node: 4.99 GB resident, and its file
//! descriptors ran out; junk-signed 32 MiB bodies, each read and hashed whole before its
//! MAC failed, delayed the heartbeats until the leader was deposed.)
//!
//! Raw HTTP over TCP, so that a request can stop half way: each test sends a head and a
//! little of the body, then waits for the node's status line with a deadline.

#[path = "../examples/raft_kv/auth.rs"]
mod auth;
#[path = "common/raft.rs"]
mod raft;

use auth::{Secret, HEAD_MAC_HEADER, MAC_HEADER, NONCE_HEADER, TIME_HEADER};
use raft::{client, leader, put, started_cluster};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for an answer that must come before the body: far less than any body
/// timeout.
const PROMPT: Duration = Duration::from_secs(3);
/// The node's body timeout (`--body-timeout-ms`, 10 s by default) and some.
const BODY_DEADLINE: Duration = Duration::from_secs(15);

/// Opens a connection to `addr` and sends `head` (without the blank line ending it) and
/// then `sent_bytes` bytes of the body; the stream, left open.
async fn start_request(addr: SocketAddr, head: &str, sent_bytes: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut bytes = format!("{head}\r\nHost: {addr}\r\n\r\n").into_bytes();
    bytes.extend(std::iter::repeat_n(b'x', sent_bytes));
    s.write_all(&bytes).await.expect("send the head");
    s
}

/// The status code of the first answer on `s` within `wait`, or None.
async fn status_within(s: &mut TcpStream, wait: Duration) -> Option<u16> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 512];
        while !got.windows(2).any(|w| w == b"\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(wait, read).await;
    let line = String::from_utf8_lossy(&got);
    line.split(' ').nth(1)?.parse().ok()
}

/// The head of a POST to node `to` at `path` declaring `declared` bytes, signed with
/// `secret` (its head MAC, over the junk request MAC `"{n:064x}"`, so that each `n`
/// makes another request: the body MAC is checked only once the body is in).
fn signed_head(secret: &Secret, to: u64, path: &str, declared: u64, n: u64) -> String {
    let now = auth::now_ms();
    let request_mac = format!("{n:064x}");
    let head = auth::Head {
        time_ms: now,
        identity: "",
        body_bytes: declared,
        request_mac: &request_mac,
        nonce: n,
    };
    let head_mac = secret.sign_head(to, path, head);
    format!(
        "POST {path} HTTP/1.1\r\nContent-Length: {declared}\r\n{TIME_HEADER}: {now}\r\n\
         {MAC_HEADER}: {request_mac}\r\n{HEAD_MAC_HEADER}: {head_mac}\r\n{NONCE_HEADER}: {n}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_whose_heads_are_not_signed_are_refused_before_their_bodies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_nodes, addrs, lead) = started_cluster(tmp.path(), &[]).await;
    let now = auth::now_ms();
    let junk = "0".repeat(64);
    // (path, declared body bytes): each within its path's limit, so that only the
    // signature can refuse it.
    let cases = [
        ("/raft/append", 32 << 20),
        ("/raft/snapshot", 32 << 20),
        ("/raft/vote", 4_000),
        ("/raft/prevote", 4_000),
        ("/raft/identity", 4_000),
        ("/cluster/voters", 4_000),
        ("/cluster/learners", 4_000),
    ];
    let mut wrong = Vec::new();
    for addr in &addrs {
        for (path, declared) in cases {
            for signed in [false, true] {
                let mut head = format!("POST {path} HTTP/1.1\r\nContent-Length: {declared}");
                if signed {
                    // Headers that look right, made without the secret.
                    head += &format!(
                        "\r\n{TIME_HEADER}: {now}\r\n{MAC_HEADER}: {junk}\r\n{HEAD_MAC_HEADER}: {junk}"
                    );
                }
                let mut s = start_request(*addr, &head, 1_000).await;
                let status = status_within(&mut s, PROMPT).await;
                if status != Some(401) {
                    wrong.push(format!("{addr}{path} signed={signed}: {status:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "not refused before the body: {wrong:#?}");
    // The cluster is as it was.
    let http = client();
    let mut hint = (lead - 1) as usize;
    assert!(put(&http, &addrs, &mut hint, "after", "ok").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_answered_408() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, lead) = started_cluster(tmp.path(), &[]).await;
    let secret = Secret::load(&nodes[0].secret).expect("the cluster's secret");
    let at = addrs[(lead - 1) as usize];
    let started = Instant::now();
    // A client's PUT (not authenticated), and a signed RPC: each declares more than it
    // sends.
    let mut put_stalled =
        start_request(at, "PUT /kv/stalled HTTP/1.1\r\nContent-Length: 50000", 100).await;
    let head = signed_head(&secret, lead, "/raft/append", 1_000_000, 1);
    let mut rpc_stalled = start_request(at, &head, 100).await;
    let put_status = status_within(&mut put_stalled, BODY_DEADLINE).await;
    let rpc_status = status_within(&mut rpc_stalled, BODY_DEADLINE).await;
    assert_eq!(put_status, Some(408), "a stalled PUT body");
    assert_eq!(rpc_status, Some(408), "a stalled RPC body");
    assert!(started.elapsed() < BODY_DEADLINE, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_rpc_bodies_in_flight_fit_a_budget() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, lead) = started_cluster(tmp.path(), &[]).await;
    let secret = Secret::load(&nodes[0].secret).expect("the cluster's secret");
    // A follower: what a leader's heartbeats must keep reaching.
    let follower = (1..=3).find(|id| *id != lead).expect("a follower");
    let at = addrs[(follower - 1) as usize];
    let mut held = Vec::new();
    let mut refused = 0;
    for n in 0..8 {
        let head = signed_head(&secret, follower, "/raft/append", 32 << 20, n);
        let mut s = start_request(at, &head, 1_000).await;
        match status_within(&mut s, Duration::from_millis(500)).await {
            Some(503) => refused += 1,
            None => held.push(s),
            other => panic!("a signed head with a held body: {other:?}"),
        }
    }
    // 128 MiB of RPC bodies in flight at most: four of these.
    assert!(held.len() <= 4, "{} bodies of 32 MiB held", held.len());
    assert!(refused >= 4, "{refused} refused");
    // The follower still hears its leader: the cluster takes writes while they are held.
    let http = client();
    let mut hint = (lead - 1) as usize;
    for i in 0..5 {
        assert!(
            put(&http, &addrs, &mut hint, &format!("k{i}"), "v").await,
            "k{i}"
        );
    }
    let (still, _, _) = leader(&http, &addrs, None).await;
    assert_eq!(still, lead, "the leader was deposed");
    drop(held);
}

/// A signed head taken once is refused when it comes again (401), and its copy holds no
/// room: a probe replayed captured heads of large appends, headers only, 2,000 at a time,
/// until the leader's real appends were answered 503 and it was deposed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_signed_head_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (nodes, addrs, lead) = started_cluster(tmp.path(), &[]).await;
    let secret = Secret::load(&nodes[0].secret).expect("the cluster's secret");
    let follower = (1..=3).find(|id| *id != lead).expect("a follower");
    let at = addrs[(follower - 1) as usize];
    let head = signed_head(&secret, follower, "/raft/append", 32 << 20, 7);
    let mut first = start_request(at, &head, 1_000).await;
    assert_eq!(
        status_within(&mut first, Duration::from_millis(500)).await,
        None,
        "the first is held, its body awaited"
    );
    let mut copies = Vec::new();
    for _ in 0..6 {
        let mut copy = start_request(at, &head, 1_000).await;
        let status = status_within(&mut copy, PROMPT).await;
        assert_eq!(status, Some(401), "a copy of a head taken");
        copies.push(copy);
    }
    // The copies took no room: three more heads of 32 MiB fit beside the first.
    let mut held = Vec::new();
    for n in 100..103 {
        let head = signed_head(&secret, follower, "/raft/append", 32 << 20, n);
        let mut s = start_request(at, &head, 1_000).await;
        let status = status_within(&mut s, Duration::from_millis(500)).await;
        assert_eq!(
            status, None,
            "head {n}: refused room a copy should not hold"
        );
        held.push(s);
    }
    drop((first, copies, held));
}
