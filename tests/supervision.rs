//! Supervision: a flusher that panics (at every named failpoint, once and repeatedly),
//! dies outside its caught region, or stalls, switches the log to degraded mode; nothing
//! acknowledged is lost or duplicated; the supervisor restarts the flusher and the log
//! goes back to async; restarts are counted; after too many deaths it gives up and the
//! log stays degraded but correct.
#![cfg(feature = "failpoints")]

mod common;

use actix_wal::*;
use common::*;
use fail::FailScenario;

const POINTS: [&str; 4] = [
    "flusher::before_write",
    "flusher::before_sync",
    "flusher::after_sync",
    "segment::before_create",
];

async fn panic_once_at(point: &str) {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), fault_config()).await.unwrap();
    fail::cfg(point, "1*panic(injected flusher panic)").unwrap();
    let outcomes = run_workload(&wal, 16, 0, 40, 7).await;
    fail::remove(point);
    assert_eq!(
        failures(&outcomes).len(),
        0,
        "{point}: a single panic fails nobody: {:?}",
        failures(&outcomes)
    );
    let s = wait_for(&wal, 10, "back to async", |s| {
        s.mode == WalMode::Async && s.flusher_restarts >= 1
    })
    .await;
    assert_eq!(s.flusher_deaths, 1, "{point}: one death");
    assert_eq!(s.flusher_restarts, 1, "{point}: one restart");
    // Async again: new appends go through the restarted flusher.
    let more = run_workload(&wal, 4, 1000, 10, 0).await;
    assert_eq!(acked(&more), 40);
    wal.shutdown().await.unwrap();
    check_log(d.path(), &[outcomes, more].concat());
}

#[actix::test]
async fn a_flusher_panic_at_each_failpoint_once_loses_nothing_and_recovers() {
    let scenario = FailScenario::setup();
    for point in POINTS {
        panic_once_at(point).await;
    }
    scenario.teardown();
}

#[actix::test]
async fn repeated_flusher_panics_keep_the_log_degraded_but_correct_until_removed() {
    let scenario = FailScenario::setup();
    for point in POINTS {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open(d.path(), fault_config()).await.unwrap();
        fail::cfg(point, "panic(injected flusher panic)").unwrap();
        let during = run_workload(&wal, 16, 0, 30, 5).await;
        let s = wal.stats().await.unwrap();
        assert!(s.flusher_deaths >= 1, "{point}: the flusher died: {s:?}");
        assert_eq!(
            failures(&during).len(),
            0,
            "{point}: degraded mode answers everyone"
        );
        fail::remove(point);
        let s = wait_for(&wal, 10, "back to async", |s| s.mode == WalMode::Async).await;
        assert!(s.flusher_restarts >= 1);
        let after = run_workload(&wal, 16, 1000, 10, 0).await;
        assert_eq!(acked(&after), 160);
        wal.shutdown().await.unwrap();
        check_log(d.path(), &[during, after].concat());
    }
    scenario.teardown();
}

#[actix::test]
async fn a_flusher_killed_outside_its_caught_region_is_noticed_through_its_drop_guard() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), fault_config()).await.unwrap();
    fail::cfg("flusher::handle", "1*panic(actor killed)").unwrap();
    let outcomes = run_workload(&wal, 16, 0, 20, 0).await;
    fail::remove("flusher::handle");
    assert_eq!(failures(&outcomes).len(), 0);
    let s = wait_for(&wal, 10, "back to async", |s| {
        s.mode == WalMode::Async && s.flusher_restarts == 1
    })
    .await;
    assert_eq!(s.flusher_deaths, 1);
    wal.shutdown().await.unwrap();
    check_log(d.path(), &outcomes);
    scenario.teardown();
}

