//! The state machine's tests (`state.rs`): snapshots built without stopping applies,
//! snapshot files of both versions, and a send that shares the body.

use super::*;

/// A snapshot of a large map is built without stopping writes: the map is encoded
/// (and checked by decoding it again, `codec::encode`) off the state machine's lock
/// and off the async workers. Before, the encoding ran under the read lock on the
/// Raft task's thread, so an apply waited for all of it: a probe on 2026-12-07 saw
/// writes stop for 11 s and 22 s at two snapshots of a 410 MB map. Here an apply
/// that starts once the build has begun must finish while the build is still going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_is_not_held_up_by_a_snapshot_being_built() {
    use openraft::{CommittedLeaderId, EntryPayload};
    use std::time::{Duration, Instant};
    let sm = StateMachine::open(None).await.expect("open");
    // 16 MB: its encoding and check take far longer than an apply of one key.
    let big: Vec<(String, Vec<u8>)> = (0..256)
        .map(|i| (format!("key-{i:05}"), vec![(i % 251) as u8; 64 * 1024]))
        .collect();
    let entry = |index: u64, writes: Vec<(String, Vec<u8>)>| Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request::Set { writes }),
    };
    let mut applier = sm.clone();
    applier.apply([entry(1, big)]).await.expect("apply the map");

    let mut builder = sm.clone();
    let started = Instant::now();
    let build = tokio::spawn(async move {
        builder.build_snapshot().await.expect("build");
        started.elapsed()
    });
    // The build has begun (it reads the map at once, then encodes for longer).
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!build.is_finished(), "the build finished too soon to tell");
    let small = vec![("during".to_string(), b"the build".to_vec())];
    let apply_started = Instant::now();
    applier
        .apply([entry(2, small)])
        .await
        .expect("apply during the build");
    let apply_took = apply_started.elapsed();
    let build_took = build.await.expect("build task");
    assert!(
        apply_took * 4 < build_took,
        "an apply during a snapshot build took {apply_took:?}, the build {build_took:?}: \
         it waited for the build"
    );
    assert_eq!(sm.get("during"), Some(b"the build".to_vec()));
}

/// A snapshot file as written before the dedup table (`RKV1`, the map alone as body)
/// still opens: the map is back, the table empty, and the body kept in memory (what
/// openraft sends to followers) is version 2.
#[tokio::test]
async fn a_version_1_snapshot_file_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snapshot");
    let mut map = BTreeMap::new();
    map.insert("k".to_string(), b"v".to_vec());
    let stored = Stored {
        meta: SnapshotMeta::default(),
        body: codec::encode(&map).expect("encode the map"),
    };
    let body = codec::encode(&stored).expect("encode the snapshot");
    let mut bytes = SNAPSHOT_MAGIC_V1.to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    std::fs::write(&path, bytes).expect("write the v1 file");

    let sm = StateMachine::open(Some(path)).await.expect("open");
    assert_eq!(sm.get("k"), Some(b"v".to_vec()));
    let kept = sm.inner.snapshot.lock().expect("lock").clone();
    let kept = kept.expect("the snapshot is current");
    let (m, _) = snapshot_body::decode(&kept.body).expect("version 2 in memory");
    assert_eq!(m, map);
}

/// A file is written from the head and the borrowed body: the same bytes as the
/// `Stored` encoded whole, as before (bodies whose length takes 1, 3 and 5 bytes).
#[tokio::test]
async fn a_snapshot_file_is_written_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    for len in [15, 300, 70_000] {
        let mut body = b"RKVSNAP2".to_vec();
        body.resize(len, 7);
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), 9)),
            ..SnapshotMeta::default()
        };
        let whole = codec::encode(&Stored {
            meta: meta.clone(),
            body: body.clone(),
        })
        .expect("encode");
        let head = stored_head(&meta, body.len()).expect("head");
        assert_eq!(
            [head.as_slice(), &body].concat(),
            whole,
            "a body of {len} bytes"
        );
        let path = dir.path().join(format!("snapshot-{len}"));
        write_snapshot(&path, &[&head, &body]).expect("write");
        let (read, version) = read_snapshot(&path).expect("read").expect("a file");
        assert_eq!((read.body, version), (body, 2));
        assert_eq!(read.meta, meta);
    }
}

/// `get_current_snapshot` shares the current body: every send reads the same bytes,
/// none a copy (a probe copied a 410 MB body for each of its sends).
#[tokio::test]
async fn sending_the_current_snapshot_does_not_copy_its_body() {
    let mut sm = StateMachine::open(None).await.expect("open");
    let mut builder = sm.clone();
    let built = builder.build_snapshot().await.expect("build");
    let a = sm
        .get_current_snapshot()
        .await
        .expect("get")
        .expect("a snapshot");
    let b = sm
        .get_current_snapshot()
        .await
        .expect("get")
        .expect("a snapshot");
    let at = |s: &Snapshot<TypeConfig>| s.snapshot.bytes().as_ptr();
    assert!(
        at(&a) == at(&built) && at(&b) == at(&built),
        "each get_current_snapshot copied the body"
    );
}
