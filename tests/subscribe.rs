//! Live subscribers (issue 22, item 1): `Wal::subscribe(from)` yields every durable record
//! from `from` on, in LSN order with no gap and no duplicate, first from the files, then
//! live, across rollovers and a restart; a slow subscriber holds up no commit; a `from`
//! below the first LSN, or a checkpoint that passes it, is `SubscriberBehind`; a rewind
//! below what it received is `SubscriberRewound` naming the cut (one above it is not); it
//! ends cleanly at shutdown; an actor takes it with `ctx.add_stream`.

#[path = "common/mixed.rs"]
mod mixed;

use actix::prelude::*;
use actix_wal::*;
use futures::StreamExt;
use mixed::payload;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(16 * 1024)
        .preallocate(false)
}

const WAIT: Duration = Duration::from_secs(30);

/// The next item, or a failure if none comes within `WAIT`.
async fn next(sub: &mut Subscription) -> Option<Result<Record, WalError>> {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("the subscription yielded nothing within 30 s")
}

#[tokio::test]
async fn a_subscriber_gets_every_durable_record_in_order_from_the_files_then_live() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    for i in 1..=500 {
        wal.append(payload(i)).await.unwrap();
    }
    let mut sub = wal.subscribe(Lsn(1));
    // Four writers go on while the subscriber reads: the log rolls over many times.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let mut lsns = Vec::new();
                for _ in 0..400 {
                    let lsn = wal.append(b"pending".to_vec()).await.unwrap();
                    lsns.push(lsn);
                }
                lsns
            })
        })
        .collect();
    let mut got = Vec::new();
    while got.len() < 2_100 {
        let r = next(&mut sub)
            .await
            .expect("no end while the log is open")
            .unwrap();
        got.push(r);
    }
    for w in writers {
        w.await.unwrap();
    }
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.lsn, Lsn(i as u64 + 1), "in order, no gap, no duplicate");
        if i < 500 {
            assert_eq!(r.payload, payload(i as u64 + 1));
        } else {
            assert_eq!(r.payload, b"pending");
        }
    }
    let segments = std::fs::read_dir(d.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count();
    assert!(segments > 5, "it crossed rollovers: {segments} segments");
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_from_the_middle_after_a_restart_and_its_end_at_shutdown() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    for i in 1..=1_000 {
        wal.append(payload(i)).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    let mut sub = wal.subscribe(Lsn(500));
    for lsn in 500..=1_000 {
        let r = next(&mut sub).await.unwrap().unwrap();
        assert_eq!((r.lsn, &r.payload), (Lsn(lsn), &payload(lsn)));
    }
    let appended = wal.append(b"live".to_vec()).await.unwrap();
    let r = next(&mut sub).await.unwrap().unwrap();
    assert_eq!((r.lsn, r.payload.as_slice()), (appended, &b"live"[..]));
    // Caught up and waiting: the shutdown ends the stream, without an error.
    let waiting = tokio::spawn(async move { next(&mut sub).await.map(|r| r.map(|r| r.lsn)) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    wal.shutdown().await.unwrap();
    assert!(waiting.await.unwrap().is_none(), "ends cleanly at shutdown");
}

#[tokio::test]
async fn below_the_first_lsn_or_passed_by_a_checkpoint_is_subscriber_behind() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small().segment_size_bytes(256 * 1024);
    let wal = Wal::open_standalone(d.path(), cfg).await.unwrap();
    let big = |i: u64| {
        let mut p = payload(i);
        p.resize(1_000, b'z');
        p
    };
    // 1,000-byte records: a chunk of SUBSCRIPTION_CHUNK_BYTES holds about this many. The
    // log holds three chunks' worth before the subscriber starts, so what it reads first
    // (a chunk, and the next read ahead) is not the whole log.
    let per_chunk = (SUBSCRIPTION_CHUNK_BYTES / 1_000) as u64;
    let before = 3 * per_chunk;
    let mut i = 1;
    while i <= before {
        let n = 100.min(before + 1 - i);
        wal.append_batch((i..i + n).map(big).collect())
            .await
            .unwrap();
        i += n;
    }
    // A slow subscriber: one record read, then it stalls while commits go on.
    let mut slow = wal.subscribe(Lsn(1));
    assert_eq!(next(&mut slow).await.unwrap().unwrap().lsn, Lsn(1));
    for i in before + 1..=before + 2_000 {
        tokio::time::timeout(WAIT, wal.append(big(i)))
            .await
            .expect("a stalled subscriber held up a commit")
            .unwrap();
    }
    wal.truncate_before(Lsn(before + 1_000)).await.unwrap();
    let first = wal.stats().await.unwrap().first_lsn;
    assert!(
        first > Lsn(2 * per_chunk + 1),
        "past the chunk read ahead too: {first}"
    );
    // The slow one yields what it held, then is told it was passed.
    let mut last = Lsn(1);
    let err = loop {
        match next(&mut slow).await.expect("an error, not the end") {
            Ok(r) => {
                assert_eq!(r.lsn, Lsn(last.0 + 1));
                last = r.lsn;
            }
            Err(e) => break e,
        }
    };
    match err {
        WalError::SubscriberBehind { next, first_lsn } => {
            assert_eq!(next, Lsn(last.0 + 1));
            assert_eq!(first_lsn, first);
        }
        e => panic!("expected SubscriberBehind, got {e:?}"),
    }
    assert!(
        last.0 <= 1 + per_chunk,
        "it held one chunk, not the log: {last}"
    );
    let mut early = wal.subscribe(Lsn(5));
    match next(&mut early).await {
        Some(Err(WalError::SubscriberBehind { next, .. })) => assert_eq!(next, Lsn(5)),
        other => panic!("expected SubscriberBehind, got {other:?}"),
    }
    assert!(next(&mut early).await.is_none(), "it ends after the error");
    wal.shutdown().await.unwrap();
}

/// A new log that starts at `WalConfig::first_lsn` 100: a `from` below it is behind at
/// once, before anything is written (it waited for the first append), and 100 is where
/// the records start.
#[tokio::test]
async fn below_the_first_lsn_of_a_new_log_started_past_1_is_subscriber_behind_at_once() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small().first_lsn(100))
        .await
        .unwrap();
    for from in [1, 99] {
        let mut sub = wal.subscribe(Lsn(from));
        let got = tokio::time::timeout(Duration::from_secs(10), sub.next()).await;
        match got {
            Ok(Some(Err(WalError::SubscriberBehind { next, first_lsn }))) => {
                assert_eq!((next, first_lsn), (Lsn(from), Lsn(100)));
            }
            other => panic!("from {from}: expected SubscriberBehind, got {other:?}"),
        }
    }
    let mut at_first = wal.subscribe(Lsn(100));
    assert_eq!(wal.append(b"first".to_vec()).await.unwrap(), Lsn(100));
    assert_eq!(next(&mut at_first).await.unwrap().unwrap().lsn, Lsn(100));
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_rewind_below_what_was_received_is_subscriber_rewound_naming_the_cut() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    for i in 1..=300 {
        wal.append(payload(i)).await.unwrap();
    }
    let mut ahead = wal.subscribe(Lsn(1));
    for lsn in 1..=100 {
        assert_eq!(next(&mut ahead).await.unwrap().unwrap().lsn, Lsn(lsn));
    }
    let mut behind = wal.subscribe(Lsn(1));
    for lsn in 1..=20 {
        assert_eq!(next(&mut behind).await.unwrap().unwrap().lsn, Lsn(lsn));
    }
    wal.truncate_after(Lsn(50)).await.unwrap();
    let new = wal.append(b"after the rewind".to_vec()).await.unwrap();
    assert_eq!(new, Lsn(51));
    // `ahead` had received 51..=100: they are gone.
    let mut err = None;
    while let Some(item) = next(&mut ahead).await {
        match item {
            Ok(r) => assert!(r.lsn <= Lsn(100) && r.payload == payload(r.lsn.0)),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    match err {
        Some(WalError::SubscriberRewound { cut }) => assert_eq!(cut, Lsn(51)),
        other => panic!("expected SubscriberRewound at 51, got {other:?}"),
    }
    // `behind` had received nothing at or past the cut: it reads on, into the new record.
    for lsn in 21..=50 {
        let r = next(&mut behind).await.unwrap().unwrap();
        assert_eq!((r.lsn, &r.payload), (Lsn(lsn), &payload(lsn)));
    }
    let r = next(&mut behind).await.unwrap().unwrap();
    assert_eq!(
        (r.lsn, r.payload.as_slice()),
        (new, &b"after the rewind"[..])
    );
    wal.shutdown().await.unwrap();
}

/// Collects what its stream yields.
struct Follower(Arc<Mutex<Vec<Lsn>>>);

impl Actor for Follower {
    type Context = Context<Self>;
}

impl StreamHandler<Result<Record, WalError>> for Follower {
    fn handle(&mut self, item: Result<Record, WalError>, _: &mut Self::Context) {
        self.0.lock().unwrap().push(item.unwrap().lsn);
    }
}

#[actix::test]
async fn an_actor_follows_the_log_with_add_stream() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sub = wal.subscribe(Lsn(1));
    let seen2 = seen.clone();
    let _follower = Follower::create(move |ctx| {
        ctx.add_stream(sub);
        Follower(seen2)
    });
    for i in 1..=200 {
        wal.append(payload(i)).await.unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    while seen.lock().unwrap().len() < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the actor saw too few"
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    let lsns: Vec<u64> = seen.lock().unwrap().iter().map(|l| l.0).collect();
    assert_eq!(lsns, (1..=200).collect::<Vec<_>>());
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_live_subscriber_gets_each_record_exactly_as_a_read_of_the_files_gives_it() {
    live_records_equal_reads(small()).await;
}

#[tokio::test]
async fn a_live_subscriber_of_a_compressing_log_gets_the_records_decompressed() {
    // Payloads of 1 KiB and more that LZ4 shrinks: the shared batches hold them compressed.
    let cfg = small().compression(Compression::Lz4 { min_bytes: 64 });
    live_records_equal_reads(cfg).await;
}

/// Subscribed before anything is written, the subscriber keeps up: it takes records from
/// the batches the queue shares. Single records, transactions and batches from several
/// writers, across many rollovers: each must equal what `read` gives (payload, segment,
/// frame offset, CRC, place in its transaction).
async fn live_records_equal_reads(cfg: WalConfig) {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), cfg).await.unwrap();
    let mut sub = wal.subscribe(Lsn(1));
    // It reads while the writers write (not after: older batches than the newest kept are
    // read from the files instead, which would test nothing new).
    const TOTAL: usize = mixed::MIXED_RECORDS;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < TOTAL {
            got.push(next(&mut sub).await.expect("no end").unwrap());
        }
        got
    });
    let total = mixed::write_mixed(&wal).await;
    assert_eq!(total, TOTAL);
    let got = reader.await.unwrap();
    let mut txns = 0;
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.lsn, Lsn(i as u64 + 1), "in order, no gap, no duplicate");
        let read = wal.read(r.lsn).await.unwrap();
        assert_eq!(r, &read, "live record {} differs from the files'", r.lsn);
        txns += usize::from(r.txn.is_some());
    }
    assert_eq!(
        txns,
        mixed::MIXED_TXN_RECORDS,
        "every transaction's entries carry their place"
    );
    assert!(
        got.last().unwrap().segment_first_lsn > Lsn(1),
        "rolled over"
    );
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_catching_up_from_the_files_gets_each_record_as_a_read_gives_it() {
    catch_up_equals_reads(WalConfig::default()).await;
}

