//! `META`'s newest-segment LSN (N), raised off the commit path by the flusher's spare
//! helper: a clean shutdown answers only once that raise is made and nothing more will
//! change in the directory (another process may own the log once the lock is released);
//! dropping every handle releases the lock only after that I/O too; and when the helper
//! does not raise it, the next batch in the segment does.
#![cfg(feature = "failpoints")]

mod common;

use actix_wal::files::read_meta;
use actix_wal::storage::{default_storage, FsStorage};
use actix_wal::LogDir;
use actix_wal::*;
use common::{append_until_segments, segment_lsns};
use fail::FailScenario;
use std::path::Path;
use std::time::{Duration, Instant};

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256)
        .preallocate(false)
}

/// Every file of the directory with its length, and `META`'s bytes.
fn image(dir: &Path) -> (Vec<(String, u64)>, Vec<u8>) {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            (e.file_name().into_string().unwrap(), len)
        })
        .collect();
    files.sort();
    let meta = std::fs::read(dir.join("META")).unwrap_or_default();
    (files, meta)
}

/// A log of small segments past its second, rolled over into a new one with the spare
/// helper's failpoint set to `action` just before: that segment's raise of N goes to a
/// helper under `action`. Returns the new segment's first LSN.
async fn roll_over_with_helper(dir: &Path, action: &str) -> (Wal, u64) {
    let wal = Wal::open(dir, small()).await.unwrap();
    append_until_segments(&wal, dir, 2).await;
    fail::cfg("spare::before_raise", action).unwrap();
    let n = segment_lsns(dir).len();
    append_until_segments(&wal, dir, n).await;
    let newest = *segment_lsns(dir).last().unwrap();
    (wal, newest)
}

#[actix::test]
async fn shutdown_answers_after_the_newest_segment_is_raised_and_the_flusher_is_settled() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    // The new segment's raise goes to a helper still asleep when the shutdown comes.
    let (wal, newest) = roll_over_with_helper(d.path(), "sleep(400)").await;

    wal.queue().send(Shutdown).await.unwrap().unwrap();
    let settled = image(d.path());
    let meta = read_meta(&FsStorage, d.path()).unwrap().unwrap();
    assert_eq!(
        meta.newest_lsn, newest,
        "the newest segment's raise is done before the shutdown is answered"
    );
    // The lock is released: nothing may change in the directory from now on.
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        image(d.path()),
        settled,
        "the directory changed after the shutdown was answered"
    );
    fail::remove("spare::before_raise");
    wal.shutdown().await.unwrap();
    assert_eq!(image(d.path()), settled, "nor after the flusher stopped");

    // The log opens, its newest segment with records in it.
    let wal = Wal::open(d.path(), small()).await.unwrap();
    assert!(wal.recovery_report().next_lsn > Lsn(newest));
    wal.shutdown().await.unwrap();
    scenario.teardown();
}

#[actix::test]
async fn a_raise_the_helper_did_not_make_is_made_by_the_next_batch_in_the_segment() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    // The new segment's helper skips its raise, as a failed replace would.
    let (wal, newest) = roll_over_with_helper(d.path(), "return").await;
    let newest_now = || read_meta(&FsStorage, d.path()).unwrap().unwrap().newest_lsn;
    // The helper runs on its own: more batches in the segment until one finds it done.
    let mut batches = 0;
    while newest_now() < newest && batches < 20 {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        wal.append(vec![7; 60]).await.unwrap();
        batches += 1;
    }
    assert_eq!(
        segment_lsns(d.path()).last(),
        Some(&newest),
        "still in the same segment"
    );
    assert_eq!(
        newest_now(),
        newest,
        "N raised by a batch after the helper ({batches} batches)"
    );
    fail::remove("spare::before_raise");
    wal.shutdown().await.unwrap();
    scenario.teardown();
}

#[actix::test]
async fn dropping_every_handle_releases_the_directory_only_after_the_flusher_is_gone() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    // The new segment's helper is still asleep when the last handle goes.
    let (wal, _) = roll_over_with_helper(d.path(), "sleep(400)").await;
    drop(wal);
    // The moment the lock can be taken, the directory must be as it will stay.
    let deadline = Instant::now() + Duration::from_secs(10);
    let released = loop {
        if let Ok(dir) = LogDir::open(d.path(), default_storage()) {
            let released = image(d.path());
            drop(dir);
            break released;
        }
        assert!(
            Instant::now() < deadline,
            "the directory was not released within 10 s"
        );
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    };
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        image(d.path()),
        released,
        "the directory changed after its lock was released"
    );
    fail::remove("spare::before_raise");
    scenario.teardown();
}
