//! A log for applications that are not actix ones: `Wal::open_standalone` needs no actix
//! `System` (these tests use plain tokio runtimes, no actix macros), the handle works from
//! any runtime or thread, `shutdown` stops the log's own system thread, and dropping the
//! last handle does too, so the log reopens at once in the same process.

use actix_wal::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Op {
    Debit(u64),
    Credit(u64),
}

/// Small segments: recovery at reopen reads whole segments, and a debug build reads the
/// default 64 MiB one slowly.
fn cfg() -> WalConfig {
    WalConfig::default().segment_size_bytes(1 << 20)
}

fn payloads(dir: &Path) -> Vec<Vec<u8>> {
    LogReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect()
}

#[tokio::test]
async fn standalone_log_opens_appends_reads_shuts_down_and_reopens_under_plain_tokio() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    assert_eq!(wal.append(b"one".to_vec()).await.unwrap(), Lsn(1));
    assert_eq!(
        wal.commit(vec![b"a".to_vec(), b"b".to_vec()])
            .await
            .unwrap(),
        Lsn(2)
    );
    let ops = [Op::Debit(5), Op::Credit(5)];
    assert_eq!(
        wal.send(Commit::encode(&ops).unwrap()).await.unwrap(),
        Lsn(4)
    );
    assert_eq!(wal.flush().await.unwrap(), Lsn(5));
    assert_eq!(wal.stats().await.unwrap().durable_lsn, Lsn(5));
    let clone = wal.clone();
    wal.shutdown().await.unwrap();
    // Every clone sees the log shut down; a second shutdown is harmless.
    assert!(matches!(
        clone.append(b"late".to_vec()).await,
        Err(WalError::ShutDown)
    ));
    clone.shutdown().await.unwrap();

    let records: Vec<Record> = LogReader::open(d.path())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[0].payload, b"one");
    assert_eq!(records[3].decode::<Op>().unwrap(), Op::Debit(5));

    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    assert_eq!(wal.recovery_report().next_lsn, Lsn(6));
    assert_eq!(wal.append(b"after reopen".to_vec()).await.unwrap(), Lsn(6));
    wal.shutdown().await.unwrap();
    assert_eq!(payloads(d.path()).len(), 6);
}

/// Concurrent appends from tokio tasks on a multi-thread runtime; then the last handle is
/// dropped without `shutdown`: every acknowledged record is in the log, and the log
/// reopens at once in the same process (the drop shut it down and joined its thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_standalone_handle_shuts_the_log_down_and_it_reopens() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let mut lsns = Vec::new();
                for i in 0..25u64 {
                    lsns.push(
                        wal.append((t * 100 + i).to_le_bytes().to_vec())
                            .await
                            .unwrap(),
                    );
                }
                lsns
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // A buffered append is answered before it is written: the drop still flushes it.
    let buffered = Append::new(b"buffered".to_vec()).durability(Durability::Buffered);
    assert_eq!(wal.send(buffered).await.unwrap(), Lsn(201));
    drop(wal);

    acked.sort();
    assert_eq!(acked, (1..=200).map(Lsn).collect::<Vec<_>>());
    let wal = Wal::open_standalone(d.path(), cfg())
        .await
        .expect("the dropped log released its directory");
    assert_eq!(wal.recovery_report().next_lsn, Lsn(202));
    drop(wal);
    let all = payloads(d.path());
    assert_eq!(all.len(), 201);
    assert_eq!(all[200], b"buffered");
}

/// The handle works from a runtime other than the one that opened it, and from a plain
/// thread with no runtime at all.
#[test]
fn standalone_handle_works_across_runtimes_and_plain_threads() {
    let d = tempfile::tempdir().unwrap();
    let opener = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let wal = opener
        .block_on(Wal::open_standalone(d.path(), cfg()))
        .unwrap();
    drop(opener);
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(other.block_on(wal.append(b"x".to_vec())).unwrap(), Lsn(1));
    let plain = std::thread::spawn({
        let wal = wal.clone();
        move || futures::executor::block_on(wal.append(b"y".to_vec()))
    });
    assert_eq!(plain.join().unwrap().unwrap(), Lsn(2));
    futures::executor::block_on(wal.shutdown()).unwrap();
    assert_eq!(payloads(d.path()), vec![b"x".to_vec(), b"y".to_vec()]);

    // The blocking twin, from a plain thread.
    let wal = Wal::open_blocking(d.path(), cfg()).unwrap();
    assert_eq!(
        futures::executor::block_on(wal.append(b"z".to_vec())).unwrap(),
        Lsn(3)
    );
    futures::executor::block_on(wal.shutdown()).unwrap();
    assert_eq!(payloads(d.path()).len(), 3);
}

/// A failed open returns its error and leaves no thread or lock behind.
#[tokio::test]
async fn a_failed_standalone_open_returns_its_error() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = Wal::open_standalone(&file, cfg()).await.unwrap_err();
    assert!(matches!(e, WalError::NotADirectory { .. }), "{e:?}");
    let bad = WalConfig {
        max_queue_entries: 0,
        ..cfg()
    };
    assert!(matches!(
        Wal::open_standalone(d.path(), bad).await,
        Err(WalError::InvalidConfig(_))
    ));
    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    wal.shutdown().await.unwrap();
}

