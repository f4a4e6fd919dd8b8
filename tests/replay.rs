//! Replay at open: every intact record reaches the application's `Recipient<Replayed>`
//! in LSN order and in bounded chunks, before the log takes appends; durability
//! notifications reach a `Recipient<DurabilityReply>`.

use actix::prelude::*;
use actix_wal::*;
use std::sync::{Arc, Mutex};

/// LSNs of each replayed chunk, and the chunk's size.
type Chunks = Arc<Mutex<Vec<(Vec<Lsn>, usize)>>>;
/// Durability notifications: token and result.
type Acks = Arc<Mutex<Vec<(u64, Result<Lsn, WalError>)>>>;

#[derive(Default)]
struct Collector {
    seen: Chunks,
    acks: Acks,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Replayed> for Collector {
    type Result = ();
    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        let n = msg.records.len();
        self.seen
            .lock()
            .unwrap()
            .push((msg.records.iter().map(|r| r.lsn).collect(), n));
    }
}

impl Handler<DurabilityReply> for Collector {
    type Result = ();
    fn handle(&mut self, msg: DurabilityReply, _: &mut Self::Context) {
        self.acks.lock().unwrap().push((msg.token, msg.result));
    }
}

/// Replay reads through the process-wide `replay::read` failpoint, which one test arms:
/// every test that replays holds the `fail` crate's scenario lock while it does, so none
/// replays into the armed failpoint (it counts hits across the whole process).
#[cfg(feature = "failpoints")]
fn serial() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Without failpoints there is nothing to serialize: a guard that holds nothing.
#[cfg(not(feature = "failpoints"))]
fn serial() -> Option<std::convert::Infallible> {
    None
}

#[actix::test]
async fn replay_streams_every_record_in_lsn_order_in_bounded_chunks() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    for i in 0..250u32 {
        wal.append(i.to_le_bytes().to_vec()).await.unwrap();
    }
    wal.commit(vec![b"a".to_vec(), b"b".to_vec()])
        .await
        .unwrap();
    wal.shutdown().await.unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = Collector {
        seen: seen.clone(),
        ..Default::default()
    }
    .start();
    let cfg = WalConfig {
        replay_to: Some(c.recipient()),
        replay_chunk_records: 64,
        ..WalConfig::default()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.recovery_report().replayed, 252);
    let chunks = seen.lock().unwrap().clone();
    assert!(chunks.iter().all(|(_, n)| *n <= 64));
    let lsns: Vec<Lsn> = chunks.into_iter().flat_map(|(l, _)| l).collect();
    assert_eq!(lsns, (1..=252).map(Lsn).collect::<Vec<_>>());
    // Appends continue after the replayed records.
    assert_eq!(wal.append(b"next".to_vec()).await.unwrap(), Lsn(253));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn durability_notifications_reach_the_recipient_with_their_tokens() {
    let d = tempfile::tempdir().unwrap();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let c = Collector {
        acks: acks.clone(),
        ..Default::default()
    }
    .start();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let lsn = wal
        .send(Append::new(b"x".to_vec()).notify(c.clone().recipient(), 7))
        .await
        .unwrap();
    let b = wal
        .send(
            Append::new(b"y".to_vec())
                .durability(Durability::Buffered)
                .notify(c.clone().recipient(), 8),
        )
        .await
        .unwrap();
    wal.flush().await.unwrap();
    wal.shutdown().await.unwrap();
    actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    let got = acks.lock().unwrap().clone();
    assert!(
        got.iter()
            .any(|(t, r)| *t == 7 && r.as_ref().ok() == Some(&lsn)),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(t, r)| *t == 8 && r.as_ref().ok() == Some(&b)),
        "{got:?}"
    );
}

#[actix::test]
async fn replay_chunk_records_is_bounded_at_open() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let c = Collector::default().start();
    for (n, ok) in [
        (1usize << 20, true),
        ((1 << 20) + 1, false),
        (1 << 40, false),
        (usize::MAX, false),
    ] {
        let cfg = WalConfig {
            replay_to: Some(c.clone().recipient()),
            replay_chunk_records: n,
            ..WalConfig::default()
        };
        match Wal::open(d.path(), cfg).await {
            Ok(wal) => {
                assert!(ok, "{n} must be refused");
                wal.shutdown().await.unwrap();
            }
            Err(WalError::InvalidConfig(m)) => {
                assert!(!ok, "{n} must be accepted: {m}");
                assert!(m.contains("replay_chunk_records"), "{m}");
            }
            Err(e) => panic!("{n}: unexpected {e}"),
        }
    }
}

