//! A raft_kv node holds no connection for a head that does not come. actix-http bounds
//! the wait for a connection's first head only, and drains a body its handler left
//! unread with no timer: a probe held about 4,100 connections on each follower with one
//! request and then one byte of a second head, which filled `--max-connections`, and
//! every client PUT got 504 until it let go. Each head must now be whole within the
//! node's head timeout (5 s) of its first byte and within the keep-alive and the head
//! timeout (10 s) of the last answer; the rest of a body left unread counts as the next
//! head.
//!
//! Raw HTTP over TCP against one node (no cluster is needed to be connected to).

#[path = "common/raft.rs"]
mod raft;

use raft::{cluster, read_message};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The node's keep-alive and head timeout (5 s each) and some: a connection held after
/// an answer must be closed by then.
const CLOSE_DEADLINE: Duration = Duration::from_secs(16);

/// Reads one answer on `s` (its head, then `Content-Length` bytes of body); its status,
/// or None if the connection ended or nothing came within 5 s.
async fn read_answer(s: &mut TcpStream) -> Option<u16> {
    let (msg, head_end) = tokio::time::timeout(Duration::from_secs(5), read_message(s))
        .await
        .ok()??;
    let head = String::from_utf8_lossy(&msg[..head_end]);
    head.split(' ').nth(1)?.parse().ok()
}

/// How long after this call the node closed `s` (a read of 0 bytes or an error), reading
/// and dropping whatever it sends; None if it was still open after `wait`.
async fn closed_within(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    wait: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let read = async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(wait, read)
        .await
        .ok()
        .map(|_| started.elapsed())
}

