//! What reads and subscriptions hold in memory, measured by a counting global allocator
//! (this binary's own): a range read that crosses into the next segment holds its budget
//! once, not once per segment; a subscription's read buffer grows to the span it reads,
//! not by doubling; a subscriber that caught up holds no chunk read ahead; the batches
//! kept for subscribers go when the last of them does.
//!
//! The allocator counts every thread's allocations, so the tests here run one at a time
//! (`ONE_AT_A_TIME`), each on a runtime of its own.

mod common;

use actix_wal::*;
use common::segment_lsns;
use futures::StreamExt;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Live heap bytes.
static HEAP: AtomicUsize = AtomicUsize::new(0);
/// Bytes of the live allocations of at least `BIG_BYTES` (read spans, not records).
static BIG: AtomicUsize = AtomicUsize::new(0);
/// The most `BIG` reached since `reset_peaks`.
static BIG_PEAK: AtomicUsize = AtomicUsize::new(0);
/// The largest single allocation (a `realloc` counts at its new size) since `reset_peaks`.
static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// An allocation this large or larger counts in `BIG`.
const BIG_BYTES: usize = 128 << 10;

/// The system allocator, counting.
struct Counting;

fn on_alloc(n: usize) {
    HEAP.fetch_add(n, Relaxed);
    LARGEST.fetch_max(n, Relaxed);
    if n >= BIG_BYTES {
        let b = BIG.fetch_add(n, Relaxed) + n;
        BIG_PEAK.fetch_max(b, Relaxed);
    }
}

fn on_free(n: usize) {
    HEAP.fetch_sub(n, Relaxed);
    if n >= BIG_BYTES {
        BIG.fetch_sub(n, Relaxed);
    }
}

// SAFETY: every call is passed to `System` unchanged; only counters are updated beside.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            on_alloc(l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            on_alloc(l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        on_free(l.size());
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            on_free(l.size());
            on_alloc(new);
        }
        q
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The counters are the whole process's: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `f` alone, on a runtime of its own.
fn alone<F: std::future::Future<Output = ()>>(f: F) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

