//! Every value a `raft_kv` client may PUT (up to 64 KiB) is stored, and no size of one
//! stops a node. A probe's PUT of a 65,480-byte value was refused by the log's codec
//! (bincode's byte limit counted its integers at full width: "encoded value would not
//! decode"); openraft took that for a storage failure and shut the leader down, the next
//! leader took the same retried PUT and stopped too, and the cluster lost its quorum.

#[path = "common/raft.rs"]
mod raft;

use raft::{client, leader, put, started_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_every_size_near_the_limit_are_stored_and_the_leader_stays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_nodes, addrs, lead) = started_cluster(tmp.path(), &[]).await;
    let http = client();
    let (_, term, _) = leader(&http, &addrs, None).await;
    let mut hint = (lead - 1) as usize;
    // Around the codec's old limit of 64 KiB (a batch entry holds the value, its key and
    // some framing), and the largest value taken.
    let sizes: Vec<usize> = (65_440..=65_536)
        .step_by(8)
        .chain([65_481, 65_535])
        .collect();
    let mut refused = Vec::new();
    for len in &sizes {
        let value = "v".repeat(*len);
        if !put(&http, &addrs, &mut hint, &format!("k{len}"), &value).await {
            refused.push(*len);
        }
    }
    assert!(
        refused.is_empty(),
        "PUTs refused, by value size: {refused:?}"
    );
    let (lead_after, term_after, _) = leader(&http, &addrs, None).await;
    assert_eq!(
        (lead_after, term_after),
        (lead, term),
        "the leader changed while values were PUT"
    );
    for len in &sizes {
        let url = format!("http://{}/kv/k{len}", addrs[hint]);
        let got = http.get(url).send().await.expect("GET");
        let body = got.text().await.expect("GET body");
        assert_eq!(body.len(), *len, "k{len} read back");
    }
}