#[tokio::test]
async fn a_subscriber_catching_up_through_a_compressing_log_gets_the_records_decompressed() {
    catch_up_equals_reads(WalConfig::default().compression(Compression::Lz4 { min_bytes: 64 }))
        .await;
}

/// Subscribed after everything is written, the subscriber reads the files: its first
/// chunk in place, the next ones read ahead on the reader pool and copied out on its own
/// thread (`log/records_read.rs`), each read twice the last up to
/// `SUBSCRIPTION_MAX_CHUNK_BYTES`, into the buffer of the chunk before. Several chunks of
/// the largest size, of single records, transactions and batches across rollovers: each
/// record must equal what `LogReader` (a decoder of its own) gives (payload, segment,
/// frame offset, CRC, place in its transaction).
async fn catch_up_equals_reads(cfg: WalConfig) {
    let d = tempfile::tempdir().unwrap();
    let cfg = cfg
        .segment_size_bytes(1 << 20)
        .preallocate(false)
        .durability(Durability::Buffered);
    let wal = Wal::open_standalone(d.path(), cfg).await.unwrap();
    let big = |i: u64| {
        let mut p = payload(i);
        p.resize(1_000 + (i % 100) as usize, b'z');
        p
    };
    // The first read, the doubled ones, then three of the largest.
    let to_catch_up = (SUBSCRIPTION_CHUNK_BYTES + 3 * SUBSCRIPTION_MAX_CHUNK_BYTES) as u64;
    let (mut written, mut i, mut txns_written) = (0u64, 0u64, 0usize);
    while written * 1_050 <= to_catch_up {
        written += match i % 3 {
            0 => {
                wal.append(big(i)).await.unwrap();
                1
            }
            1 => {
                wal.commit((0..3).map(|k| big(i * 7 + k)).collect())
                    .await
                    .unwrap();
                txns_written += 3;
                3
            }
            _ => {
                wal.append_batch((0..2).map(|k| big(i * 11 + k)).collect())
                    .await
                    .unwrap();
                2
            }
        };
        i += 1;
    }
    wal.flush().await.unwrap();
    let files: Vec<Record> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(files.len() as u64, written);
    let mut sub = wal.subscribe(Lsn(1));
    let mut txns = 0;
    for file in &files {
        let r = next(&mut sub).await.expect("no end").unwrap();
        assert_eq!(r.lsn, file.lsn, "in order, no gap, no duplicate");
        assert_eq!(&r, file, "record {} differs from LogReader's", r.lsn);
        txns += usize::from(r.txn.is_some());
    }
    assert_eq!(
        txns, txns_written,
        "every transaction's entries carry their place"
    );
    wal.shutdown().await.unwrap();
}

/// Batches written while nobody follows wake nobody (issue 23: the queue skips the
/// watch's wake then). A subscriber that arrives after many of them still gets every
/// record, caught up and then live, with no wake lost: each next record arrives.
#[actix::test]
async fn a_subscriber_after_unwatched_batches_misses_no_wake() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    for i in 0..100u32 {
        wal.append(i.to_le_bytes().to_vec()).await.unwrap();
    }
    for round in 0..20u32 {
        // Caught up at once (from the durable end), then woken by the next append alone.
        let end = wal.flush().await.unwrap();
        let mut sub = wal.subscribe(Lsn(end.0 + 1));
        let next = {
            let wal = wal.clone();
            actix_rt::spawn(async move { wal.append(round.to_le_bytes().to_vec()).await })
        };
        let got = actix_rt::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no wake within 5 s"))
            .expect("a record")
            .expect("no error");
        assert_eq!(got.lsn, next.await.unwrap().unwrap());
        drop(sub);
        // And batches with nobody following again, between rounds.
        wal.append(b"unwatched".to_vec()).await.unwrap();
    }
    wal.shutdown().await.unwrap();
}