#[actix::test]
async fn replay_chunks_never_split_a_transaction() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    wal.append(b"a".to_vec()).await.unwrap();
    for i in 0..5u8 {
        wal.commit(vec![vec![i], vec![i, 1], vec![i, 2]])
            .await
            .unwrap();
        wal.append(vec![i, 9]).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = Collector {
        seen: seen.clone(),
        ..Default::default()
    }
    .start();
    let cfg = WalConfig {
        replay_to: Some(c.recipient()),
        replay_chunk_records: 2,
        ..WalConfig::default()
    };
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.recovery_report().replayed, 21);
    wal.shutdown().await.unwrap();
    let chunks = seen.lock().unwrap().clone();
    let all: Vec<Lsn> = chunks.iter().flat_map(|(l, _)| l.clone()).collect();
    assert_eq!(all, (1..=21).map(Lsn).collect::<Vec<_>>());
    // Transaction i holds LSNs 2 + 4i .. 2 + 4i + 3: each lies in one chunk.
    for i in 0..5u64 {
        let txn: Vec<Lsn> = (0..3).map(|k| Lsn(2 + 4 * i + k)).collect();
        assert!(
            chunks
                .iter()
                .any(|(l, _)| txn.iter().all(|t| l.contains(t))),
            "transaction {i} split across chunks: {chunks:?}"
        );
    }
    // Chunks end at the bound unless a transaction was open there.
    assert!(chunks.iter().all(|(_, n)| *n <= 4), "{chunks:?}");
}

/// A replay reader that dies (a panic, here injected) must fail `Wal::open`: an
/// application rebuilding its state from replay must never start empty without knowing.
#[cfg(feature = "failpoints")]
#[actix::test]
async fn a_replay_reader_that_panics_fails_the_open() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    for i in 0..100u32 {
        wal.append(i.to_le_bytes().to_vec()).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    let c = Collector::default().start();
    let cfg = || WalConfig {
        replay_to: Some(c.clone().recipient()),
        ..WalConfig::default()
    };
    let scenario = fail::FailScenario::setup();
    fail::cfg("replay::read", "50*off->panic").unwrap();
    let res = Wal::open(d.path(), cfg()).await;
    fail::remove("replay::read");
    scenario.teardown();
    match res {
        Err(e) => assert!(e.to_string().contains("replay"), "{e}"),
        Ok(w) => panic!(
            "open succeeded after a replay failure: {:?}",
            w.recovery_report()
        ),
    }
    // Nothing was lost: a clean reopen replays all 100.
    let wal = Wal::open(d.path(), cfg()).await.unwrap();
    assert_eq!(wal.recovery_report().replayed, 100);
    wal.shutdown().await.unwrap();
}

/// A chunk ends before the record that would take it past `max_queue_bytes` of payload,
/// not after it (it held almost twice the bound: four records of 3,000 bytes against 4,096
/// came as two chunks of 6,000), and a transaction is still never split.
#[actix::test]
async fn a_chunk_never_holds_more_than_max_queue_bytes_unless_one_unit_does() {
    let d = tempfile::tempdir().unwrap();
    let cfg = || WalConfig {
        max_record_bytes: 4000,
        max_batch_bytes: 4096,
        max_queue_bytes: 4096,
        ..WalConfig::default()
    };
    let wal = Wal::open(d.path(), cfg()).await.unwrap();
    for i in 0..4u8 {
        wal.append(vec![i; 3000]).await.unwrap();
    }
    // A transaction of 3 x 1,000 bytes: whole in one chunk, alone or after a small record.
    wal.append(vec![9u8; 500]).await.unwrap();
    wal.commit(vec![vec![7u8; 1000]; 3]).await.unwrap();
    wal.append(vec![8u8; 3000]).await.unwrap();
    wal.shutdown().await.unwrap();

    let sizes: Arc<Mutex<Vec<Vec<usize>>>> = Arc::default();
    struct Sizes(Arc<Mutex<Vec<Vec<usize>>>>);
    impl Actor for Sizes {
        type Context = Context<Self>;
    }
    impl Handler<Replayed> for Sizes {
        type Result = ();
        fn handle(&mut self, m: Replayed, _: &mut Self::Context) {
            let chunk = m.records.iter().map(|r| r.payload.len()).collect();
            self.0.lock().unwrap().push(chunk);
        }
    }
    let to = Sizes(sizes.clone()).start().recipient();
    let wal = Wal::open(
        d.path(),
        WalConfig {
            replay_to: Some(to),
            ..cfg()
        },
    )
    .await
    .unwrap();
    wal.shutdown().await.unwrap();
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().flatten().count(), 9, "{sizes:?}");
    for c in &sizes {
        assert!(
            c.len() == 1 || c.iter().sum::<usize>() <= 4096,
            "a chunk over max_queue_bytes: {sizes:?}"
        );
    }
    assert!(
        sizes
            .iter()
            .any(|c| c.iter().filter(|&&n| n == 1000).count() == 3),
        "the transaction in one chunk: {sizes:?}"
    );
}
