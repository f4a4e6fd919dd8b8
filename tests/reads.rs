//! Reads on the open log (`Wal::read`, `Wal::read_range`): every durable record comes back
//! exactly as appended, with its LSN and transaction position; LSNs outside the durable
//! log are `NotFound`; range reads are bounded prefixes; the index survives a reopen and a
//! rollover; and reads under load return exactly the acknowledged payloads.

use actix_wal::*;
use futures::future::join_all;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A payload that tells its origin apart and varies in size (some cross an index stride).
fn payload(tag: u64, i: u64) -> Vec<u8> {
    let len = match i % 7 {
        0 => 0,
        1 => 5_000,
        2 => 20_000,
        _ => (i % 300) as usize + 1,
    };
    let mut p = format!("{tag}:{i}:").into_bytes();
    p.resize(p.len() + len, (i % 251) as u8);
    p
}

/// What was acknowledged: LSN -> (payload, transaction position).
type Acked = HashMap<u64, (Vec<u8>, Option<TxnPosition>)>;

/// Appends `n` records and `n / 10` three-entry transactions, concurrently in groups so
/// they share fsyncs; returns what was acknowledged.
async fn fill(wal: &Wal, tag: u64, n: u64) -> Acked {
    let mut acked = Acked::new();
    for group in 0..n.div_ceil(50) {
        let lo = group * 50;
        let hi = (lo + 50).min(n);
        let appends = join_all((lo..hi).map(|i| wal.append(payload(tag, i)))).await;
        for (i, r) in (lo..hi).zip(appends) {
            acked.insert(r.unwrap().0, (payload(tag, i), None));
        }
        let entries: Vec<Vec<u8>> = (0..3).map(|k| payload(tag + 1, group * 3 + k)).collect();
        let first = wal.commit(entries.clone()).await.unwrap();
        for (k, e) in entries.into_iter().enumerate() {
            let txn = TxnPosition {
                index: k as u16,
                count: 3,
            };
            acked.insert(first.0 + k as u64, (e, Some(txn)));
        }
    }
    acked
}

async fn assert_reads(wal: &Wal, acked: &Acked) {
    for (&lsn, (want, txn)) in acked {
        let r = wal.read(Lsn(lsn)).await.unwrap();
        assert_eq!(r.lsn, Lsn(lsn));
        assert_eq!(&r.payload, want, "payload of LSN {lsn}");
        assert_eq!(r.txn, *txn, "transaction position of LSN {lsn}");
    }
}

fn not_found(r: Result<Record, WalError>, lsn: u64) {
    match r {
        Err(WalError::NotFound { lsn: l }) => assert_eq!(l, Lsn(lsn)),
        other => panic!("LSN {lsn}: expected NotFound, got {other:?}"),
    }
}

#[actix::test]
async fn read_of_every_lsn_returns_what_was_appended() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let acked = fill(&wal, 1, 400).await;
    assert_reads(&wal, &acked).await;
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn reads_outside_the_durable_log_are_not_found() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig::default().segment_size_bytes(64 * 1024);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    not_found(wal.read(Lsn(1)).await, 1); // nothing written yet
    let acked = fill(&wal, 1, 200).await;
    let end = wal.flush().await.unwrap().0 + 1;
    not_found(wal.read(Lsn(end)).await, end); // never written
    not_found(wal.read(Lsn(end + 1000)).await, end + 1000);
    not_found(wal.read(Lsn(0)).await, 0); // below the first LSN
                                          // A checkpoint removes whole segments: their LSNs are gone, the rest still reads.
    let removed = wal.truncate_before(Lsn(end - 1)).await.unwrap();
    assert!(
        removed > 0,
        "the small segments make a checkpoint remove some"
    );
    let mut gone = 0;
    for (&lsn, (want, _)) in &acked {
        match wal.read(Lsn(lsn)).await {
            Ok(r) => assert_eq!(&r.payload, want),
            Err(WalError::NotFound { lsn: l }) => {
                assert_eq!(l, Lsn(lsn));
                gone += 1;
            }
            Err(e) => panic!("LSN {lsn}: {e}"),
        }
    }
    assert!(gone > 0);
    not_found(wal.read(Lsn(1)).await, 1);
    let last = wal.read(Lsn(end - 1)).await.unwrap();
    assert_eq!(last.payload, acked[&(end - 1)].0);
    // Reversed or oversized range reads are refused, typed.
    assert!(matches!(
        wal.read_range(Lsn(5)..Lsn(4), 1024).await,
        Err(WalError::InvalidReadRange { .. })
    ));
    assert!(matches!(
        wal.read_range(Lsn(end - 1)..Lsn(end), usize::MAX).await,
        Err(WalError::InvalidReadRange { .. })
    ));
    wal.shutdown().await.unwrap();
    assert!(matches!(
        wal.read(Lsn(end - 1)).await,
        Err(WalError::ShutDown)
    ));
}

