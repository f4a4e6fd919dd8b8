//! Group commit through the actor pipeline: durable replies, shared fsyncs, transactions,
//! buffered appends, back-pressure and shutdown.

use actix_wal::*;
use futures::future::join_all;

fn small_config() -> WalConfig {
    WalConfig {
        segment_size_bytes: 64 * 1024,
        max_record_bytes: 4096,
        max_batch_bytes: 32 * 1024,
        ..WalConfig::default()
    }
}

fn read_all(dir: &std::path::Path) -> Vec<Record> {
    LogReader::open(dir)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[actix::test]
async fn concurrent_durable_appends_get_distinct_lsns_and_share_fsyncs() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    let futs = (0..2000u32).map(|i| {
        let wal = wal.clone();
        async move { (i, wal.append(i.to_le_bytes().to_vec()).await.unwrap()) }
    });
    let results = join_all(futs).await;
    let stats = wal.stats().await.unwrap();
    assert!(
        stats.flushes < 2000,
        "group commit shares fsyncs: {} flushes",
        stats.flushes
    );
    assert_eq!(stats.entries_written, 2000);
    assert_eq!(stats.durable_lsn, Lsn(2000));
    wal.shutdown().await.unwrap();
    let recs = read_all(d.path());
    assert_eq!(recs.len(), 2000);
    for (i, lsn) in results {
        let r = &recs[(lsn.0 - 1) as usize];
        assert_eq!(r.lsn, lsn);
        assert_eq!(r.payload, i.to_le_bytes());
    }
}

#[actix::test]
async fn appends_after_shutdown_fail_with_shut_down() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    wal.append(b"x".to_vec()).await.unwrap();
    wal.shutdown().await.unwrap();
    assert!(matches!(
        wal.append(b"y".to_vec()).await,
        Err(WalError::ShutDown)
    ));
    // The lock is released: the log opens again and continues at the next LSN.
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    assert_eq!(wal.recovery_report().next_lsn, Lsn(2));
    assert_eq!(wal.append(b"z".to_vec()).await.unwrap(), Lsn(2));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_commit_gets_consecutive_lsns_and_reads_back_whole() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    let a = wal.append(b"before".to_vec()).await.unwrap();
    let first = wal
        .commit(vec![b"t1".to_vec(), b"t2".to_vec(), b"t3".to_vec()])
        .await
        .unwrap();
    let b = wal.append(b"after".to_vec()).await.unwrap();
    assert_eq!((a, first, b), (Lsn(1), Lsn(2), Lsn(5)));
    assert!(matches!(
        wal.commit(vec![]).await,
        Err(WalError::InvalidTransaction { .. })
    ));
    wal.shutdown().await.unwrap();
    let recs = read_all(d.path());
    let payloads: Vec<&[u8]> = recs.iter().map(|r| r.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        vec![&b"before"[..], b"t1", b"t2", b"t3", b"after"]
    );
    assert_eq!(recs[2].txn, Some(TxnPosition { index: 1, count: 3 }));
}

#[actix::test]
async fn buffered_appends_answer_at_once_and_are_flushed_within_the_interval() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        flush_interval_ms: 20,
        ..small_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    for i in 0..100u32 {
        let lsn = wal
            .send(Append::new(i.to_le_bytes().to_vec()).durability(Durability::Buffered))
            .await
            .unwrap();
        assert_eq!(lsn, Lsn(u64::from(i) + 1));
    }
    // No flush asked for: the interval timer writes them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = wal.stats().await.unwrap();
        if s.durable_lsn == Lsn(100) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "buffered appends never became durable: {s:?}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    wal.shutdown().await.unwrap();
    assert_eq!(read_all(d.path()).len(), 100);
}

#[actix::test]
async fn flush_makes_everything_queued_durable() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        flush_interval_ms: 60_000,
        ..small_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.flush().await.unwrap(), Lsn(0));
    for _ in 0..10 {
        wal.send(Append::new(vec![7; 10]).durability(Durability::Buffered))
            .await
            .unwrap();
    }
    assert_eq!(wal.flush().await.unwrap(), Lsn(10));
    assert_eq!(wal.stats().await.unwrap().durable_lsn, Lsn(10));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_full_queue_fails_at_once_when_configured_to() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        max_queue_entries: 4,
        when_full: WhenFull::Fail,
        flush_interval_ms: 60_000,
        ..small_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let mut full = 0;
    for _ in 0..50 {
        match wal
            .send(Append::new(vec![1; 8]).durability(Durability::Buffered))
            .await
        {
            Ok(_) => {}
            Err(WalError::QueueFull { .. }) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full > 0, "the queue never reported full");
    let s = wal.stats().await.unwrap();
    assert!(
        s.queue_depth <= 4,
        "queue depth {} over its bound",
        s.queue_depth
    );
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_full_queue_makes_appends_wait_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        max_queue_entries: 8,
        max_queue_bytes: 40 * 1024,
        ..small_config()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let futs = (0..500u32).map(|i| {
        let wal = wal.clone();
        async move {
            wal.send(Append::new(vec![(i % 251) as u8; 100]).durability(Durability::Buffered))
                .await
                .unwrap()
        }
    });
    let lsns = join_all(futs).await;
    assert_eq!(lsns.len(), 500);
    let s = wal.stats().await.unwrap();
    assert!(
        s.peak_queue_bytes <= 40 * 1024,
        "peak {} over max_queue_bytes",
        s.peak_queue_bytes
    );
    wal.shutdown().await.unwrap();
    assert_eq!(read_all(d.path()).len(), 500);
}

