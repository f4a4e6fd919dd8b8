//! A node whose log was purged below its snapshot, started with the snapshot file gone,
//! refuses to start and says which file: the state below its log is lost. (A probe saw
//! it stop with "Failed to get log entries, expected index: [0, 64), got [Some(40), ...)",
//! which names neither the snapshot nor what to do.)

#[path = "common/raft.rs"]
mod raft;

use raft::{client, put, raft_state, started_cluster, WAIT_TIMEOUT};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_snapshot_is_gone_refuses_to_start_and_names_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut nodes, addrs, lead) = started_cluster(tmp.path(), &["--snapshot-logs", "20"]).await;
    let http = client();
    let mut hint = (lead - 1) as usize;
    let follower = (1..=3).find(|id| *id != lead).expect("a follower") as usize - 1;
    // Writes until the follower has purged its log below a snapshot.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let mut i = 0;
    loop {
        let purged = raft_state(&http, addrs[follower])
            .await
            .and_then(|s| s["purged"].as_u64());
        if purged.is_some_and(|p| p > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never purged its log"
        );
        for _ in 0..20 {
            put(&http, &addrs, &mut hint, &format!("k{i}"), "v").await;
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node = &mut nodes[follower];
    node.kill();
    std::fs::remove_file(node.dir.join("snapshot")).expect("remove the snapshot file");
    let out = node.run_to_exit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("snapshot") && stderr.contains("purged"),
        "the error names neither: {stderr}"
    );
}
