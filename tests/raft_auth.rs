//! Only a holder of the cluster's secret can speak openraft's RPCs to a raft_kv node, and
//! not even one can send a term or index that would wrap openraft's arithmetic.
//!
//! A three-node cluster takes 20 writes; then a local process that is not a member sends
//! every node the requests that used to take the cluster over: an `/raft/append` heartbeat
//! with a committed vote at term `u64::MAX` (every node followed a leader that did not
//! exist, then openraft's `term + 1` wrapped and panicked, and the vote was persisted), a
//! `/raft/vote` at that term, a `/raft/snapshot` at term T+1 carrying an empty map (it
//! replaced the map on every node), and an `/raft/append` that committed `hello=PWNED`.
//! Each goes unsigned, signed with another secret, with a valid signature over another
//! body, for another path, for another node, or too old (each answered 401), and, signed
//! properly, at term or index `u64::MAX` (400). Afterwards every node has the same term,
//! leader, log and map as before, every key reads back, `hello` is absent, and the
//! cluster still takes a write.

#[path = "../examples/raft_kv/auth.rs"]
mod auth;
#[path = "common/raft.rs"]
mod raft;

use actix_wal::format::codec;
use auth::{Secret, HEAD_MAC_HEADER, MAC_HEADER, NONCE_HEADER, TIME_HEADER};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
};
use raft::{client, cluster, leader, raft_state, Node};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

/// raft_kv's entry payload, as the codec lays it out (bincode is structural: the same
/// shape encodes to the same bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Request {
    Set { writes: Vec<(String, Vec<u8>)> },
}

/// raft_kv's apply result (not carried by any request).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Response;

openraft::declare_raft_types!(
    /// raft_kv's Raft types, to encode requests as its nodes decode them.
    TypeConfig: D = Request, R = Response
);

/// Keys written before the attack.
const KEYS: usize = 20;

/// What a node says of itself that an attack would change.
#[derive(Debug, PartialEq)]
struct View {
    term: u64,
    leader: Option<u64>,
    last_log_index: Option<u64>,
    keys: u64,
    running: bool,
}

async fn view(http: &reqwest::Client, addr: SocketAddr) -> Option<View> {
    let s = raft_state(http, addr).await?;
    Some(View {
        term: s["term"].as_u64()?,
        leader: s["leader"].as_u64(),
        last_log_index: s["last_log_index"].as_u64(),
        keys: s["keys"].as_u64()?,
        running: s["running"].as_bool()?,
    })
}

fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

/// How a forged request is signed.
#[derive(Debug, Clone, Copy)]
enum Signing {
    None,
    OtherSecret,
    OtherBody,
    OtherPath,
    OtherNode,
    TenMinutesOld,
    Proper,
}

