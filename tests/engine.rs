//! The log as a storage engine, through the actors: durable-later appends
//! (`Durability::Buffered`, then `wait_durable`) and bulk appends (`append_batch`).

mod common;
use actix_wal::*;
use common::segment_count;
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
    // Already durable: at once, also after shutdown. LSN 0 is never given out (issue 20,
    // item 6).
    assert_eq!(wal.wait_durable(Lsn(1)).await.unwrap(), Lsn(1));
    assert!(matches!(
        wal.wait_durable(Lsn(0)).await,
        Err(WalError::LsnNotAssigned { lsn: Lsn(0), .. })
    ));
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

fn read_all(dir: &std::path::Path) -> Vec<Record> {
    LogReader::open(dir)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[actix::test]
async fn append_batch_gets_consecutive_lsns_one_reply_and_reads_back_in_order() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(wal.append("before").await.unwrap(), Lsn(1));
    let records: Vec<Vec<u8>> = (0..5).map(|i| format!("b{i}").into_bytes()).collect();
    assert_eq!(wal.append_batch(records.clone()).await.unwrap(), Lsn(2));
    assert_eq!(wal.append("after").await.unwrap(), Lsn(7));
    // The options are Append's: buffered answers at enqueue, with the first LSN.
    let msg = AppendBatch::new(["x", "y"])
        .durability(Durability::Buffered)
        .flush_now();
    assert_eq!(wal.send(msg).await.unwrap(), Lsn(8));
    assert_eq!(wal.wait_durable(Lsn(9)).await.unwrap(), Lsn(9));
    wal.shutdown().await.unwrap();
    let recs = read_all(d.path());
    let payloads: Vec<&[u8]> = recs.iter().map(|r| r.payload.as_slice()).collect();
    let mut want: Vec<&[u8]> = vec![b"before"];
    want.extend(records.iter().map(Vec::as_slice));
    want.extend([&b"after"[..], b"x", b"y"]);
    assert_eq!(payloads, want);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.lsn, Lsn(i as u64 + 1));
        assert_eq!(
            r.txn, None,
            "each record is a frame of its own, not a transaction"
        );
    }
}

#[actix::test]
async fn an_empty_or_oversized_append_batch_is_refused_whole() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        max_queue_bytes: 64 * 1024,
        ..WalConfig::default().segment_size_bytes(64 * 1024)
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert!(matches!(
        wal.append_batch(Vec::new()).await,
        Err(WalError::EmptyBatch)
    ));
    // 65 records of 1,000 bytes: 65 * 1,024 bytes of frames, one frame over the bound.
    let big: Vec<Vec<u8>> = (0..65).map(|_| vec![7u8; 1000]).collect();
    match wal.append_batch(big).await {
        Err(WalError::BatchTooLarge {
            records: 65,
            bytes: 66_560,
            max_bytes: 65_536,
            ..
        }) => {}
        other => panic!("expected BatchTooLarge, got {other:?}"),
    }
    // Nothing of either was queued; one record less fits.
    let fits: Vec<Vec<u8>> = (0..64).map(|_| vec![7u8; 1000]).collect();
    assert_eq!(wal.append_batch(fits).await.unwrap(), Lsn(1));
    assert_eq!(wal.append("next").await.unwrap(), Lsn(65));
    wal.shutdown().await.unwrap();
    assert_eq!(read_all(d.path()).len(), 65);
}

#[actix::test]
async fn with_when_full_fail_an_append_batch_fails_whole_when_the_queue_lacks_room() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        max_queue_bytes: 64 * 1024,
        when_full: WhenFull::Fail,
        ..slow_timer_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    // 20 KB buffered and not yet due: the queue holds it.
    let held = wal.send(buffered(&"h".repeat(20_000))).await.unwrap();
    assert_eq!(held, Lsn(1));
    let batch: Vec<Vec<u8>> = (0..50).map(|_| vec![1u8; 1000]).collect();
    assert!(matches!(
        wal.append_batch(batch.clone()).await,
        Err(WalError::QueueFull { .. })
    ));
    assert_eq!(wal.wait_durable(held).await.unwrap(), held);
    // None of its records took an LSN; with room it goes in whole.
    assert_eq!(wal.append_batch(batch).await.unwrap(), Lsn(2));
    wal.shutdown().await.unwrap();
    assert_eq!(read_all(d.path()).len(), 51);
}

#[actix::test]
async fn an_append_batch_spans_write_batches_and_segments_and_has_no_transaction_cap() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(
        d.path(),
        WalConfig::default().segment_size_bytes(256 * 1024),
    )
    .await
    .unwrap();
    // More records than a transaction can hold (65,535), 32 bytes of frame each.
    let records: Vec<Vec<u8>> = (0..70_000u64).map(|i| i.to_le_bytes().to_vec()).collect();
    let before = wal.stats().await.unwrap();
    assert_eq!(wal.append_batch(records).await.unwrap(), Lsn(1));
    let after = wal.stats().await.unwrap();
    assert_eq!(
        after.durable_lsn,
        Lsn(70_000),
        "one reply, after the last is durable"
    );
    assert!(
        after.flushes > before.flushes + 4,
        "split across write batches: {} flushes",
        after.flushes - before.flushes
    );
    wal.shutdown().await.unwrap();
    let segments = segment_count(d.path());
    assert!(
        segments > 4,
        "across segment rollovers: {segments} segments"
    );
    let recs = read_all(d.path());
    assert_eq!(recs.len(), 70_000);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            (r.lsn, r.payload.as_slice()),
            (Lsn(i as u64 + 1), &(i as u64).to_le_bytes()[..])
        );
    }
}
