//! A poisoned log refuses every call that would change it (issue 20, item 1). A rewind
//! whose removal step fails (an immutable segment's `EPERM`, `EIO`) poisons the log and
//! leaves its `TruncateAfter` intent in `META` for the reopen to complete; a checkpoint
//! accepted then used to move the first LSN past the intent's cut and remove the segment
//! the intent needs, and every reopen failed ("rewind to LSN x: no segment holds it").

mod common;

use actix_wal::files::segment_name;
use actix_wal::*;
use common::faulty::FaultyFs;
use common::segment_lsns;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const EPERM: i32 = 1;

fn small(fs: &Arc<FaultyFs>) -> WalConfig {
    WalConfig {
        storage: fs.clone(),
        ..WalConfig::default()
            .segment_size_bytes(4096)
            .max_record_bytes(256)
            .preallocate(false)
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:05}").into_bytes()
}

/// Every file of the directory and a hash of its bytes, but the flusher's prepared spare
/// (`spare-*.tmp`, no part of the log: the flusher removes it when it stops).
fn snapshot(dir: &Path) -> BTreeMap<String, (usize, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with("spare-"))
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            (name, (bytes.len(), crc32fast::hash(&bytes)))
        })
        .collect()
}

fn is_poisoned<T: std::fmt::Debug>(r: &Result<T, WalError>) -> bool {
    matches!(r, Err(WalError::Poisoned { .. }))
}

/// 400 records over four segments, then `truncate_after(150)` whose removal of
/// the newest segment fails with `EPERM` (an immutable file): the log is poisoned, the
/// intent stays in `META`. Returns the open log and the fault switch (healed).
async fn poisoned_by_a_failed_rewind(dir: &Path) -> (Wal, Arc<FaultyFs>) {
    let fs = FaultyFs::new();
    let wal = Wal::open(dir, small(&fs)).await.unwrap();
    for i in 1..=400 {
        assert_eq!(wal.append(payload(i)).await.unwrap(), Lsn(i));
    }
    let segs = segment_lsns(dir);
    assert!(segs.len() > 3, "{segs:?}");
    fs.fail_remove(&segment_name(*segs.last().unwrap()), EPERM);
    let rewind = wal.truncate_after(Lsn(150)).await;
    assert!(is_poisoned(&rewind), "{rewind:?}");
    assert!(wal.health().await.unwrap().poisoned);
    // The operator clears the immutable flag: the disk works again, the log stays stopped.
    fs.heal();
    (wal, fs)
}

#[actix::test]
async fn a_checkpoint_on_a_poisoned_log_is_refused_and_the_reopen_completes_the_rewind() {
    let d = tempfile::tempdir().unwrap();
    let (wal, fs) = poisoned_by_a_failed_rewind(d.path()).await;
    let checkpoint = wal.truncate_before(Lsn(400)).await;
    assert!(
        is_poisoned(&checkpoint),
        "a checkpoint on a poisoned log must be refused, got {checkpoint:?}"
    );
    assert!(is_poisoned(&wal.shutdown().await));

    let wal = match Wal::open(d.path(), small(&fs)).await {
        Ok(wal) => wal,
        Err(e) => panic!("the reopen must complete the rewind: {e}"),
    };
    let report = wal.recovery_report();
    assert_eq!((report.records, report.next_lsn), (150, Lsn(151)));
    assert_eq!(wal.read(Lsn(150)).await.unwrap().payload, payload(150));
    assert_eq!(wal.append(b"after".to_vec()).await.unwrap(), Lsn(151));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn every_state_changing_call_on_a_poisoned_log_is_refused_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (wal, fs) = poisoned_by_a_failed_rewind(d.path()).await;
    let before = snapshot(d.path());
    assert!(before.contains_key("POISONED"), "{:?}", before.keys());

    let mut refused = Vec::new();
    refused.push(("append", format!("{:?}", wal.append(b"a".to_vec()).await)));
    let buffered = Append::new(b"b".to_vec()).durability(Durability::Buffered);
    refused.push(("buffered append", format!("{:?}", wal.send(buffered).await)));
    let commit = wal.commit(vec![b"c".to_vec(), b"d".to_vec()]).await;
    refused.push(("commit", format!("{commit:?}")));
    let batch = wal.append_batch(vec![b"e".to_vec(), b"f".to_vec()]).await;
    refused.push(("append_batch", format!("{batch:?}")));
    for lsn in [1, 100, 150, 300, 400, u64::MAX] {
        let r = wal.truncate_before(Lsn(lsn)).await;
        refused.push(("truncate_before", format!("{r:?}")));
    }
    for lsn in [0, 100, 150, 399] {
        let r = wal.truncate_after(Lsn(lsn)).await;
        refused.push(("truncate_after", format!("{r:?}")));
    }
    for lsn in [401, 10_000] {
        let r = wal.reset(Lsn(lsn)).await;
        refused.push(("reset", format!("{r:?}")));
    }
    let meta = wal.set_meta(b"vote".to_vec()).await;
    refused.push(("set_meta", format!("{meta:?}")));
    for mode in [CommitMode::Sync, CommitMode::Async] {
        refused.push(("set_mode", format!("{:?}", wal.set_mode(mode).await)));
    }
    refused.push(("flush", format!("{:?}", wal.flush().await)));
    for (call, result) in &refused {
        assert!(
            result.starts_with("Err(Poisoned"),
            "{call} on a poisoned log: {result}"
        );
    }
    assert_eq!(snapshot(d.path()), before, "a refused call changed the log");
    let stats = wal.stats().await.unwrap();
    assert!(stats.poisoned);
    assert!(is_poisoned(&wal.shutdown().await));
    assert_eq!(snapshot(d.path()), before, "shutdown changed the log");

    // The reopen completes the rewind the poisoning interrupted.
    let wal = Wal::open(d.path(), small(&fs)).await.unwrap();
    assert_eq!(wal.recovery_report().next_lsn, Lsn(151));
    wal.shutdown().await.unwrap();
}

/// The synchronous `LogWriter` too: poisoned by an fsync that failed twice (the batch and
/// its rewrite), it refuses a checkpoint as it refuses appends and syncs.
#[test]
fn a_poisoned_log_writer_refuses_every_call_that_changes_the_log() {
    const EIO: i32 = 5;
    let d = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let opts = actix_wal::LogOptions {
        segment_size_bytes: 4096,
        max_record_bytes: 256,
        preallocate: false,
        storage: fs.clone(),
        ..Default::default()
    };
    let (mut w, _) = actix_wal::LogWriter::open(d.path(), opts).unwrap();
    for i in 1..=300 {
        w.append(&payload(i)).unwrap();
        w.sync().unwrap();
    }
    fs.fail_sync("", EIO);
    w.append(b"doomed").unwrap();
    let r = w.sync();
    assert!(is_poisoned(&r), "{r:?}");
    fs.heal();
    let before = snapshot(d.path());
    let checkpoint = w.truncate_before(Lsn(250));
    assert!(is_poisoned(&checkpoint), "checkpoint: {checkpoint:?}");
    assert!(is_poisoned(&w.append(b"x")));
    assert!(is_poisoned(&w.sync()));
    assert_eq!(snapshot(d.path()), before, "a refused call changed the log");
}
