//! Appends through the `Wal` handle (`append`, `commit`, `append_batch`) reach the queue
//! through its intake, not one actix message each: they keep the caller's order against
//! its messages to the queue, obey the queue's bounds (the rest wait as messages), are
//! all answered exactly once, and end with `ShutDown` when the log does.

use actix_wal::{Append, Lsn, QueueThread, Wal, WalConfig, WalError};
use futures::future::{join_all, FutureExt};
use futures::task::noop_waker_ref;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;

type Pending = Pin<Box<dyn Future<Output = Result<Lsn, WalError>>>>;

/// Polls `fut` once (its append is then on its way to the queue) and keeps it.
fn started(fut: impl Future<Output = Result<Lsn, WalError>> + 'static) -> Pending {
    let mut fut: Pending = Box::pin(fut);
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(
        fut.as_mut().poll(&mut cx).is_pending(),
        "a durable append cannot be answered before the queue ran"
    );
    fut
}

/// What a test caller started, in order.
enum Started {
    /// An append, commit or append batch of this many records (its first payload's value).
    Records(u32, u64, Pending),
    /// A `flush()`.
    Flush(Pending),
}

/// A caller's appends (through the handle and as messages to `wal.queue()`) and its
/// flushes, started in one order without waiting for replies, are handled in that order:
/// LSNs rise in it, and each flush covers exactly the records started before it.
#[actix::test]
async fn a_callers_appends_and_its_messages_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalConfig::default()).await.unwrap();
    let mut started_in_order = Vec::new();
    for i in 0..60u32 {
        let payload = i.to_le_bytes().to_vec();
        let w = wal.clone();
        let s = match i % 6 {
            0 => {
                let send = wal.queue().send(Append::new(payload));
                let fut = started(send.map(|r| r.unwrap_or(Err(WalError::ShutDown))));
                Started::Records(i, 1, fut)
            }
            1 => Started::Records(
                i,
                2,
                started(async move { w.commit(vec![payload.clone(), payload]).await }),
            ),
            2 => Started::Records(
                i,
                2,
                started(async move { w.append_batch(vec![payload.clone(), payload]).await }),
            ),
            3 => Started::Flush(started(async move { w.flush().await })),
            _ => Started::Records(i, 1, started(async move { w.append(payload).await })),
        };
        started_in_order.push(s);
    }
    let mut end = 0; // the last LSN started so far
    let mut expected = Vec::new();
    for s in started_in_order {
        match s {
            Started::Records(i, n, fut) => {
                let lsn = fut.await.unwrap_or_else(|e| panic!("append {i}: {e}"));
                assert_eq!(lsn, Lsn(end + 1), "append {i} out of order");
                end += n;
                expected.extend(std::iter::repeat_n(i, n as usize));
            }
            Started::Flush(fut) => {
                let flushed = fut.await.unwrap();
                assert_eq!(
                    flushed,
                    Lsn(end),
                    "a flush covers what was started before it"
                );
            }
        }
    }
    // Every record is in the log, in the order sent.
    let records = wal.read_range(Lsn(1)..Lsn(end + 1), 1 << 20).await.unwrap();
    let firsts: Vec<u32> = records
        .iter()
        .map(|r| u32::from_le_bytes(r.payload[..4].try_into().unwrap()))
        .collect();
    assert_eq!(firsts, expected);
    wal.shutdown().await.unwrap();
}

/// Far more appends at once than the queue's bounds, on either queue thread: all started
/// together, then from 64 tasks in closed loops (the intake fills while the queue is full,
/// and a drain stops at the stash and goes on after it). Every one is answered once with
/// an LSN of its own, the LSNs are exactly 1..=n, and the queue stays within its bound.
#[actix::test]
async fn more_appends_than_the_bounds_all_land_once() {
    for queue_thread in [QueueThread::Caller, QueueThread::Own] {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            max_queue_entries: 8,
            max_queue_bytes: 4096,
            max_batch_bytes: 2048,
            max_record_bytes: 1000,
            queue_thread,
            ..WalConfig::default()
        };
        let wal = Wal::open(dir.path(), config).await.unwrap();
        let at_once = 2000u64;
        let appends = (0..at_once).map(|i| {
            let wal = wal.clone();
            async move { wal.append(vec![(i % 251) as u8; 100]).await }
        });
        let mut lsns: Vec<u64> = join_all(appends)
            .await
            .into_iter()
            .map(|r| r.expect("append").0)
            .collect();
        let loops = (0..64).map(|t| {
            let wal = wal.clone();
            actix::spawn(async move {
                let mut got = Vec::new();
                for i in 0..50u64 {
                    got.push(
                        wal.append(vec![(t + i) as u8; 100])
                            .await
                            .expect("append")
                            .0,
                    );
                }
                got
            })
        });
        for got in join_all(loops).await {
            let got = got.expect("task");
            assert!(got.windows(2).all(|w| w[0] < w[1]), "one task's LSNs rise");
            lsns.extend(got);
        }
        lsns.sort_unstable();
        let n = at_once + 64 * 50;
        assert_eq!(lsns, (1..=n).collect::<Vec<_>>(), "{queue_thread:?}");
        let stats = wal.stats().await.unwrap();
        assert!(
            stats.peak_queue_bytes <= 4096 + 200,
            "the queue held {} bytes, bound 4096",
            stats.peak_queue_bytes
        );
        wal.shutdown().await.unwrap();
    }
}

/// Appends on their way when the log shuts down are each answered (written, or
/// `ShutDown`), none hangs, and appends after it get `ShutDown`: on either queue thread
/// (with its own, the queue is gone after the shutdown, and its intake closed).
#[actix::test]
async fn appends_racing_a_shutdown_are_answered_and_later_ones_refused() {
    for queue_thread in [QueueThread::Caller, QueueThread::Own] {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            queue_thread,
            ..WalConfig::default()
        };
        let wal = Wal::open(dir.path(), config.clone()).await.unwrap();
        let mut pending = Vec::new();
        for i in 0..200u32 {
            let w = wal.clone();
            pending.push(started(
                async move { w.append(i.to_le_bytes().to_vec()).await },
            ));
        }
        wal.shutdown().await.unwrap();
        let results = tokio::time::timeout(std::time::Duration::from_secs(10), join_all(pending))
            .await
            .expect("every append is answered");
        let written: Vec<Lsn> = results.iter().filter_map(|r| r.clone().ok()).collect();
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, WalError::ShutDown), "unexpected error {e}");
            }
        }
        assert_eq!(
            written.len(),
            200,
            "sent before the shutdown: all written first"
        );
        let late = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            wal.append(b"late".to_vec()),
        )
        .await
        .expect("a late append is answered");
        assert!(
            matches!(late, Err(WalError::ShutDown)),
            "{queue_thread:?}: {late:?}"
        );
        drop(wal);
        let wal = Wal::open(dir.path(), config).await.unwrap();
        assert_eq!(wal.recovery_report().next_lsn, Lsn(201));
        wal.shutdown().await.unwrap();
    }
}
