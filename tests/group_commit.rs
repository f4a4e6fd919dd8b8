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
