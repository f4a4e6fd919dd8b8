//! A raft_kv node refuses what a web page could make the user's browser send it: a
//! request whose `Host` is a name the operator did not allow (DNS rebinding: the page's
//! own name re-resolved to the node's address, so the browser takes the node for the
//! page's origin) and one that carries another site's `Origin` (a cross-site request).
//! Each is answered 403 before any handler runs, on every route, and changes nothing. A
//! `Host` that is an IP literal (v4 or v6, any address: nodes are reached by address on
//! a private network, and an address cannot be rebound) or `localhost` is served, as is
//! a name given with `--allowed-host`. The nodes' own RPCs, which address each other by
//! IP, still flow: every write here commits through them.

#[path = "common/raft.rs"]
mod raft;

use raft::{client, leader, raft_state, request_with, started_cluster};
use std::net::SocketAddr;

/// What a rebinding page's script would send, and the routes that must refuse it: the
/// client API, the read-only views, and a signed route (unsigned here: 401 before).
const REQUESTS: [(&str, &str, &[u8]); 8] = [
    ("PUT", "/kv/x", b"evil"),
    ("GET", "/kv/x", b""),
    ("DELETE", "/kv/x", b""),
    ("GET", "/cluster", b""),
    ("GET", "/raft/state", b""),
    ("GET", "/metrics", b""),
    ("GET", "/health", b""),
    (
        "POST",
        "/cluster/learners",
        br#"{"id": 9, "addr": "127.0.0.1:1"}"#,
    ),
];

/// `method path` to `addr` with `headers`: its status and body as text.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, body) = request_with(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|| panic!("{method} {path} {headers:?} at {addr}: no answer"));
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_hosts_and_foreign_origins_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_nodes, addrs, lead) = started_cluster(tmp.path(), &[]).await;
    let at = addrs[(lead - 1) as usize];
    let own = at.to_string();
    let (status, body) = send(at, "PUT", "/kv/x", &[("Host", &own)], b"before").await;
    assert_eq!(status, 200, "PUT by address: {body}");

    for addr in &addrs {
        let port = addr.port();
        let node = addr.to_string();
        let hosts = [
            format!("attacker.example:{port}"),
            "attacker.example".to_owned(),
            format!("127.0.0.1.attacker.example:{port}"),
            format!("localhost.attacker.example:{port}"),
        ];
        for host in &hosts {
            for (method, path, body) in REQUESTS {
                let (status, text) = send(*addr, method, path, &[("Host", host)], body).await;
                assert_eq!(
                    status, 403,
                    "{method} {path} with Host {host} at {addr}: {text}"
                );
                assert!(!text.contains("before"), "the refusal shows the value");
            }
        }
        let origins = [
            "http://attacker.example".to_owned(),
            format!("http://attacker.example:{port}"),
            "null".to_owned(),
        ];
        for origin in &origins {
            for (method, path, body) in REQUESTS {
                let headers = [("Host", node.as_str()), ("Origin", origin.as_str())];
                let (status, text) = send(*addr, method, path, &headers, body).await;
                assert_eq!(
                    status, 403,
                    "{method} {path} with Origin {origin} at {addr}: {text}"
                );
            }
        }
    }

    // Nothing changed: the leader (confirmed by a quorum: the peers still talk) reads
    // the value written by address, and its map holds that one key.
    let http = client();
    let (lead, _, _) = leader(&http, &addrs, None).await;
    let at = addrs[(lead - 1) as usize];
    let (status, body) = send(at, "GET", "/kv/x", &[("Host", &at.to_string())], b"").await;
    assert_eq!((status, body.as_str()), (200, "before"));
    let state = raft_state(&http, at).await.expect("/raft/state");
    assert_eq!(state["keys"], 1, "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_localhost_and_allowed_names_are_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let flags = [
        "--allowed-host",
        "kv.internal",
        "--allowed-host",
        "Other.Internal",
    ];
    let (_nodes, addrs, lead) = started_cluster(tmp.path(), &flags).await;
    let at = addrs[(lead - 1) as usize];
    let port = at.port();
    let served = [
        at.to_string(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        // Any address: a node on a private network is reached by its own.
        format!("10.0.0.7:{port}"),
        "192.168.1.20".to_owned(),
        format!("[fd00::7]:{port}"),
        format!("kv.internal:{port}"),
        "KV.Internal".to_owned(),
        format!("other.internal:{port}"),
    ];
    for (i, host) in served.iter().enumerate() {
        let key = format!("/kv/k{i}");
        let value = format!("value {i}");
        let h = [("Host", host.as_str())];
        let (status, body) = send(at, "PUT", &key, &h, value.as_bytes()).await;
        assert_eq!(status, 200, "PUT with Host {host}: {body}");
        let (status, body) = send(at, "GET", &key, &h, b"").await;
        assert_eq!((status, body), (200, value), "GET with Host {host}");
    }
    for host in [
        format!("evil.kv.internal:{port}"),
        "kv.internal.attacker.example".to_owned(),
        format!("attacker.example:{port}"),
    ] {
        let (status, body) = send(at, "PUT", "/kv/x", &[("Host", &host)], b"evil").await;
        assert_eq!(status, 403, "PUT with Host {host}: {body}");
    }
    // A follower asked by name sends the client to the leader by address.
    let follower = *addrs.iter().find(|a| **a != at).expect("a follower");
    let host = format!("localhost:{}", follower.port());
    let (status, body) = send(follower, "PUT", "/kv/y", &[("Host", &host)], b"v").await;
    assert_eq!(status, 307, "PUT at a follower: {body}");
}
