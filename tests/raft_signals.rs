//! A raft_kv node stops cleanly on SIGHUP (its terminal closed, an ssh session dropped),
//! as on SIGINT and SIGTERM: it exits 0 after its Raft core and its log shut down, and it
//! restarts and catches up with the cluster.

#[path = "common/raft.rs"]
mod raft;

use raft::{client, leader, put, raft_state, started_cluster, Node};
use rustix::process::{kill_process, Pid, Signal};
use std::time::{Duration, Instant};

/// Longest a clean stop may take (requests in flight finish, then Raft and the log).
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// Sends `sig` to `node` and waits for it to exit; its exit code.
fn stop_with(node: &mut Node, sig: Signal, name: &str) -> Option<i32> {
    let mut child = node.child.take().expect("the node runs");
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    kill_process(pid, sig).expect("signal raft_kv");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        if start.elapsed() > STOP_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {} still ran {STOP_WITHIN:?} after {name}", node.id);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_sigterm_stop_a_node_cleanly_and_it_catches_up_after() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut nodes, addrs, lead) = started_cluster(root.path(), &[]).await;
    let http = client();
    let mut hint = (lead - 1) as usize;
    assert!(
        put(&http, &addrs, &mut hint, "before", "1").await,
        "PUT before"
    );
    for (sig, name) in [(Signal::HUP, "SIGHUP"), (Signal::TERM, "SIGTERM")] {
        let (lead, _, _) = leader(&http, &addrs, None).await;
        let f = nodes.iter().position(|n| n.id != lead).expect("a follower");
        let code = stop_with(&mut nodes[f], sig, name);
        assert_eq!(
            code,
            Some(0),
            "node {} on {name}: exit code {code:?}",
            f + 1
        );
        let key = format!("while-{name}");
        assert!(
            put(&http, &addrs, &mut hint, &key, "2").await,
            "PUT with a node down"
        );
        nodes[f].start(false);
        let (_, _, applied) = leader(&http, &addrs, None).await;
        let deadline = Instant::now() + raft::WAIT_TIMEOUT;
        loop {
            let state = raft_state(&http, addrs[f]).await;
            let caught = state
                .as_ref()
                .and_then(|s| s["last_applied"].as_u64())
                .is_some_and(|a| a >= applied);
            if caught {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} restarted after {name} did not reach index {applied}: {state:?}",
                f + 1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
