//! Replay without actix (issue 22, item 2): `Wal::replay` yields the records the log held
//! at open, in LSN order with no gap and no duplicate, to a plain tokio caller of
//! `Wal::open_standalone` and to an actix caller alike (the same records `replay_to`
//! sends), none appended since the open, and ends with a typed error naming the first
//! record removed since the open.

use actix::prelude::*;
use actix_wal::*;
use futures::StreamExt;
use std::sync::{Arc, Mutex};

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .preallocate(false)
}

fn payload(i: u32) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat((i % 300) as usize)).into_bytes()
}

/// A log of `n` records (spanning several segments), closed.
async fn write_log(dir: &std::path::Path, n: u32) {
    let wal = Wal::open_standalone(dir, small()).await.unwrap();
    for i in 0..n {
        wal.append(payload(i)).await.unwrap();
    }
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tokio_caller_replays_every_record_the_log_held_at_open_and_none_appended_since() {
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), 2_000).await;
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    assert!(wal.recovery_report().segments > 2, "the log spans segments");
    wal.append(b"after the open".to_vec()).await.unwrap();
    let records: Vec<Record> = wal.replay().map(|r| r.unwrap()).collect().await;
    assert_eq!(records.len(), 2_000);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.lsn,
            Lsn(i as u64 + 1),
            "in LSN order, no gap, no duplicate"
        );
        assert_eq!(r.payload, payload(i as u32));
    }
    // A second replay gives the same again.
    assert_eq!(wal.replay().count().await, 2_000);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_empty_log_replays_nothing() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    assert_eq!(wal.replay().count().await, 0);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_record_checkpointed_away_since_the_open_ends_the_replay_with_its_lsn() {
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), 2_000).await;
    let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
    wal.truncate_before(Lsn(1_500)).await.unwrap();
    let first_kept = wal.stats().await.unwrap().first_lsn;
    assert!(first_kept > Lsn(1), "the checkpoint removed segments");
    let items: Vec<Result<Record, WalError>> = wal.replay().collect().await;
    assert_eq!(items.len(), 1, "ends at the first error: {items:?}");
    match &items[0] {
        Err(WalError::NotFound { lsn }) => assert_eq!(*lsn, Lsn(1)),
        other => panic!("expected NotFound at LSN 1, got {other:?}"),
    }
    wal.shutdown().await.unwrap();
}

/// A record of about 1,000 bytes tagged `tag`: a replay's first read (1 MiB) holds about
/// a thousand of them.
fn tagged(tag: &str, i: u64) -> Vec<u8> {
    let mut v = format!("{tag}-{i}").into_bytes();
    v.resize(1_000, b'.');
    v
}

/// A log of 3,000 tagged records "old", reopened: 2,501 to 3,000 are rewound away and
/// 500 "new" records take their LSNs, after `replay` is called or before.
#[tokio::test]
async fn a_rewind_since_the_open_ends_the_replay_at_the_cut_with_nothing_appended_after_it() {
    for replay_first in [true, false] {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
        for i in 1..=3_000 {
            wal.append(tagged("old", i)).await.unwrap();
        }
        wal.shutdown().await.unwrap();
        let wal = Wal::open_standalone(d.path(), small()).await.unwrap();
        let mut replay = replay_first.then(|| wal.replay());
        if let Some(r) = replay.as_mut() {
            // The first read, well below the cut, is in hand before the rewind.
            assert_eq!(r.next().await.unwrap().unwrap().lsn, Lsn(1));
        }
        wal.truncate_after(Lsn(2_500)).await.unwrap();
        for i in 2_501..=3_000 {
            assert_eq!(wal.append(tagged("new", i)).await.unwrap(), Lsn(i));
        }
        let rest: Vec<Result<Record, WalError>> = match replay {
            Some(r) => r.collect().await,
            None => wal.replay().collect().await,
        };
        wal.shutdown().await.unwrap();
        let (last, records) = rest.split_last().unwrap();
        let new = records
            .iter()
            .flatten()
            .filter(|r| r.payload.starts_with(b"new-"))
            .count();
        assert_eq!(
            new, 0,
            "replay_first {replay_first}: records appended since the open"
        );
        let first = if replay_first { 2 } else { 1 };
        let lsns: Vec<u64> = records.iter().map(|r| r.as_ref().unwrap().lsn.0).collect();
        assert_eq!(
            lsns,
            (first..=2_500).collect::<Vec<_>>(),
            "replay_first {replay_first}"
        );
        assert!(
            matches!(last, Err(WalError::NotFound { lsn }) if *lsn == Lsn(2_501)),
            "replay_first {replay_first}: ends with the cut's LSN, got {last:?}"
        );
    }
}

/// `WalConfig::replay_from` moves where `replay_to` starts; the stream starts there too.
#[tokio::test]
async fn the_replay_starts_at_replay_from_as_replay_to_does() {
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), 10).await;
    let wal = Wal::open_standalone(d.path(), small().replay_from(Lsn(6)))
        .await
        .unwrap();
    let lsns: Vec<u64> = wal.replay().map(|r| r.unwrap().lsn.0).collect().await;
    wal.shutdown().await.unwrap();
    assert_eq!(lsns, vec![6, 7, 8, 9, 10]);
}

/// Records as (LSN, payload), as `replay_to` sent them.
type Seen = Arc<Mutex<Vec<(Lsn, Vec<u8>)>>>;

/// Collects what `replay_to` sends.
struct Sink(Seen);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Replayed> for Sink {
    type Result = ();
    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        let mut seen = self.0.lock().unwrap();
        for r in msg.records {
            seen.push((r.lsn, r.payload));
        }
    }
}

#[actix::test]
async fn the_stream_gives_what_replay_to_sends_an_actor() {
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), 700).await;
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(seen.clone()).start();
    let wal = Wal::open(d.path(), small().replay_to(sink.recipient()))
        .await
        .unwrap();
    let streamed: Vec<(Lsn, Vec<u8>)> = wal
        .replay()
        .map(|r| {
            let r = r.unwrap();
            (r.lsn, r.payload)
        })
        .collect()
        .await;
    assert_eq!(streamed.len(), 700);
    assert_eq!(*seen.lock().unwrap(), streamed);
    wal.shutdown().await.unwrap();
}