#[actix::test]
async fn read_range_is_a_prefix_bounded_by_max_bytes() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let recs: Vec<Vec<u8>> = (0..1000u32).map(|i| vec![(i % 256) as u8; 256]).collect();
    for chunk in recs.chunks(100) {
        join_all(chunk.iter().map(|p| wal.append(p.clone())))
            .await
            .into_iter()
            .for_each(|r| assert!(r.is_ok()));
    }
    let all = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap())
        .collect::<Vec<_>>();
    assert_eq!(all.len(), 1000);
    // A bound of 10,000 bytes: a prefix, each record counting payload + 24 bytes.
    let part = wal.read_range(Lsn(1)..Lsn(1001), 10_000).await.unwrap();
    assert!(!part.is_empty());
    assert!(part.len() * (256 + 24) <= 10_000, "{} records", part.len());
    assert_eq!(part[..], all[..part.len()]);
    // A bound below one record still returns one.
    let one = wal.read_range(Lsn(7)..Lsn(1001), 0).await.unwrap();
    assert_eq!(one, vec![all[6].clone()]);
    // Past the durable end: stops there. Reading on from the last LSN gets the rest.
    let mut got = Vec::new();
    let mut next = Lsn(1);
    while next.0 <= 1000 {
        let part = wal.read_range(next..Lsn(5000), 64 * 1024).await.unwrap();
        next = Lsn(part.last().unwrap().lsn.0 + 1);
        got.extend(part);
    }
    assert_eq!(got, all);
    assert!(wal
        .read_range(Lsn(3)..Lsn(3), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        wal.read_range(Lsn(1001)..Lsn(1002), 100).await,
        Err(WalError::NotFound { .. })
    ));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn reads_survive_a_reopen_and_segment_rollovers() {
    let d = tempfile::tempdir().unwrap();
    let cfg = || WalConfig::default().segment_size_bytes(96 * 1024);
    let wal = Wal::open(d.path(), cfg()).await.unwrap();
    let mut acked = fill(&wal, 1, 300).await;
    let segments = LogReader::open(d.path()).unwrap().segments().count();
    assert!(segments > 5, "{segments} segments");
    assert_reads(&wal, &acked).await;
    wal.shutdown().await.unwrap();
    // Reopened: the index is rebuilt by recovery's scan.
    let wal = Wal::open(d.path(), cfg()).await.unwrap();
    assert_reads(&wal, &acked).await;
    acked.extend(fill(&wal, 7, 100).await);
    assert_reads(&wal, &acked).await;
    let all = wal
        .read_range(Lsn(1)..Lsn(u64::MAX), 1 << 20)
        .await
        .unwrap();
    assert!(!all.is_empty());
    for r in &all {
        assert_eq!(r.payload, acked[&r.lsn.0].0);
    }
    wal.shutdown().await.unwrap();
}

/// Acknowledged (LSN, payload) pairs, in the order they were answered.
type Log = Vec<(u64, Vec<u8>)>;

