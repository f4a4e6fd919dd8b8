//! Durable-later appends when the disk fails: `wait_durable` resolves with the error that
//! kept its LSN from becoming durable. Failpoints: one test function, run alone.
#![cfg(feature = "failpoints")]

mod common;

use actix_wal::*;
use common::fault_config;
use fail::FailScenario;

fn buffered(payload: &str) -> Append {
    Append::new(payload).durability(Durability::Buffered)
}

#[actix::test]
async fn wait_durable_fails_with_the_error_that_kept_its_lsn_from_disk() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        flush_interval_ms: 60_000,
        ..fault_config()
    };
    let wal = Wal::open(d.path(), cfg.clone()).await.unwrap();
    let durable = wal.append("durable").await.unwrap();

    // A failed write: the batch is cut back, and the waiter gets the write's error.
    fail::cfg("flusher::before_write", "return(EIO)").unwrap();
    let lsn = wal.send(buffered("lost")).await.unwrap();
    match wal.wait_durable(lsn).await {
        Err(WalError::Io { op: "write", .. }) => {}
        other => panic!("expected the write's I/O error, got {other:?}"),
    }
    fail::remove("flusher::before_write");
    // What was durable stays so; the failed LSN is given out again.
    assert_eq!(wal.wait_durable(durable).await.unwrap(), durable);
    let again = wal.send(buffered("kept")).await.unwrap();
    assert_eq!(again, lsn, "a failed write's LSNs are given out again");
    assert_eq!(wal.wait_durable(again).await.unwrap(), again);

    // Poisoned: every fsync fails, the rewrites too.
    fail::cfg("flusher::before_sync", "return(EIO)").unwrap();
    let doomed = wal.send(buffered("doomed")).await.unwrap();
    match wal.wait_durable(doomed).await {
        Err(WalError::Poisoned { .. }) => {}
        other => panic!("expected Poisoned, got {other:?}"),
    }
    fail::remove("flusher::before_sync");
    assert!(matches!(
        wal.wait_durable(doomed).await,
        Err(WalError::Poisoned { .. })
    ));
    assert_eq!(wal.wait_durable(again).await.unwrap(), again);
    let _ = wal.shutdown().await;

    // Shut down while a buffered append waits: shutdown flushes it, the waiter is answered.
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let last = wal.send(buffered("at shutdown")).await.unwrap();
    let waiter = {
        let wal = wal.clone();
        actix::spawn(async move { wal.wait_durable(last).await })
    };
    wal.shutdown().await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), last);
    let recs: Vec<Record> = LogReader::open(d.path())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(recs.last().unwrap().payload, b"at shutdown");
    // The cut-back write left nothing; the poisoned batch's bytes may have reached the disk
    // (its fsync failed), and recovery may keep them: it was never acknowledged either way.
    assert!(recs.iter().all(|r| r.payload != b"lost"));
    scenario.teardown();
}