/// `Wal::open` needs an actix `System` on the calling thread: from plain tokio it is a
/// typed error that names `open_standalone`, not a panic inside tokio.
#[tokio::test]
async fn wal_open_from_plain_tokio_is_an_error_naming_open_standalone() {
    let d = tempfile::tempdir().unwrap();
    let e = Wal::open(d.path(), cfg()).await.unwrap_err();
    assert!(matches!(e, WalError::NoActixSystem), "{e:?}");
    assert!(e.to_string().contains("open_standalone"), "{e}");
    // Nothing was left locked or half-open: the standalone open works at once.
    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    wal.append(b"ok".to_vec()).await.unwrap();
    wal.shutdown().await.unwrap();
}

/// Outside any runtime (a plain thread driving the future), likewise.
#[test]
fn wal_open_outside_any_runtime_is_an_error_naming_open_standalone() {
    let d = tempfile::tempdir().unwrap();
    let e = futures::executor::block_on(Wal::open(d.path(), cfg())).unwrap_err();
    assert!(matches!(e, WalError::NoActixSystem), "{e:?}");
}

/// Counts what `sub` yields until it ends; says so on `first` after the first record.
async fn count<S, R>(mut sub: S, first: tokio::sync::oneshot::Sender<()>) -> usize
where
    S: futures::Stream<Item = Result<R, WalError>> + Unpin,
{
    use futures::StreamExt;
    let (mut n, mut first) = (0, Some(first));
    while let Some(r) = sub.next().await {
        r.unwrap();
        n += 1;
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
    }
    n
}

/// A subscription is not a handle: it does not keep the log open. Dropping the last
/// handle shuts the log down while tasks still follow it; their streams end (`None`) and
/// the directory reopens.
#[tokio::test]
async fn dropping_the_last_handle_ends_its_subscriptions_and_unlocks_the_log() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    wal.append(b"one".to_vec()).await.unwrap();
    let (tx1, rx1) = tokio::sync::oneshot::channel();
    let (tx2, rx2) = tokio::sync::oneshot::channel();
    let copied = tokio::spawn(count(wal.subscribe(Lsn(1)), tx1));
    let shared = tokio::spawn(count(wal.subscribe_shared(Lsn(1)), tx2));
    rx1.await.unwrap();
    rx2.await.unwrap();
    drop(wal);
    let wait = std::time::Duration::from_secs(10);
    for (what, task) in [("subscribe", copied), ("subscribe_shared", shared)] {
        match tokio::time::timeout(wait, task).await {
            Ok(n) => assert_eq!(n.unwrap(), 1, "{what}"),
            Err(_) => panic!("{what}: still following 10 s after the last handle went"),
        }
    }
    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    assert_eq!(wal.recovery_report().records, 1);
    wal.shutdown().await.unwrap();
}

/// Nor are a cursor and a replay handles (probe, 2026-12-07): a consumer that follows the
/// log with a cursor (the README's pattern) or is half-way through its replay when the
/// application drops its last handle sees the log shut down, and the directory reopens.
/// Both once kept a clone of the handle that held the log open: the consumer followed
/// for ever and a reopen was `Locked`.
#[tokio::test]
async fn a_cursor_or_a_replay_does_not_keep_the_log_open() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    for i in 0..3u8 {
        wal.append(vec![i; 8]).await.unwrap();
    }
    wal.shutdown().await.unwrap();

    let wal = Wal::open_standalone(d.path(), cfg()).await.unwrap();
    let cursor = wal.cursor("archiver").await.unwrap();
    let mut replay = wal.replay();
    use futures::StreamExt;
    assert_eq!(replay.next().await.unwrap().unwrap().lsn, Lsn(1));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let consumer = {
        let records = wal.subscribe(cursor.lsn());
        let cursor = cursor.clone();
        tokio::spawn(async move {
            let mut records = records;
            let mut tx = Some(tx);
            let mut n = 0;
            while let Some(record) = records.next().await {
                let lsn = record.unwrap().lsn;
                cursor.advance(Lsn(lsn.0 + 1)).await.unwrap();
                n += 1;
                if n == 3 {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
            n
        })
    };
    rx.await.unwrap();
    drop(wal);
    let wait = std::time::Duration::from_secs(10);
    match tokio::time::timeout(wait, consumer).await {
        Ok(n) => assert_eq!(n.unwrap(), 3),
        Err(_) => panic!("the cursor's consumer still follows 10 s after the last handle went"),
    }
    let reopened = Wal::open_standalone(d.path(), cfg()).await;
    let wal = reopened.expect("reopen after the last handle went (cursor and replay held)");
    assert_eq!(wal.cursor("archiver").await.unwrap().lsn(), Lsn(4));
    wal.shutdown().await.unwrap();
    // The old log's cursor and replay say so.
    assert!(matches!(
        cursor.advance(Lsn(4)).await,
        Err(WalError::ShutDown)
    ));
    // (What it read before the shutdown it may still hand out, in order.)
    let rest: Vec<_> = replay.collect().await;
    let mut next = 2;
    for r in &rest {
        match r {
            Ok(record) => {
                assert_eq!(record.lsn, Lsn(next), "{rest:?}");
                next += 1;
            }
            Err(e) => assert!(matches!(e, WalError::ShutDown), "{rest:?}"),
        }
    }
}