/// A request that the node answers at once, without a body.
fn health(addr: SocketAddr) -> String {
    format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

/// One node of a three-node cluster, started alone (it serves, with no leader).
fn one_node(root: &std::path::Path) -> (raft::Node, SocketAddr) {
    let mut node = cluster(root, &[]).swap_remove(0);
    node.start(false);
    let addr = node.addr;
    (node, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_head_that_does_not_come_closes_the_connection() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, addr) = one_node(tmp.path());
    let mut held = Vec::new();
    // One byte of the second head and then nothing; and a byte every 500 ms (each read
    // must not start the wait again).
    for trickle in [false, true] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(health(addr).as_bytes()).await.expect("send");
        assert!(read_answer(&mut s).await.is_some(), "the first request");
        s.write_all(b"G").await.expect("one byte");
        let closed = if trickle {
            let (mut rd, mut wr) = s.into_split();
            let drip = tokio::spawn(async move {
                for _ in 0..40 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if wr.write_all(b"E").await.is_err() {
                        break;
                    }
                }
            });
            let waited = closed_within(&mut rd, CLOSE_DEADLINE).await;
            drip.abort();
            waited
        } else {
            closed_within(&mut s, CLOSE_DEADLINE).await
        };
        if closed.is_none() {
            held.push(if trickle { "trickled" } else { "one byte" });
        }
    }
    assert!(
        held.is_empty(),
        "second heads held past {CLOSE_DEADLINE:?}: {held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_nobody_reads_is_not_drained_for_ever() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, addr) = one_node(tmp.path());
    // Unsigned, so refused at its head; its chunked body is never read by a handler.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /raft/vote HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("send");
    assert!(read_answer(&mut s).await.is_some(), "the refusal");
    assert!(
        closed_within(&mut s, CLOSE_DEADLINE).await.is_some(),
        "a chunked body held the connection past {CLOSE_DEADLINE:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_kept_alive_between_whole_requests_stays_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, addr) = one_node(tmp.path());
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // Six requests 2 s apart (inside actix's keep-alive of 5 s), 10 s in all: longer than
    // the head timeout, each head whole when it comes.
    for i in 0..6 {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        s.write_all(health(addr).as_bytes()).await.expect("send");
        assert!(
            read_answer(&mut s).await.is_some(),
            "request {i} not answered"
        );
    }
    // A head sent in two halves 1 s apart is whole in time.
    let whole = health(addr);
    let (first, second) = whole.split_at(10);
    s.write_all(first.as_bytes()).await.expect("send");
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.write_all(second.as_bytes()).await.expect("send");
    assert!(read_answer(&mut s).await.is_some(), "a head sent in halves");
}

/// Connections to `addr` the node holds open: in `/proc/net/tcp` (Linux), the sockets on
/// its port that are established or whose client has closed its side (`CLOSE_WAIT`).
/// Not its outgoing connections to peers that are not running, which come and go; nor a
/// socket the node has closed whose unsent answers the kernel still holds (`LAST_ACK`).
fn held_connections(addr: SocketAddr) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let state = fields.get(3).copied();
            port == Some(addr.port()) && matches!(state, Some("01") | Some("08"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_none_of_its_answers_is_closed() {
    // Pipelined requests whose answers the client never reads: once the node's writes
    // wait on it, the connection is closed within the write timeout (10 s). With the
    // client's side half-closed, actix-http no longer read, so the head deadline never
    // fired: a probe held `--max-connections` that way for as long as it liked.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, addr) = one_node(tmp.path());
    let before = held_connections(addr);
    let mut held = Vec::new();
    for half_close in [true, false] {
        for _ in 0..4 {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_recv_buffer_size(1024).expect("SO_RCVBUF");
            let mut s = socket.connect(addr).await.expect("connect");
            let requests = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(500);
            s.write_all(requests.as_bytes()).await.expect("send");
            if half_close {
                s.shutdown().await.expect("half-close");
            }
            held.push(s);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            held_connections(addr) >= before + 4,
            "the connections were not taken"
        );
        let deadline = Instant::now() + Duration::from_secs(25);
        while held_connections(addr) > before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let left = held_connections(addr).saturating_sub(before);
        assert_eq!(
            left, 0,
            "half-closed {half_close}: connections held after 25 s"
        );
    }
    drop(held);
}

/// The node's resident memory, bytes (Linux: `VmRSS` in `/proc/PID/status`).
fn resident_bytes(node: &raft::Node) -> u64 {
    let pid = node.child.as_ref().expect("the node runs").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pipelined_far_ahead_are_not_all_decoded_at_once() {
    // actix-http decodes every whole request in its read buffer (up to 128 KiB) at once:
    // 165 KB of pipelined `GET /health` whose answers the client never read took about
    // 19 to 24 MB per connection (a probe's 100 connections: 2.43 GB). The node now reads
    // at most 16 KiB past the requests it has taken.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (node, addr) = one_node(tmp.path());
    const CONNECTIONS: u64 = 5;
    let before = resident_bytes(&node);
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(1024).expect("SO_RCVBUF");
        let mut s = socket.connect(addr).await.expect("connect");
        // By address: a `Host: x` would be refused (403) now, not served.
        let requests = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(5_000);
        // What the node takes within 3 s (it may stop reading: that is the point).
        let _ =
            tokio::time::timeout(Duration::from_secs(3), s.write_all(requests.as_bytes())).await;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = resident_bytes(&node).saturating_sub(before);
    drop(held);
    assert!(
        grown < CONNECTIONS * (4 << 20),
        "resident memory grew {} MB for {CONNECTIONS} connections",
        grown >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_declared_length_is_refused_not_a_panic() {
    // The read-ahead bound adds each request's declared length: `u64::MAX` overflowed
    // that sum and the worker panicked (the connection closed with no answer).
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, addr) = one_node(tmp.path());
    for declared in [u64::MAX, u64::MAX - 1_000, u64::MAX / 2] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let head =
            format!("PUT /kv/a HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {declared}\r\n\r\nabc");
        s.write_all(head.as_bytes()).await.expect("send");
        assert_eq!(
            read_answer(&mut s).await,
            Some(413),
            "Content-Length {declared}"
        );
    }
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(health(addr).as_bytes()).await.expect("send");
    assert!(
        read_answer(&mut s).await.is_some(),
        "the node still answers"
    );
}
