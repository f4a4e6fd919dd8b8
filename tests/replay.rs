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

#[actix::test]
async fn replay_streams_every_record_in_lsn_order_in_bounded_chunks() {
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