fn reset_peaks() {
    BIG_PEAK.store(BIG.load(Relaxed), Relaxed);
    LARGEST.store(0, Relaxed);
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// `actix_wal`'s read index stride (`INDEX_STRIDE_BYTES`): a span read goes up to two of
/// them past its budget.
const STRIDE: usize = 16 * KIB;

/// A record of `len` bytes, its LSN in front.
fn record(lsn: u64, len: usize) -> Vec<u8> {
    let mut v = vec![(lsn % 251) as u8; len];
    v[..8].copy_from_slice(&lsn.to_le_bytes());
    v
}

fn check(r: &Record, len: usize) {
    assert_eq!(r.payload.len(), len, "record {}", r.lsn);
    assert_eq!(r.payload[..8], r.lsn.0.to_le_bytes(), "record {}", r.lsn);
}

/// The subscription's next record (a failure if none comes within 30 s, or an error).
async fn next(sub: &mut Subscription) -> Record {
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("a record within 30 s")
        .expect("no end while the log is open")
        .unwrap()
}

#[test]
fn a_range_read_into_the_next_segment_holds_its_budget_once() {
    alone(async {
        let d = tempfile::tempdir().unwrap();
        let config = WalConfig::default()
            .segment_size_bytes(2 * MIB as u64)
            .preallocate(false);
        let wal = Wal::open_standalone(d.path(), config).await.unwrap();
        let len = 16 * KIB;
        let mut lsn = 1;
        while segment_lsns(d.path()).len() < 3 {
            let batch: Vec<Vec<u8>> = (lsn..lsn + 16).map(|l| record(l, len)).collect();
            wal.append_batch(batch).await.unwrap();
            lsn += 16;
        }
        let second = segment_lsns(d.path())[1];
        // From 30 records before the second segment: about 480 KiB read from the first
        // segment, the rest of the budget from the second.
        let max_bytes = MIB;
        let from = second - 30;
        reset_peaks();
        let before = BIG.load(Relaxed);
        let got = wal
            .read_range(Lsn(from)..Lsn(lsn), max_bytes)
            .await
            .unwrap();
        let held = BIG_PEAK.load(Relaxed) - before;
        assert_eq!(got[0].lsn, Lsn(from));
        assert!(
            got.last().unwrap().lsn.0 > second,
            "the read goes on in the next segment"
        );
        for r in &got {
            check(r, len);
        }
        assert!(
            held <= max_bytes + 4 * STRIDE,
            "a read of {max_bytes} bytes across two segments held {held} bytes of spans"
        );
        wal.shutdown().await.unwrap();
    });
}

#[test]
fn a_subscription_grows_its_read_buffer_to_the_span_not_by_doubling() {
    alone(async {
        let d = tempfile::tempdir().unwrap();
        let config = WalConfig::default()
            .max_record_bytes(6 * MIB as u64)
            .preallocate(false);
        let wal = Wal::open_standalone(d.path(), config).await.unwrap();
        // Each record larger than a subscription's largest chunk, each larger than the
        // one before: every read is one record, into the buffer of the read before.
        let lens: Vec<usize> = (0..5).map(|i| 4 * MIB + i * MIB / 4).collect();
        for (i, &len) in lens.iter().enumerate() {
            wal.append(record(i as u64 + 1, len)).await.unwrap();
        }
        reset_peaks();
        let mut sub = wal.subscribe(Lsn(1));
        for (i, &len) in lens.iter().enumerate() {
            let r = next(&mut sub).await;
            assert_eq!(r.lsn, Lsn(i as u64 + 1));
            check(&r, len);
        }
        let largest = LARGEST.load(Relaxed);
        let frame = lens[lens.len() - 1] + 64;
        assert!(
            largest <= frame + 2 * STRIDE,
            "largest allocation {largest} bytes for frames of {frame} bytes at most"
        );
        drop(sub);
        wal.shutdown().await.unwrap();
    });
}

#[test]
fn a_caught_up_subscriber_holds_no_chunk_read_ahead() {
    alone(async {
        let d = tempfile::tempdir().unwrap();
        let config = WalConfig::default().preallocate(false);
        let wal = Wal::open_standalone(d.path(), config).await.unwrap();
        let len = 64 * KIB;
        for lsn in 1..=20 {
            wal.append(record(lsn, len)).await.unwrap();
        }
        let mut sub = wal.subscribe(Lsn(1));
        // Never polled: keeps the shared batches when `sub` goes, so that what goes with
        // `sub` is its own.
        let keeper = wal.subscribe(Lsn(1));
        // The first chunk (1 MiB: records 1 to 15) is read, and the rest (16 to 20) read
        // ahead.
        check(&next(&mut sub).await, len);
        // 40 more while the subscriber is behind: kept in the shared batches, and read
        // ahead from the files once it takes 16 to 20.
        wal.append_batch((21..=60).map(|l| record(l, len)).collect())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        for lsn in 2..=60 {
            let r = next(&mut sub).await;
            assert_eq!(r.lsn, Lsn(lsn));
            check(&r, len);
        }
        // Caught up (21 to 60 came from the shared batches); the read ahead is done.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = HEAP.load(Relaxed);
        drop(sub);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held = idle.saturating_sub(HEAP.load(Relaxed));
        assert!(
            held < 256 * KIB,
            "a caught-up, idle subscriber held {held} bytes"
        );
        drop(keeper);
        wal.shutdown().await.unwrap();
    });
}

#[test]
fn the_shared_batches_go_with_the_last_subscriber() {
    alone(async {
        let d = tempfile::tempdir().unwrap();
        let config = WalConfig::default().preallocate(false);
        let wal = Wal::open_standalone(d.path(), config).await.unwrap();
        let len = 64 * KIB;
        let mut sub = wal.subscribe(Lsn(1));
        // 2.5 MiB kept in the shared batches for the subscriber, which takes it there.
        wal.append_batch((1..=40).map(|l| record(l, len)).collect())
            .await
            .unwrap();
        for lsn in 1..=40 {
            let r = next(&mut sub).await;
            assert_eq!(r.lsn, Lsn(lsn));
            check(&r, len);
        }
        drop(sub);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let gone = HEAP.load(Relaxed) as i64;
        // A commit after the last subscriber went lets go of what was kept for it: it
        // must have gone already.
        wal.append(vec![1; 100]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let kept = gone - HEAP.load(Relaxed) as i64;
        assert!(
            kept < 512 * KIB as i64,
            "{kept} bytes kept for subscribers after the last went, until the next commit"
        );
        wal.shutdown().await.unwrap();
    });
}