#[actix::test]
async fn a_stalled_flusher_is_replaced_and_its_late_write_changes_nothing() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        flusher_stall_timeout_ms: 100,
        ..fault_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    fail::cfg("flusher::before_write", "1*sleep(700)").unwrap();
    let first = run_workload(&wal, 16, 0, 20, 0).await;
    assert_eq!(failures(&first).len(), 0);
    let s = wal.stats().await.unwrap();
    assert!(s.flusher_deaths >= 1, "the stall was noticed: {s:?}");
    wait_for(&wal, 10, "back to async", |s| s.mode == WalMode::Async).await;
    // Let the stalled thread wake up (it is fenced off) while more appends go on.
    let second = run_workload(&wal, 16, 1000, 30, 0).await;
    actix_rt::time::sleep(std::time::Duration::from_millis(800)).await;
    fail::remove("flusher::before_write");
    wal.shutdown().await.unwrap();
    check_log(d.path(), &[first, second].concat());
    scenario.teardown();
}

/// The stalled flusher's late write, where its batch's offsets were given to another
/// record since: the degraded path wrote the batch, a rewind cut it, and a new append took
/// its LSN and offset. The stalled thread checked its generation before the batch and
/// before its fsync but not before its write: it woke and wrote "old6" over the
/// acknowledged "new6".
#[actix::test]
async fn a_stalled_flusher_that_wakes_after_a_rewind_writes_nothing() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        flusher_stall_timeout_ms: 100,
        ..fault_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    for i in 1..=5 {
        wal.append(format!("pre{i}")).await.unwrap();
    }
    fail::cfg("flusher::before_write", "1*sleep(1500)").unwrap();
    // Written by the degraded path once the stall is noticed.
    assert_eq!(wal.append(b"old6".to_vec()).await.unwrap(), Lsn(6));
    wal.truncate_after(Lsn(5)).await.unwrap();
    assert_eq!(wal.append(b"new6".to_vec()).await.unwrap(), Lsn(6));
    // The stalled thread wakes.
    actix_rt::time::sleep(std::time::Duration::from_millis(2000)).await;
    fail::remove("flusher::before_write");
    wal.shutdown().await.unwrap();
    let payloads: Vec<Vec<u8>> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect();
    let want: Vec<Vec<u8>> = ["pre1", "pre2", "pre3", "pre4", "pre5", "new6"]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    assert_eq!(payloads, want);
    scenario.teardown();
}

#[actix::test]
async fn the_mode_reads_degraded_while_the_flusher_is_dead() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    // A long backoff keeps the log degraded long enough to look at it.
    let cfg = WalConfig {
        restart_backoff_initial_ms: 400,
        restart_backoff_max_ms: 400,
        ..fault_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    fail::cfg("flusher::before_write", "1*panic(once)").unwrap();
    let lsn = wal.append(b"first".to_vec()).await.unwrap();
    let s = wal.stats().await.unwrap();
    assert_eq!(s.mode, WalMode::Degraded);
    assert!(!s.flusher_healthy);
    // Degraded mode still answers only after fsync, correctly.
    let lsn2 = wal.append(b"second".to_vec()).await.unwrap();
    assert_eq!((lsn, lsn2), (Lsn(1), Lsn(2)));
    let s = wait_for(&wal, 10, "back to async", |s| s.mode == WalMode::Async).await;
    assert!(s.flusher_healthy);
    assert_eq!(s.flusher_restarts, 1);
    wal.shutdown().await.unwrap();
    let recs = check_log(d.path(), &[]);
    assert_eq!(recs.len(), 2);
    scenario.teardown();
}

