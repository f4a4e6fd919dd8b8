//! Compression (issue 22, item 4), round trips: with `WalConfig::compression` on,
//! payloads above the threshold are stored LZ4-compressed (frame flag bit 0), and every
//! read path gives back the bytes appended: reads, range reads, subscriptions, replay
//! (stream and recipient), `LogReader`; transactions keep their positions, messages sent
//! to the queue directly are compressed there, and the settings are validated.
//! Which segments may hold compressed frames: tests/compression_segments.rs; damaged,
//! hostile and oversized frames: tests/compression_faults.rs.

#[path = "common/compressed.rs"]
mod compressed;

use actix::prelude::*;
use actix_wal::format::frame::transaction_payload;
use actix_wal::format::*;
use actix_wal::*;
use compressed::*;
use futures::StreamExt;
use std::fs;
use std::sync::{Arc, Mutex};

struct Collector(Arc<Mutex<Vec<Record>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Replayed> for Collector {
    type Result = ();
    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        self.0.lock().unwrap().extend(msg.records);
    }
}

#[actix::test]
async fn compressed_records_round_trip_through_every_read_path() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open(dir, small(Compression::lz4())).await.unwrap();
    let want = write(&wal, 1, 120).await;
    let raw: usize = want.iter().map(|(_, p)| p.len()).sum();

    // Stored compressed (flag set) above the threshold, as they are below it.
    let on_disk = read_all(dir);
    assert_records(&on_disk, &want);
    let mut compressed = 0;
    for r in &on_disk {
        let flags = frame_flags(dir, r);
        if r.txn.is_none() && r.payload.len() < 512 {
            assert_eq!(flags, 0, "LSN {} is below the threshold", r.lsn.0);
        } else {
            assert_eq!(
                flags, FRAME_FLAG_LZ4,
                "LSN {} is JSON of 1 KiB or more",
                r.lsn.0
            );
            compressed += 1;
        }
    }
    assert!(compressed > 100, "{compressed}");
    let segment_bytes: u64 = segments(dir)
        .iter()
        .map(|s| fs::metadata(&s.path).unwrap().len())
        .sum();
    assert!(
        (segment_bytes as usize) < raw / 2,
        "{segment_bytes} bytes on disk for {raw} bytes appended"
    );

    // Reads by LSN, range reads, a subscription, the replay stream.
    for (lsn, p) in want.iter().step_by(7) {
        assert!(wal.read(*lsn).await.unwrap().payload == *p);
    }
    let mut ranged = Vec::new();
    let end = Lsn(want.last().unwrap().0 .0 + 1);
    while ranged.len() < want.len() {
        let from = Lsn(1 + ranged.len() as u64);
        ranged.extend(wal.read_range(from..end, 16 * 1024).await.unwrap());
    }
    assert_records(&ranged, &want);
    let sub: Vec<Record> = wal
        .subscribe(Lsn(1))
        .take(want.len())
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_records(&sub, &want);
    wal.shutdown().await.unwrap();

    // Replay at open, to a recipient (read by `LogReader`) and as a stream (range reads).
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = WalConfig {
        replay_to: Some(Collector(seen.clone()).start().recipient()),
        ..small(Compression::lz4())
    };
    let wal = Wal::open(dir, cfg).await.unwrap();
    assert_records(&seen.lock().unwrap(), &want);
    let replayed: Vec<Record> = wal.replay().map(|r| r.unwrap()).collect().await;
    assert_records(&replayed, &want);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn compressed_transactions_read_back_whole_with_their_positions() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    // Entries too short to compress alone; together, with their lengths, they do.
    let entries: Vec<Vec<u8>> = (0..40).map(|k| json(k, 60)).collect();
    let first = wal.commit(entries.clone()).await.unwrap();
    let after = wal.append(b"after".to_vec()).await.unwrap();
    assert_eq!(after.0, first.0 + 40);
    let got = wal.read_range(first..after, 1 << 20).await.unwrap();
    assert_eq!(got.len(), 40);
    for (k, r) in got.iter().enumerate() {
        assert_eq!(r.payload, entries[k]);
        assert_eq!(
            r.txn,
            Some(TxnPosition {
                index: k as u16,
                count: 40
            })
        );
    }
    assert_eq!(frame_flags(dir, &got[0]), FRAME_FLAG_LZ4);
    wal.shutdown().await.unwrap();
    let read = read_all(dir);
    assert_eq!(read.len(), 41);
    assert!(read[..40]
        .iter()
        .zip(&entries)
        .all(|(r, e)| r.payload == *e));
}

#[tokio::test]
async fn messages_sent_to_the_queue_are_compressed_there() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // A plain log first: the compressing queue's first compressed frame starts a segment.
    let wal = Wal::open_standalone(dir, small(Compression::None))
        .await
        .unwrap();
    let mut want = write(&wal, 1, 5).await;
    wal.shutdown().await.unwrap();
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    let q = wal.queue().clone();
    let p = json(1, 3000);
    want.push((q.send(Append::new(p.clone())).await.unwrap().unwrap(), p));
    let entries = vec![json(2, 700), json(3, 700)];
    let lsn = q.send(Commit::new(entries.clone())).await.unwrap().unwrap();
    want.extend(
        entries
            .into_iter()
            .enumerate()
            .map(|(k, e)| (Lsn(lsn.0 + k as u64), e)),
    );
    let recs = vec![json(4, 2000), b"short".to_vec()];
    let lsn = q
        .send(AppendBatch::new(recs.clone()))
        .await
        .unwrap()
        .unwrap();
    want.extend(
        recs.into_iter()
            .enumerate()
            .map(|(k, e)| (Lsn(lsn.0 + k as u64), e)),
    );
    wal.shutdown().await.unwrap();
    let all = read_all(dir);
    assert_records(&all, &want);
    let flags: Vec<u8> = all.iter().map(|r| frame_flags(dir, r)).collect();
    let n = want.len();
    assert_eq!(flags[n - 5..], [1, 1, 1, 1, 0][..]);
    let first = &all[n - 5];
    assert_eq!(first.segment_first_lsn, first.lsn, "a new segment");
    assert!(compressed_frames_only_in_flagged_segments(dir) >= 4);
}

#[test]
fn compression_settings_are_validated() {
    for (c, ok) in [
        (Compression::None, true),
        (Compression::lz4(), true),
        (Compression::Lz4 { min_bytes: 32 }, true),
        (Compression::Lz4 { min_bytes: 31 }, false),
        (
            Compression::Lz4 {
                min_bytes: 16 * 1024,
            },
            true,
        ),
        (
            Compression::Lz4 {
                min_bytes: 16 * 1024 + 1,
            },
            false,
        ),
    ] {
        match small(c).validate() {
            Ok(()) => assert!(ok, "{c:?} must be refused"),
            Err(WalError::InvalidConfig(m)) => {
                assert!(!ok, "{c:?} must be accepted: {m}");
                assert!(m.contains("compression"), "{m}");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(WalConfig::default().compression, Compression::None);
    // The layout a compressed transaction stores is the plain one, compressed.
    let entries = [b"ab".to_vec(), Vec::new()];
    assert_eq!(
        transaction_payload(&entries),
        [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]
    );
}
