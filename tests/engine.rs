//! The log as a storage engine, through the actors: durable-later appends
//! (`Durability::Buffered`, then `wait_durable`).

use actix_wal::*;
use std::time::Duration;

/// Buffered appends would wait a minute for the timer: only `wait_durable` flushes them.
fn slow_timer_config() -> WalConfig {
    WalConfig {
        flush_interval_ms: 60_000,
        ..WalConfig::default().segment_size_bytes(64 * 1024)
    }
}

fn buffered(payload: &str) -> Append {
    Append::new(payload).durability(Durability::Buffered)
}

#[actix::test]
async fn wait_durable_resolves_after_the_fsync_of_buffered_appends() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), slow_timer_config()).await.unwrap();
    let mut last = Lsn(0);
    for i in 0..50 {
        last = wal.send(buffered(&format!("b{i}"))).await.unwrap();
    }
    assert_eq!(last, Lsn(50), "LSNs are given at enqueue");
    let before = wal.stats().await.unwrap();
    assert!(
        before.durable_lsn < last,
        "nothing flushed yet: {:?}",
        before.durable_lsn
    );
    // Well within the minute the timer would take: the wait makes the batch due.
    let got = tokio::time::timeout(Duration::from_secs(10), wal.wait_durable(Lsn(20)))
        .await
        .expect("wait_durable dispatches the batch holding its LSN");
    assert_eq!(got.unwrap(), Lsn(20));
    let after = wal.stats().await.unwrap();
    assert!(after.durable_lsn >= Lsn(20) && after.flushes > before.flushes);
    assert_eq!(wal.wait_durable(last).await.unwrap(), last);
    assert!(wal.stats().await.unwrap().durable_lsn >= last);
    // On disk now, read by an offline reader while the log is still open.
    let recs: Vec<Record> = LogReader::open(d.path())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(recs.len(), 50);
    assert_eq!(recs[49].payload, b"b49");
    // Already durable: at once, also LSN 0 and after shutdown.
    assert_eq!(wal.wait_durable(Lsn(1)).await.unwrap(), Lsn(1));
    assert_eq!(wal.wait_durable(Lsn(0)).await.unwrap(), Lsn(0));
    wal.shutdown().await.unwrap();
    assert_eq!(wal.wait_durable(last).await.unwrap_or(Lsn(0)), last);
}

#[actix::test]
async fn wait_durable_of_an_lsn_never_assigned_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), slow_timer_config()).await.unwrap();
    wal.append("one").await.unwrap();
    wal.send(buffered("two")).await.unwrap();
    for lsn in [3, 4, u64::MAX] {
        match wal.wait_durable(Lsn(lsn)).await {
            Err(WalError::LsnNotAssigned {
                lsn: asked,
                next_lsn,
            }) => assert_eq!((asked, next_lsn), (Lsn(lsn), Lsn(3))),
            other => panic!("LSN {lsn}: expected LsnNotAssigned, got {other:?}"),
        }
    }
    // The refusal changed nothing: LSN 2 becomes durable when asked, 3 is the next.
    assert_eq!(wal.wait_durable(Lsn(2)).await.unwrap(), Lsn(2));
    assert_eq!(wal.append("three").await.unwrap(), Lsn(3));
    // Sent as a message to the queue, the same.
    let r = wal.queue().send(WaitDurable(Lsn(3))).await.unwrap();
    assert_eq!(r.unwrap(), Lsn(3));
    wal.shutdown().await.unwrap();
}
