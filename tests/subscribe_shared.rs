//! Shared subscribers: `Wal::subscribe_shared(from)` yields the records `Wal::subscribe`
//! yields, in the same order with no gap and no duplicate, as `SharedRecord`s whose
//! payloads share the batch the log wrote (live) or the span it read (catching up): each
//! equal, once converted, to what `Wal::read` and `LogReader` give, plain and compressed,
//! across rollovers and transactions. The same errors (`SubscriberBehind`,
//! `SubscriberRewound` naming the cut) and the same end at shutdown; a payload stays valid
//! after the log moved on and shut down.

#[path = "common/mixed.rs"]
mod mixed;

use actix_wal::*;
use futures::StreamExt;
use mixed::{payload, write_mixed, MIXED_RECORDS, MIXED_TXN_RECORDS};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(16 * 1024)
        .preallocate(false)
}

/// The next item, or a failure if none comes within `WAIT`.
async fn next<S: futures::Stream + Unpin>(sub: &mut S) -> Option<S::Item> {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("the subscription yielded nothing within 30 s")
}

#[tokio::test]
async fn shared_records_equal_copied_ones_live_and_catching_up() {
    equal_live_and_catching_up(small()).await;
}

#[tokio::test]
async fn shared_records_of_a_compressing_log_equal_copied_ones() {
    equal_live_and_catching_up(small().compression(Compression::Lz4 { min_bytes: 64 })).await;
}

/// A shared and a copying subscriber follow four writers (single records, transactions,
/// batches) from LSN 1 while they write; then a shared subscriber reads the whole log from
/// the files. Every record of each equals `Wal::read`'s and `LogReader`'s.
async fn equal_live_and_catching_up(cfg: WalConfig) {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), cfg).await.unwrap();
    const TOTAL: usize = MIXED_RECORDS;
    let mut shared = wal.subscribe_shared(Lsn(1));
    let mut copied = wal.subscribe(Lsn(1));
    let live = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < TOTAL {
            let s = next(&mut shared).await.expect("no end").unwrap();
            let c = next(&mut copied).await.expect("no end").unwrap();
            got.push((s, c));
        }
        got
    });
    assert_eq!(write_mixed(&wal).await, TOTAL);
    let got = live.await.unwrap();
    let mut txns = 0;
    for (i, (s, c)) in got.iter().enumerate() {
        assert_eq!(s.lsn, Lsn(i as u64 + 1), "in order, no gap, no duplicate");
        assert_eq!(
            Record::from(s.clone()),
            *c,
            "shared and copied differ at {}",
            s.lsn
        );
        assert_eq!(
            *c,
            wal.read(s.lsn).await.unwrap(),
            "{} differs from the files'",
            s.lsn
        );
        txns += usize::from(s.txn.is_some());
    }
    assert_eq!(
        txns, MIXED_TXN_RECORDS,
        "every transaction's entries carry their place"
    );
    assert!(
        got.last().unwrap().0.segment_first_lsn > Lsn(1),
        "rolled over"
    );

    // From the files: more than one chunk (the first read in place, the next ones ahead).
    for i in 0..3_000u64 {
        let mut p = payload(i);
        p.resize(1_000 + (i % 100) as usize, b'z');
        wal.append(p).await.unwrap();
    }
    let files: Vec<Record> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut catching_up = wal.subscribe_shared(Lsn(1));
    for file in &files {
        let s = next(&mut catching_up).await.expect("no end").unwrap();
        assert_eq!(Record::from(s), *file);
    }
    wal.shutdown().await.unwrap();
    assert!(
        next(&mut catching_up).await.is_none(),
        "it ends at shutdown"
    );
    // The payloads handed out live on: the batches and spans they share are theirs too.
    for (s, c) in &got {
        assert_eq!(&s.payload[..], &c.payload[..]);
    }
}

#[tokio::test]
async fn a_shared_subscriber_is_told_it_is_behind_or_rewound_as_a_copying_one() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    for i in 1..=300 {
        wal.append(payload(i)).await.unwrap();
    }
    let mut ahead = wal.subscribe_shared(Lsn(1));
    for lsn in 1..=100 {
        let r = next(&mut ahead).await.unwrap().unwrap();
        assert_eq!((r.lsn, &r.payload[..]), (Lsn(lsn), &payload(lsn)[..]));
    }
    wal.truncate_after(Lsn(50)).await.unwrap();
    let err = loop {
        match next(&mut ahead).await.expect("an error, not the end") {
            Ok(r) => assert!(r.lsn <= Lsn(100)),
            Err(e) => break e,
        }
    };
    match err {
        WalError::SubscriberRewound { cut } => assert_eq!(cut, Lsn(51)),
        e => panic!("expected SubscriberRewound at 51, got {e:?}"),
    }
    for i in 51..=400 {
        wal.append(payload(i)).await.unwrap();
    }
    wal.truncate_before(Lsn(300)).await.unwrap();
    let first = wal.stats().await.unwrap().first_lsn;
    assert!(first > Lsn(5), "the checkpoint removed the first segments");
    let mut early = wal.subscribe_shared(Lsn(5));
    match next(&mut early).await {
        Some(Err(WalError::SubscriberBehind { next, first_lsn })) => {
            assert_eq!((next, first_lsn), (Lsn(5), first))
        }
        other => panic!("expected SubscriberBehind, got {other:?}"),
    }
    assert!(next(&mut early).await.is_none(), "it ends after the error");
    wal.shutdown().await.unwrap();
}