#[actix::test]
async fn set_mode_switches_between_async_and_sync_under_load_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    let writer = {
        let wal = wal.clone();
        actix_rt::spawn(async move {
            let futs = (0..600u32).map(|i| {
                let wal = wal.clone();
                async move { wal.append(i.to_le_bytes().to_vec()).await.unwrap() }
            });
            join_all(futs).await
        })
    };
    for i in 0..6 {
        let mode = if i % 2 == 0 {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        wal.set_mode(mode).await.unwrap();
        assert_eq!(wal.stats().await.unwrap().mode, mode);
        actix_rt::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let lsns = writer.await.unwrap();
    let mut sorted = lsns.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 600);
    wal.shutdown().await.unwrap();
    assert_eq!(read_all(d.path()).len(), 600);
}

#[actix::test]
async fn sync_mode_writes_each_message_in_its_own_fsync() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    wal.set_mode(CommitMode::Sync).await.unwrap();
    let futs = (0..50u32).map(|_| {
        let wal = wal.clone();
        async move { wal.append(vec![3; 16]).await.unwrap() }
    });
    join_all(futs).await;
    let s = wal.stats().await.unwrap();
    assert_eq!(s.flushes, 50, "one fsync per message in sync mode");
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn oversized_records_are_refused_with_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    let err = wal.append(vec![0; 4097]).await.unwrap_err();
    assert!(
        matches!(
            err,
            WalError::RecordTooLarge {
                size_bytes: 4097,
                max_bytes: 4096
            }
        ),
        "{err}"
    );
    assert_eq!(wal.append(vec![0; 4096]).await.unwrap(), Lsn(1));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn rollover_under_load_reads_back_in_order() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        segment_size_bytes: 8 * 1024,
        max_record_bytes: 1024,
        max_batch_bytes: 4 * 1024,
        ..WalConfig::default()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let futs = (0..1000u32).map(|i| {
        let wal = wal.clone();
        async move {
            wal.append(vec![(i % 256) as u8; (i % 300) as usize])
                .await
                .unwrap()
        }
    });
    join_all(futs).await;
    wal.shutdown().await.unwrap();
    let recs = read_all(d.path());
    assert_eq!(recs.len(), 1000);
    assert!(LogReader::open(d.path()).unwrap().segments().count() > 10);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.lsn, Lsn(i as u64 + 1));
    }
}

#[actix::test]
async fn checkpoint_truncation_removes_whole_durable_segments_only() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig {
        segment_size_bytes: 8 * 1024,
        max_record_bytes: 1024,
        max_batch_bytes: 4 * 1024,
        ..WalConfig::default()
    };
    let wal = Wal::open(d.path(), cfg.clone()).await.unwrap();
    for _ in 0..300 {
        wal.append(vec![9; 200]).await.unwrap();
    }
    let removed = wal.truncate_before(Lsn(150)).await.unwrap();
    assert!(removed > 0);
    wal.shutdown().await.unwrap();
    let recs = read_all(d.path());
    assert!(recs.first().unwrap().lsn <= Lsn(150));
    assert_eq!(recs.last().unwrap().lsn, Lsn(300));
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.append(vec![1]).await.unwrap(), Lsn(301));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn dropping_every_handle_without_shutdown_loses_nothing_acknowledged() {
    let d = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    {
        let wal = Wal::open(d.path(), small_config()).await.unwrap();
        for i in 0..50u32 {
            acked.push((wal.append(i.to_le_bytes().to_vec()).await.unwrap(), i));
        }
        // Buffered appends in flight are not promised; durable ones are.
        wal.send(Append::new(b"maybe".to_vec()).durability(Durability::Buffered))
            .await
            .unwrap();
    }
    let recs = read_all(d.path());
    for (lsn, i) in acked {
        assert_eq!(recs[(lsn.0 - 1) as usize].payload, i.to_le_bytes());
    }
}

#[actix::test]
async fn open_cuts_a_torn_tail_and_reports_it() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    for _ in 0..10 {
        wal.append(vec![5; 100]).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    // Scribble a partial frame after the last one, as a crash mid-write would leave.
    let seg = LogReader::open(d.path())
        .unwrap()
        .segments()
        .last()
        .unwrap()
        .clone();
    let recs = read_all(d.path());
    let end = recs.last().unwrap().frame_offset + 24 + 100;
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xAB; 40], end).unwrap();
    drop(f);
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    let report = wal.recovery_report().clone();
    assert_eq!(report.records, 10);
    assert_eq!(report.bytes_cut, 40);
    assert_eq!(report.next_lsn, Lsn(11));
    assert_eq!(wal.append(b"next".to_vec()).await.unwrap(), Lsn(11));
    wal.shutdown().await.unwrap();
    assert_eq!(read_all(d.path()).len(), 11);
}

#[actix::test]
async fn a_log_whose_handles_were_dropped_without_shutdown_reopens_in_the_same_process() {
    let d = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    {
        let wal = Wal::open(d.path(), small_config()).await.unwrap();
        for i in 0..20u32 {
            acked.push(wal.append(i.to_le_bytes().to_vec()).await.unwrap());
        }
    }
    // The dropped log's actors stop and release the lock; the reopen waits for that.
    let wal = Wal::open(d.path(), small_config()).await.unwrap();
    assert_eq!(wal.recovery_report().next_lsn, Lsn(21));
    assert_eq!(wal.append(b"again".to_vec()).await.unwrap(), Lsn(21));
    wal.shutdown().await.unwrap();
    assert_eq!(read_all(d.path()).len(), 21);
    assert_eq!(acked.last(), Some(&Lsn(20)));
}