/// Small deterministic generator for the readers' picks.
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[actix::test]
async fn reads_under_load_return_exactly_the_acknowledged_payloads() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    let acked: Rc<RefCell<Log>> = Rc::default();
    let writing = Rc::new(RefCell::new(64usize));
    let started = Instant::now();
    let budget = Duration::from_secs(3);
    let committers = (0..64u64).map(|a| {
        let (wal, acked, writing) = (wal.clone(), acked.clone(), writing.clone());
        actix::spawn(async move {
            let mut i = 0;
            while started.elapsed() < budget {
                let entries = vec![payload(a, i), payload(a, i + 1)];
                let first = wal.commit(entries.clone()).await.unwrap();
                let mut acked = acked.borrow_mut();
                for (k, e) in entries.into_iter().enumerate() {
                    acked.push((first.0 + k as u64, e));
                }
                i += 2;
            }
            *writing.borrow_mut() -= 1;
        })
    });
    let committers: Vec<_> = committers.collect();
    let readers = (0..16u64).map(|r| {
        let (wal, acked, writing) = (wal.clone(), acked.clone(), writing.clone());
        actix::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (r + 1);
            let mut reads = 0u64;
            while *writing.borrow() > 0 {
                let pick = {
                    let acked = acked.borrow();
                    if acked.is_empty() {
                        None
                    } else {
                        Some(acked[(xorshift(&mut seed) % acked.len() as u64) as usize].clone())
                    }
                };
                let Some((lsn, want)) = pick else {
                    actix_rt::task::yield_now().await;
                    continue;
                };
                let got = wal.read(Lsn(lsn)).await.unwrap();
                assert_eq!(got.payload, want, "LSN {lsn}");
                reads += 1;
            }
            reads
        })
    });
    let readers: Vec<_> = readers.collect();
    for c in committers {
        c.await.unwrap();
    }
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    let commits = acked.borrow().len() / 2;
    eprintln!("{reads} reads beside {commits} commits");
    assert!(reads > 0);
    assert!(commits > 0);
    wal.shutdown().await.unwrap();
}

/// Reads racing checkpoints: every read returns the acknowledged payload or `NotFound`
/// (its segment was removed before or during the read), never an I/O error. Reads go
/// to the reader pool (the queue on the test's thread) and are served in place (the
/// queue on its own, so cached segment handles race the removals).
#[actix::test]
async fn reads_racing_a_truncation_are_payloads_or_not_found() {
    for placement in [QueueThread::Caller, QueueThread::Own] {
        reads_racing_a_truncation(placement).await;
    }
}

async fn reads_racing_a_truncation(placement: QueueThread) {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig::default()
        .segment_size_bytes(32 * 1024)
        .queue_thread(placement);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    let acked = Rc::new(fill(&wal, 3, 300).await);
    let end = wal.flush().await.unwrap().0;
    let readers: Vec<_> = (0..8u64)
        .map(|r| {
            let (wal, acked) = (wal.clone(), acked.clone());
            actix::spawn(async move {
                let (mut found, mut gone) = (0u64, 0u64);
                for lsn in (1 + r..=end).step_by(8) {
                    match wal.read(Lsn(lsn)).await {
                        Ok(rec) => {
                            assert_eq!(rec.payload, acked[&lsn].0, "LSN {lsn}");
                            found += 1;
                        }
                        Err(WalError::NotFound { lsn: l }) => {
                            assert_eq!(l, Lsn(lsn));
                            gone += 1;
                        }
                        Err(e) => panic!("LSN {lsn}: {e}"),
                    }
                }
                (found, gone)
            })
        })
        .collect();
    let mut removed = 0;
    for cut in (1..end).step_by(40) {
        removed += wal.truncate_before(Lsn(cut)).await.unwrap();
        actix_rt::task::yield_now().await;
    }
    let (mut found, mut gone) = (0, 0);
    for r in readers {
        let (f, g) = r.await.unwrap();
        found += f;
        gone += g;
    }
    eprintln!("{placement:?}: {found} found, {gone} truncated away, {removed} segments removed");
    assert!(removed > 0);
    assert!(found > 0, "the segments a checkpoint keeps still read");
    assert_eq!(found + gone, end);
    wal.shutdown().await.unwrap();
}

/// A standalone log (its own actix `System` thread) reads from a tokio runtime too.
#[tokio::test]
async fn a_standalone_log_reads_from_tokio() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), WalConfig::default())
        .await
        .unwrap();
    let lsn = wal.append(b"from tokio".to_vec()).await.unwrap();
    assert_eq!(wal.read(lsn).await.unwrap().payload, b"from tokio");
    not_found(wal.read(lsn + 1).await, lsn.0 + 1);
    wal.shutdown().await.unwrap();
}
