//! A retention run that fails after it has replaced `META` (a segment's removal refused:
//! `EACCES`, `EPERM`) has still moved the log's first LSN and may have invalidated
//! cursors, durably. What `META` says holds at once: reads and subscribers start at the
//! new first LSN, and each invalidated cursor is alerted and named with what it held.
//! The segments left are removed by the next run that succeeds. (A probe, as `nobody` on
//! a directory made read-only: after the failed checkpoint, `read(1)` still answered
//! below the new first LSN 2950, a subscriber from 1 got records, and the invalidated
//! cursor's alert never fired, not even after the next run succeeded.)

mod common;

use actix_wal::*;
use common::alerts::AlertLog;
use common::faulty::FaultyFs;
use common::segment_lsns;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const EACCES: i32 = 13;
const SEGMENT: u64 = 4096;

fn small(fs: &Arc<FaultyFs>) -> WalConfig {
    WalConfig {
        storage: fs.clone(),
        ..WalConfig::default()
            .segment_size_bytes(SEGMENT)
            .max_record_bytes(256)
            .preallocate(false)
    }
}

/// Appends `n` records of 100 bytes (about 40 per segment).
async fn append_n(wal: &Wal, n: u64) {
    for i in 0..n {
        let mut p = format!("record {i} ").into_bytes();
        p.resize(100, b'.');
        wal.append(p).await.unwrap();
    }
}

#[actix::test]
async fn a_checkpoint_whose_removals_fail_still_moves_where_reads_begin() {
    let d = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let wal = Wal::open(d.path(), small(&fs)).await.unwrap();
    append_n(&wal, 400).await;
    let segments_before = segment_lsns(d.path()).len();
    fs.fail_remove(".wal", EACCES);
    let failed = wal.truncate_before(Lsn(300)).await;
    assert!(
        matches!(failed, Err(WalError::PermissionDenied { .. })),
        "{failed:?}"
    );
    assert_eq!(
        segment_lsns(d.path()).len(),
        segments_before,
        "none removed"
    );
    // `META` took the checkpoint before the removals failed: that is where the log
    // begins now, for every reader.
    let first = wal.stats().await.unwrap().first_lsn;
    assert_eq!(first, Lsn(300), "the first LSN the log reports");
    assert_eq!(wal.health().await.unwrap().first_lsn, first);
    let below = wal.read(Lsn(1)).await;
    assert!(
        matches!(below, Err(WalError::NotFound { .. })),
        "read(1) below the first LSN: {below:?}"
    );
    let range = wal.read_range(Lsn(1)..Lsn(100), 1 << 20).await;
    assert!(
        matches!(range, Err(WalError::NotFound { .. })),
        "read_range(1..100): {:?}",
        range.map(|r| r.len())
    );
    assert_eq!(wal.read(first).await.unwrap().lsn, first);
    let mut sub = wal.subscribe(Lsn(1));
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
    assert!(
        matches!(got, Ok(Some(Err(WalError::SubscriberBehind { .. })))),
        "a subscriber from 1: {:?}",
        got.map(|o| o.map(|r| r.map(|rec| rec.lsn)))
    );
    // Once removals work again, the next run removes what was left.
    fs.heal();
    let removed = wal.truncate_before(Lsn(300)).await.unwrap();
    assert!(removed > 0, "the next run removed nothing");
    assert!(segment_lsns(d.path()).len() < segments_before);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_cursor_invalidated_by_a_run_that_fails_is_alerted_and_says_what_it_held() {
    let d = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let (to, alerts) = AlertLog::start_new();
    let cap = 5 * SEGMENT;
    let cfg = small(&fs).max_cursor_lag_bytes(cap).alert_to(to);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let lagging = wal.cursor("lagging").await.unwrap();
    append_n(&wal, 400).await;
    fs.fail_remove(".wal", EACCES);
    assert!(wal.truncate_before(Lsn(400)).await.is_err());
    let h = wal.health().await.unwrap();
    assert!(
        h.cursors
            .iter()
            .any(|c| c.name == "lagging" && c.invalidated),
        "META has it invalidated: {:?}",
        h.cursors
    );
    assert_eq!(h.active_alerts, [AlertKind::CursorInvalidated]);
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    {
        let sent = alerts.lock().unwrap();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].kind, AlertKind::CursorInvalidated);
        assert!(sent[0].value > cap as f64, "{:?}", sent[0]);
    }
    // Its next use names what it held when it was invalidated.
    match lagging.advance(Lsn(50)).await {
        Err(WalError::CursorInvalidated { lag_bytes, .. }) => {
            assert!(lag_bytes > cap, "lag_bytes {lag_bytes}, cap {cap}")
        }
        other => panic!("expected CursorInvalidated, got {other:?}"),
    }
    // The run that succeeds later alerts nothing more for it.
    fs.heal();
    wal.truncate_before(Lsn(400)).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(alerts.lock().unwrap().len(), 1);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_cursor_found_invalidated_at_open_keeps_the_alert_on() {
    let d = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let cap = 5 * SEGMENT;
    let wal = Wal::open(d.path(), small(&fs).max_cursor_lag_bytes(cap))
        .await
        .unwrap();
    wal.cursor("lagging").await.unwrap();
    append_n(&wal, 400).await;
    wal.truncate_before(Lsn(400)).await.unwrap();
    wal.shutdown().await.unwrap();
    // Reopened (after a restart, or a crash between `META` and the removals): the alert
    // is on while an invalidated cursor is listed, as it was before the restart.
    let (to, alerts) = AlertLog::start_new();
    let wal = Wal::open(d.path(), small(&fs).max_cursor_lag_bytes(cap).alert_to(to))
        .await
        .unwrap();
    assert_eq!(
        wal.health().await.unwrap().active_alerts,
        [AlertKind::CursorInvalidated]
    );
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        alerts
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.kind, a.state))
            .collect::<Vec<_>>(),
        [(AlertKind::CursorInvalidated, AlertState::Fired)]
    );
    wal.remove_cursor("lagging").await.unwrap();
    assert!(wal.health().await.unwrap().active_alerts.is_empty());
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn segments_a_failed_run_left_are_removed_at_the_next_open() {
    // Left by a run whose removals failed, as by a crash between `META` and the removals:
    // the next open removes them, not only the next checkpoint (a probe's `retained_bytes`
    // stayed above `retention_bytes` after a crash until the application checkpointed).
    let d = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let wal = Wal::open(d.path(), small(&fs)).await.unwrap();
    append_n(&wal, 400).await;
    fs.fail_remove(".wal", EACCES);
    assert!(wal.truncate_before(Lsn(300)).await.is_err());
    wal.shutdown().await.unwrap();
    fs.heal();
    let left = segment_lsns(d.path());
    assert!(left[0] < 300 && left[1] <= 300, "{left:?}");
    let wal = Wal::open(d.path(), small(&fs)).await.unwrap();
    let now = segment_lsns(d.path());
    assert!(
        now.len() == 1 || now[1] > 300,
        "segments wholly below the first LSN 300 left after the open: {now:?}"
    );
    assert_eq!(wal.read(Lsn(300)).await.unwrap().lsn, Lsn(300));
    wal.shutdown().await.unwrap();
}