#[actix::test]
async fn after_too_many_deaths_the_supervisor_gives_up_and_the_log_stays_degraded_and_correct() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        max_flusher_restarts: 2,
        restart_backoff_initial_ms: 1,
        restart_backoff_max_ms: 2,
        ..fault_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    fail::cfg("flusher::before_write", "panic(always)").unwrap();
    let outcomes = run_workload(&wal, 8, 0, 40, 0).await;
    assert_eq!(failures(&outcomes).len(), 0);
    let s = wal.stats().await.unwrap();
    assert_eq!(s.mode, WalMode::Degraded);
    assert!(s.flusher_restarts <= 2, "restarts bounded: {s:?}");
    assert_eq!(s.flusher_deaths, s.flusher_restarts + 1);
    // The caller may ask for another try once the fault is gone.
    fail::remove("flusher::before_write");
    wal.restart_flusher().await.unwrap();
    wait_for(&wal, 10, "back to async", |s| s.mode == WalMode::Async).await;
    wal.shutdown().await.unwrap();
    check_log(d.path(), &outcomes);
    scenario.teardown();
}

#[actix::test]
async fn switching_modes_under_load_while_the_flusher_dies_loses_nothing() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), fault_config()).await.unwrap();
    fail::cfg("flusher::before_sync", "2*panic(mode switch fault)").unwrap();
    let load = {
        let wal = wal.clone();
        actix_rt::spawn(async move { run_workload(&wal, 16, 0, 40, 6).await })
    };
    for i in 0..10 {
        let mode = if i % 2 == 0 {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        wal.set_mode(mode).await.unwrap();
        actix_rt::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    wal.set_mode(CommitMode::Async).await.unwrap();
    let outcomes = load.await.unwrap();
    fail::remove("flusher::before_sync");
    assert_eq!(failures(&outcomes).len(), 0);
    wait_for(&wal, 10, "back to async", |s| s.mode == WalMode::Async).await;
    wal.shutdown().await.unwrap();
    check_log(d.path(), &outcomes);
    scenario.teardown();
}

/// Stall detection over a long run (issue 23, item 3, where a stall timer shared by all
/// batches was tried and not kept): after one-record batches for over twice the stall
/// timeout, none was taken for a stall (a deadline set once, not per batch, would have
/// fired), and a real stall is still noticed; so is one after an idle spell longer than
/// the timeout. Each stalled append is answered by the degraded path, not by the flusher
/// that slept.
#[actix::test]
async fn stalls_are_noticed_after_many_batches_and_after_idle_and_none_is_taken_for_one() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let stall_ms = 500;
    let cfg = WalConfig {
        flusher_stall_timeout_ms: stall_ms,
        segment_size_bytes: 1 << 20,
        ..fault_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let mut appended = 0usize;
    let begin = std::time::Instant::now();
    while begin.elapsed() < std::time::Duration::from_millis(stall_ms * 5 / 2) {
        wal.append(format!("busy {appended}").into_bytes())
            .await
            .unwrap();
        appended += 1;
    }
    let s = wal.stats().await.unwrap();
    assert_eq!(
        s.flusher_deaths,
        0,
        "no stall after {appended} one-record batches in {} ms: {s:?}",
        begin.elapsed().as_millis()
    );
    assert!(appended > 10, "a batch every few ms at most: {appended}");
    for round in 0..2 {
        let before = wal.stats().await.unwrap().flusher_deaths;
        // The flusher sleeps four stall timeouts on its next write.
        fail::cfg(
            "flusher::before_write",
            &format!("1*sleep({})", stall_ms * 4),
        )
        .unwrap();
        wal.append(format!("stalled {round}").into_bytes())
            .await
            .unwrap();
        appended += 1;
        let s = wal.stats().await.unwrap();
        assert_eq!(
            s.flusher_deaths,
            before + 1,
            "stall {round} noticed before its write woke up: {s:?}"
        );
        wait_for(&wal, 10, "back to async", |s| s.mode == WalMode::Async).await;
        // Idle past the stall timeout (and past the slept write, fenced off by then).
        actix_rt::time::sleep(std::time::Duration::from_millis(stall_ms * 5)).await;
        fail::remove("flusher::before_write");
    }
    wal.shutdown().await.unwrap();
    assert_eq!(check_log(d.path(), &[]).len(), appended);
    scenario.teardown();
}
