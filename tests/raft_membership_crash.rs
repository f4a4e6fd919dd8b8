//! A membership change cut short by its leader's crash is finished, and later changes
//! pass. openraft 0.9 runs a change's second step (joint to uniform) from the call that
//! asked for it: a leader killed between the two steps left the cluster joint for good,
//! every later change answered 409 "retry", and replacing a node impossible (a probe
//! wedged 4 of 4 clusters within 6 tries, killing the leader a few ms into
//! `voters remove 3`). The leader now finishes such a change.
//!
//! Each try here removes a voter through the leader, kills the leader 1 to 15 ms into the
//! request, starts it again, and then needs `voters set [1, 2, 3]` to pass within 30 s.
//! Whether a try cuts the change short at its midpoint depends on timing: 12 of 30 tries
//! left the membership joint in the first run here; the test prints how many it saw.

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
use members::cluster_view;
use raft::{client, leader, started_cluster};
use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};

/// Tries of remove-kill-restart.
const TRIES: u64 = 30;
/// Longest a later change may take to pass.
const PASS_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_cut_short_by_a_leader_crash_is_finished_and_later_changes_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut nodes, addrs, _) = started_cluster(tmp.path(), &[]).await;
    let admin = Admin::new(Secret::load(&nodes[0].secret).expect("the secret"));
    let http = client();
    let mut joint_seen = 0;
    for t in 0..TRIES {
        let (lead, _, _) = leader(&http, &addrs, None).await;
        let at = addrs[(lead - 1) as usize];
        let gone = if t % 2 == 0 { 3 } else { 2 };
        let body = format!(r#"{{"remove":[{gone}]}}"#);
        let (admin2, body2) = (admin.clone(), body.clone());
        let asked = tokio::spawn(async move {
            admin2
                .send(at, Method::POST, "/cluster/voters", body2.as_bytes())
                .await
        });
        tokio::time::sleep(Duration::from_millis(1 + t % 15)).await;
        let i = (lead - 1) as usize;
        nodes[i].kill();
        let _ = asked.await;
        nodes[i].start(false);
        // Right after the restart: joint or not.
        for addr in &addrs {
            let view = cluster_view(&http, *addr).await;
            if view.is_some_and(|v| v["joint"] == true) {
                joint_seen += 1;
                break;
            }
        }
        let deadline = Instant::now() + PASS_WITHIN;
        loop {
            let (lead, _, _) = leader(&http, &addrs, None).await;
            let at = addrs[(lead - 1) as usize];
            let r = admin
                .send(
                    at,
                    Method::POST,
                    "/cluster/voters",
                    br#"{"voters":[1,2,3]}"#,
                )
                .await;
            let last = match r {
                Ok(r) if r.status == StatusCode::OK => break,
                Ok(r) => format!("{} {}", r.status, r.body),
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "try {t}: `voters set [1, 2, 3]` not passed within {PASS_WITHIN:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!("{joint_seen} of {TRIES} tries left the membership joint after the restart");
}
