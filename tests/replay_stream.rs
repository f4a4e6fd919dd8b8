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
