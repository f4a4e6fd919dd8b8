//! A flusher that dies (a panic caught in its write path, or one that kills its actor)
//! while its spare helper is still at work: once `Shutdown` has answered and the lock is
//! released, nothing of that dead flusher may change the directory (the next opener's
//! recovery removes leftover spares, and once raced a dead flusher removing the same one:
//! "open failed: I/O error during remove on …/spare-….wal.tmp: not found", 1 run of
//! tests/model_flusher_deaths.rs in about 30). And recovery takes a leftover spare
//! already gone as removed.
#![cfg(feature = "failpoints")]

mod common;

use actix_wal::*;
use common::{append_until_segments, file_names, segment_lsns};
use fail::FailScenario;
use std::time::Duration;

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256)
        .preallocate(false)
}

/// Rolls a log of small segments over with its spare helper asleep (`spare::before_raise`,
/// after it created the next spare), makes the flusher die at `point` with `action` on the
/// next batch, shuts the log down, and checks that the directory stays as `Shutdown` left
/// it, and that the log opens again.
async fn die_with_the_helper_asleep(point: &str, action: &str) {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    append_until_segments(&wal, d.path(), 2).await;
    fail::cfg("spare::before_raise", "sleep(500)").unwrap();
    let n = segment_lsns(d.path()).len();
    append_until_segments(&wal, d.path(), n).await;
    // The helper starts after the rollover's batch: its spare may come a moment later.
    let has_spare = || file_names(d.path()).iter().any(|f| f.starts_with("spare-"));
    for _ in 0..200 {
        if has_spare() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        has_spare(),
        "the helper made its spare before it fell asleep: {:?}",
        file_names(d.path())
    );

    fail::cfg(point, action).unwrap();
    // The flusher dies on this batch; the queue writes it itself (degraded mode).
    wal.append(vec![8; 60]).await.unwrap();
    fail::remove(point);
    wal.queue().send(Shutdown).await.unwrap().unwrap();
    let released = file_names(d.path());
    // The helper wakes 500 ms after it fell asleep: its flusher must do nothing then.
    actix_rt::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        file_names(d.path()),
        released,
        "the dead flusher changed the directory after Shutdown released it"
    );
    fail::remove("spare::before_raise");
    wal.shutdown().await.unwrap();

    let wal = Wal::open(d.path(), small()).await.unwrap();
    assert!(
        !file_names(d.path()).iter().any(|f| f.starts_with("spare-")),
        "recovery removed the dead flusher's spare"
    );
    wal.shutdown().await.unwrap();
    scenario.teardown();
}

#[actix::test]
async fn a_spare_a_killed_flusher_left_is_removed_while_the_log_holds_the_directory() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    append_until_segments(&wal, d.path(), 2).await;
    fail::cfg("spare::before_raise", "sleep(300)").unwrap();
    let n = segment_lsns(d.path()).len();
    append_until_segments(&wal, d.path(), n).await;
    let spares = || -> Vec<String> {
        file_names(d.path())
            .into_iter()
            .filter(|f| f.starts_with("spare-"))
            .collect()
    };
    // The helper makes its spare off the append path: on a loaded machine it may come a
    // little after the rollover (bounded wait; it then sleeps in `spare::before_raise`).
    let mut left = spares();
    for _ in 0..250 {
        if !left.is_empty() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        left = spares();
    }
    assert_eq!(left.len(), 1, "the helper made its spare: {left:?}");

    fail::cfg("flusher::handle", "1*panic(injected)").unwrap();
    wal.append(vec![8; 60]).await.unwrap();
    fail::remove("flusher::handle");
    // The helper wakes, its dead flusher is dropped fenced off and leaves the spare; the
    // queue, still holding the directory, removes it (bounded wait).
    let mut waited_ms = 0;
    while spares().contains(&left[0]) && waited_ms < 5_000 {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        waited_ms += 20;
    }
    assert!(
        !spares().contains(&left[0]),
        "the dead flusher's spare {} is still there after {waited_ms} ms",
        left[0]
    );
    fail::remove("spare::before_raise");
    wal.shutdown().await.unwrap();
    scenario.teardown();
}

#[actix::test]
async fn a_flusher_panic_caught_in_its_write_path_leaves_the_directory_as_shutdown_released_it() {
    die_with_the_helper_asleep("flusher::before_write", "1*panic(injected)").await;
}

#[actix::test]
async fn a_flusher_killed_outside_its_caught_region_leaves_the_directory_as_shutdown_released_it() {
    die_with_the_helper_asleep("flusher::handle", "1*panic(injected)").await;
}

/// Recovery removes leftover spares; one gone already (`ENOENT`) is as good as removed,
/// not a reason to refuse the log.
#[actix::test]
async fn a_leftover_spare_gone_before_recovery_removes_it_does_not_fail_the_open() {
    const ENOENT: i32 = 2;
    // No failpoint of its own, but one at a time with the tests that set them.
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    wal.append(vec![7; 60]).await.unwrap();
    wal.shutdown().await.unwrap();
    // An unwritten spare (zeros: never adopted), left by a writer that died.
    let spare = d.path().join("spare-00000000000000000009.wal.tmp");
    std::fs::write(&spare, vec![0u8; 64]).unwrap();

    let fs = common::faulty::FaultyFs::new();
    fs.fail_remove(".wal.tmp", ENOENT);
    let wal = Wal::open(
        d.path(),
        WalConfig {
            storage: fs.clone(),
            ..small()
        },
    )
    .await
    .expect("a leftover already gone does not fail the open");
    assert_eq!(wal.recovery_report().next_lsn, Lsn(2));
    assert!(
        !wal.recovery_report().removed.contains(&spare),
        "a file recovery did not remove is not reported removed"
    );
    wal.shutdown().await.unwrap();
    scenario.teardown();
}
