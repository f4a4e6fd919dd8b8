//! raft_kv's replication under big batches: a follower that fell behind by many full
//! AppendEntries RPCs (64 entries of up to 256 KiB of writes each) catches up. openraft
//! 0.9 bounds each append by the heartbeat interval and sends the same range again after
//! a timeout; an RPC too big to be signed, sent, written and fsynced within it was never
//! answered in time, and the follower stayed behind for good (a probe saw a cluster stop
//! this way once a second node fell behind).

#[path = "common/raft.rs"]
mod raft;

use raft::{client, leader, raft_state, started_cluster, Node};
use rustix::process::{kill_process, Pid, Signal};
use std::time::{Duration, Instant};

/// Sends `sig` to node `n`'s process.
fn signal(n: &Node, sig: Signal) {
    let child = n.child.as_ref().expect("the node runs");
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    kill_process(pid, sig).expect("signal raft_kv");
}

/// Bytes of each value: near raft_kv's largest (64 KiB), so a few PUTs fill an entry.
const VALUE_BYTES: usize = 60 * 1024;
/// PUTs made while the follower is frozen: up to 24 MB, several full RPCs behind.
const PUTS: usize = 400;
/// Clients writing at once: the leader puts their concurrent PUTs in one entry.
const WRITERS: usize = 8;
/// PUTs that must be acknowledged (a loaded machine answers some 504).
const ACKNOWLEDGED: usize = 100;
/// How long the follower may take to catch up once it runs again.
const CATCH_UP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_by_full_batches_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let (nodes, addrs, lead) = started_cluster(root.path(), &[]).await;
    let http = client();
    let follower = (0..3).find(|&i| nodes[i].id != lead).unwrap();
    signal(&nodes[follower], Signal::STOP);
    let lead_addr = addrs[(lead - 1) as usize];
    let value = "v".repeat(VALUE_BYTES);
    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let http = http.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in (t..PUTS).step_by(WRITERS) {
                let url = format!("http://{lead_addr}/kv/k{i}");
                if let Ok(r) = http.put(url).body(value.clone()).send().await {
                    ok += usize::from(r.status().is_success());
                }
            }
            ok
        }));
    }
    let mut acknowledged = 0;
    for t in tasks {
        acknowledged += t.await.unwrap();
    }
    assert!(
        acknowledged >= ACKNOWLEDGED,
        "only {acknowledged} PUTs acknowledged"
    );
    let (_, _, applied) = leader(&http, &addrs, None).await;
    signal(&nodes[follower], Signal::CONT);
    let started = Instant::now();
    loop {
        let at = raft_state(&http, addrs[follower]).await;
        let follower_applied = at.as_ref().and_then(|s| s["last_applied"].as_u64());
        if follower_applied.is_some_and(|a| a >= applied) {
            break;
        }
        assert!(
            started.elapsed() < CATCH_UP,
            "the follower is still behind {CATCH_UP:?} after it ran again: applied {follower_applied:?} of {applied} (state {at:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