/// POSTs `body` to `path` on node `to` at `addr`, signed as `how` says; the status.
async fn send(
    http: &reqwest::Client,
    secret: &Secret,
    (to, addr): (u64, SocketAddr),
    path: &str,
    body: &[u8],
    how: Signing,
) -> StatusCode {
    let now = auth::now_ms();
    let stranger = Secret::from_bytes(&[b'x'; 32]).expect("32 bytes");
    let signed = match how {
        Signing::None => None,
        Signing::OtherSecret => Some((now, stranger.sign_request(to, path, now, body))),
        Signing::OtherBody => Some((now, secret.sign_request(to, path, now, b"heartbeat"))),
        Signing::OtherPath => Some((now, secret.sign_request(to, "/raft/vote", now, body))),
        Signing::OtherNode => Some((now, secret.sign_request(to % 3 + 1, path, now, body))),
        Signing::TenMinutesOld => {
            let then = now - 600_000;
            Some((then, secret.sign_request(to, path, then, body)))
        }
        Signing::Proper => Some((now, secret.sign_request(to, path, now, body))),
    };
    let mut req = http
        .post(format!("http://{addr}{path}"))
        .body(body.to_vec());
    if let Some((time, mac)) = signed {
        // The head is signed as properly as the whole: a proper head with a forged MAC
        // over the body is refused when the body is in (`intake`, then `network::serve`).
        let head = auth::Head {
            time_ms: time,
            identity: "",
            body_bytes: body.len() as u64,
            request_mac: &mac,
            nonce: auth::next_nonce(),
        };
        let nonce = head.nonce;
        let head = secret.sign_head(to, path, head);
        req = req
            .header(TIME_HEADER, time.to_string())
            .header(MAC_HEADER, mac)
            .header(HEAD_MAC_HEADER, head)
            .header(NONCE_HEADER, nonce.to_string());
    }
    req.send()
        .await
        .map_or(StatusCode::BAD_GATEWAY, |r| r.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_raft_rpcs_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = cluster(tmp.path(), &[]);
    for (i, node) in nodes.iter_mut().enumerate() {
        node.start(i == 0);
    }
    let secret = Secret::load(&nodes[0].secret).expect("the cluster's secret");
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let http = client();
    let (lead, term, _) = leader(&http, &addrs, None).await;
    let at = addrs[(lead - 1) as usize];
    for i in 0..KEYS {
        let r = http
            .put(format!("http://{at}/kv/k{i}"))
            .body(format!("v{i}"))
            .send()
            .await
            .expect("PUT");
        assert_eq!(r.status(), StatusCode::OK, "PUT k{i}");
    }
    // Every node has applied every write (the map is what the attack would replace).
    let mut before = Vec::new();
    for addr in &addrs {
        let deadline = std::time::Instant::now() + raft::WAIT_TIMEOUT;
        loop {
            let v = view(&http, *addr).await;
            if v.as_ref().is_some_and(|v| v.keys == KEYS as u64) {
                before.push(v.expect("a view"));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{addr}: {v:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let last = before[0].last_log_index.expect("a log");

    let members: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|id| (id, BasicNode::new(addrs[(id - 1) as usize])))
        .collect();
    let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], members);
    let empty_map = codec::encode(&BTreeMap::<String, Vec<u8>>::new()).expect("encode");
    let snapshot = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(term + 1, lead % 3 + 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(term + 1, lead % 3 + 1, last + 10)),
            last_membership: StoredMembership::new(Some(log_id(term, lead, 0)), membership),
            snapshot_id: "forged".into(),
        },
        offset: 0,
        data: empty_map,
        done: true,
    };
    let pwned = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(term, lead),
        prev_log_id: Some(log_id(term, lead, last)),
        leader_commit: Some(log_id(term, lead, last + 1)),
        entries: vec![Entry {
            log_id: log_id(term, lead, last + 1),
            payload: EntryPayload::Normal(Request::Set {
                writes: vec![("hello".into(), b"PWNED".to_vec())],
            }),
        }],
    };
    let heartbeat_at_max = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(u64::MAX, 9),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    };
    let index_at_max = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(term, lead),
        prev_log_id: Some(log_id(term, lead, u64::MAX)),
        leader_commit: Some(log_id(term, lead, u64::MAX)),
        entries: vec![],
    };
    let vote_at_max = VoteRequest::new(Vote::new(u64::MAX, 9), Some(log_id(term, lead, last)));
    let forged: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "append at term u64::MAX",
            "/raft/append",
            codec::encode(&heartbeat_at_max).unwrap(),
        ),
        (
            "vote at term u64::MAX",
            "/raft/vote",
            codec::encode(&vote_at_max).unwrap(),
        ),
        (
            "snapshot at term T+1",
            "/raft/snapshot",
            codec::encode(&snapshot).unwrap(),
        ),
        (
            "append hello=PWNED",
            "/raft/append",
            codec::encode(&pwned).unwrap(),
        ),
        (
            "append at index u64::MAX",
            "/raft/append",
            codec::encode(&index_at_max).unwrap(),
        ),
        // The pre-vote (`prevote.rs`): refused unsigned before its body is decoded.
        ("a pre-vote", "/raft/prevote", vec![0x2A; 64]),
    ];
    let mut wrong = Vec::new();
    for (what, path, body) in &forged {
        for how in [
            Signing::None,
            Signing::OtherSecret,
            Signing::OtherBody,
            Signing::OtherPath,
            Signing::OtherNode,
            Signing::TenMinutesOld,
            Signing::Proper,
        ] {
            // Signed properly, the harmless-looking ones are real RPCs: only those that
            // carry an absurd term or index are sent so (and must be answered 400).
            let absurd = what.contains("u64::MAX");
            if matches!(how, Signing::Proper) && !absurd {
                continue;
            }
            if matches!(how, Signing::OtherPath) && *path == "/raft/vote" {
                continue;
            }
            let expected = match how {
                Signing::Proper => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            for (i, addr) in addrs.iter().enumerate() {
                let got = send(&http, &secret, (i as u64 + 1, *addr), path, body, how).await;
                if got != expected {
                    wrong.push(format!("{what} {how:?} to node {}: {got}", i + 1));
                }
            }
        }
    }
    // Anything a forged request set off has had time to happen.
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    for (i, addr) in addrs.iter().enumerate() {
        let after = view(&http, *addr).await;
        assert_eq!(after.as_ref(), Some(&before[i]), "node {} changed", i + 1);
    }
    let r = http
        .get(format!("http://{at}/kv/hello"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "hello was written");
    for i in 0..KEYS {
        let r = http
            .get(format!("http://{at}/kv/k{i}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "k{i}");
        assert_eq!(r.text().await.expect("a body"), format!("v{i}"), "k{i}");
    }
    assert!(wrong.is_empty(), "answered otherwise: {wrong:#?}");
    let r = http
        .put(format!("http://{at}/kv/after"))
        .body("ok")
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), StatusCode::OK, "the cluster takes a write");
}

#[test]
fn a_node_refuses_to_start_with_a_secret_others_can_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(tmp.path(), &[]);
    let node = &mut nodes[0];
    let run = |secret: &std::path::Path| {
        std::process::Command::new(raft::example_binary())
            .args([
                "--id",
                "1",
                "--addr",
                &node.addr.to_string(),
                "--peers",
                &node.peers,
            ])
            .arg("--dir")
            .arg(&node.dir)
            .arg("--cluster-secret-file")
            .arg(secret)
            .output()
            .expect("run raft_kv")
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&node.secret, perms).expect("chmod 644");
        let out = run(&node.secret);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with a 0644 secret");
        assert!(err.contains("chmod 600"), "{err}");
    }
    let short = tmp.path().join("short");
    std::fs::write(&short, "too short\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&short, perms).expect("chmod 600");
    }
    let out = run(&short);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a 9-byte secret");
    assert!(err.contains("at least 32"), "{err}");
    let out = run(&tmp.path().join("missing"));
    assert!(!out.status.success(), "started without a secret file");
    assert!(
        !node.dir.join("log").exists(),
        "a refused node created its log"
    );
}
