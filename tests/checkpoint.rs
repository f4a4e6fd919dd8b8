//! The metadata file wired into the log (issue 11): a new log's first LSN, the metadata
//! slot (`set_meta`, `meta`, `RecoveryReport::meta`), the persisted checkpoint of
//! `truncate_before` (reported, honoured by replay and `LogReader`), `replay_from`, and a
//! lost newest segment reported as corruption.

mod common;

use actix::prelude::*;
use actix_wal::files::read_meta;
use actix_wal::*;
use actix_wal::{LogOptions, LogReader, LogWriter};
use common::segment_lsns;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn reader_lsns(dir: &Path) -> Vec<u64> {
    LogReader::open(dir)
        .unwrap()
        .map(|r| u64::from(r.unwrap().lsn))
        .collect()
}

/// Collects the LSNs replayed at open.
#[derive(Default)]
struct Collector(Arc<Mutex<Vec<u64>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Replayed> for Collector {
    type Result = ();
    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        let mut seen = self.0.lock().unwrap();
        seen.extend(msg.records.iter().map(|r| u64::from(r.lsn)));
    }
}

/// Opens the log with a replay recipient; returns the handle and the LSNs replayed.
async fn open_replaying(dir: &Path, cfg: WalConfig) -> (Wal, Vec<u64>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let to = Collector(seen.clone()).start().recipient();
    let wal = Wal::open(
        dir,
        WalConfig {
            replay_to: Some(to),
            ..cfg
        },
    )
    .await
    .unwrap();
    let lsns = seen.lock().unwrap().clone();
    (wal, lsns)
}

fn small() -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(4096)
        .max_record_bytes(256)
        .preallocate(false)
}

#[actix::test]
async fn truncate_before_persists_the_start_inside_a_kept_segment() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    assert_eq!(wal.stats().await.unwrap().first_lsn, Lsn(1));
    for i in 0..300u32 {
        wal.append(vec![i as u8; 60]).await.unwrap();
    }
    let segs = segment_lsns(d.path());
    assert!(segs.len() > 4, "{segs:?}");
    // An LSN inside a segment, not at its start: that segment is kept.
    let mid = segs[3] + 2;
    assert!(mid < segs[4]);
    assert_eq!(wal.truncate_before(Lsn(mid)).await.unwrap(), 3);
    assert_eq!(segment_lsns(d.path())[0], segs[3]);
    assert_eq!(wal.stats().await.unwrap().first_lsn, Lsn(mid));
    // A lower checkpoint never moves the start back.
    wal.truncate_before(Lsn(mid - 1)).await.unwrap();
    assert_eq!(wal.stats().await.unwrap().first_lsn, Lsn(mid));
    wal.shutdown().await.unwrap();

    // Offline: the reader starts at the checkpoint.
    assert_eq!(reader_lsns(d.path()), (mid..=300).collect::<Vec<_>>());
    // At open: reported, and replay starts there.
    let (wal, replayed) = open_replaying(d.path(), small()).await;
    assert_eq!(wal.recovery_report().first_lsn, Lsn(mid));
    assert_eq!(wal.recovery_report().records, 301 - mid);
    assert_eq!(replayed, (mid..=300).collect::<Vec<_>>());
    assert_eq!(wal.stats().await.unwrap().first_lsn, Lsn(mid));
    wal.shutdown().await.unwrap();

    // replay_from starts replay later still (and never earlier than the checkpoint).
    let (wal, replayed) = open_replaying(d.path(), small().replay_from(Lsn(250))).await;
    assert_eq!(replayed, (250..=300).collect::<Vec<_>>());
    wal.shutdown().await.unwrap();
    let (wal, replayed) = open_replaying(d.path(), small().replay_from(Lsn(2))).await;
    assert_eq!(replayed, (mid..=300).collect::<Vec<_>>());
    assert_eq!(wal.append(b"next".to_vec()).await.unwrap(), Lsn(301));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_new_log_writes_meta_and_starts_at_first_lsn() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig::default().first_lsn(1_000);
    let wal = Wal::open(d.path(), cfg.clone()).await.unwrap();
    assert_eq!(wal.recovery_report().first_lsn, Lsn(1_000));
    assert_eq!(wal.recovery_report().next_lsn, Lsn(1_000));
    assert_eq!(wal.recovery_report().meta, None);
    let meta = read_meta(&actix_wal::storage::FsStorage, d.path())
        .unwrap()
        .expect("META written for a new log");
    assert_eq!(meta.first_lsn, 1_000);
    assert_eq!(segment_lsns(d.path()), [1_000]);
    assert_eq!(wal.append(b"x".to_vec()).await.unwrap(), Lsn(1_000));
    wal.shutdown().await.unwrap();

    // first_lsn only matters for a new log.
    let wal = Wal::open(d.path(), WalConfig::default().first_lsn(5))
        .await
        .unwrap();
    assert_eq!(wal.recovery_report().first_lsn, Lsn(1_000));
    assert_eq!(wal.recovery_report().next_lsn, Lsn(1_001));
    wal.shutdown().await.unwrap();
    assert!(
        Wal::open(tempfile::tempdir().unwrap().path(), cfg.first_lsn(0))
            .await
            .is_err()
    );
}

#[test]
fn an_old_log_without_meta_gets_one_at_open() {
    let d = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size_bytes: 4096,
        max_record_bytes: 512,
        ..LogOptions::default()
    };
    let (mut log, _) = LogWriter::open(d.path(), opts.clone()).unwrap();
    for i in 0..100u32 {
        log.append(&[i as u8; 100]).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    // What a version before META left: no copy of it, segment headers without
    // KEEPS_META (bytes 24..28 zero, the header CRC over them).
    for name in ["META", "META.copy"] {
        std::fs::remove_file(d.path().join(name)).unwrap();
    }
    for lsn in segment_lsns(d.path()) {
        let path = d.path().join(actix_wal::files::segment_name(lsn));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..32].copy_from_slice(&actix_wal::format::SegmentHeader::encode(lsn));
        std::fs::write(&path, bytes).unwrap();
    }
    let (log, outcome) = LogWriter::open(d.path(), opts).unwrap();
    drop(log);
    assert_eq!(outcome.start_lsn, Lsn(1));
    assert!(outcome.meta_repair.is_some(), "{outcome:?}");
    let meta = read_meta(&actix_wal::storage::FsStorage, d.path())
        .unwrap()
        .unwrap();
    assert_eq!(meta.first_lsn, 1);
    let last_segment = *segment_lsns(d.path()).last().unwrap();
    assert_eq!(meta.newest_lsn, last_segment);
}

#[actix::test]
async fn set_meta_is_durable_read_back_and_found_at_open() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(wal.meta(), None);
    wal.set_meta(b"vote 1".to_vec()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b"vote 1"[..]));
    wal.append(b"a".to_vec()).await.unwrap();
    wal.set_meta(Vec::new()).await.unwrap();
    assert_eq!(wal.meta().as_deref(), Some(&b""[..]), "empty is not none");
    wal.set_meta(b"vote 2".to_vec()).await.unwrap();
    // Through the message as well.
    wal.queue()
        .send(SetMeta(b"vote 3".to_vec()))
        .await
        .unwrap()
        .unwrap();
    wal.truncate_before(Lsn(2)).await.unwrap();
    wal.shutdown().await.unwrap();

    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert_eq!(
        wal.recovery_report().meta.as_deref(),
        Some(&b"vote 3"[..]),
        "kept across reopen and truncation"
    );
    assert_eq!(wal.meta().as_deref(), Some(&b"vote 3"[..]));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn meta_over_the_bound_is_refused_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig::default().max_meta_bytes(8);
    let wal = Wal::open(d.path(), cfg.clone()).await.unwrap();
    wal.set_meta(vec![1; 8]).await.unwrap();
    let before = std::fs::read(d.path().join("META")).unwrap();
    match wal.set_meta(vec![2; 9]).await {
        Err(WalError::MetaTooLarge {
            size_bytes: 9,
            max_bytes: 8,
        }) => {}
        other => panic!("expected MetaTooLarge, got {other:?}"),
    }
    assert_eq!(wal.meta(), Some(vec![1; 8]));
    assert_eq!(std::fs::read(d.path().join("META")).unwrap(), before);
    // The default bound is 64 KiB.
    assert_eq!(WalConfig::default().max_meta_bytes, 64 << 10);
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert_eq!(wal.recovery_report().meta, Some(vec![1; 8]));
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn a_checkpoint_inside_a_transaction_keeps_it_whole() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    wal.append(b"one".to_vec()).await.unwrap();
    let first = wal
        .commit(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()])
        .await
        .unwrap();
    assert_eq!(first, Lsn(2));
    wal.append(b"five".to_vec()).await.unwrap();
    wal.truncate_before(Lsn(3)).await.unwrap();
    wal.shutdown().await.unwrap();
    // Record 1 is hidden; the transaction 2..=4 that reaches the checkpoint comes whole.
    assert_eq!(reader_lsns(d.path()), [2, 3, 4, 5]);
    let (wal, replayed) = open_replaying(d.path(), WalConfig::default()).await;
    assert_eq!(replayed, [2, 3, 4, 5]);
    assert_eq!(wal.recovery_report().first_lsn, Lsn(3));
    wal.shutdown().await.unwrap();
    let (wal, replayed) = open_replaying(d.path(), WalConfig::default().replay_from(Lsn(4))).await;
    assert_eq!(
        replayed,
        [2, 3, 4, 5],
        "replay_from inside it keeps it whole too"
    );
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn meta_is_replaced_once_per_segment_and_a_lost_newest_segment_is_corruption() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), small()).await.unwrap();
    // One durable append at a time: one batch (one fsync) each.
    for i in 0..300u32 {
        wal.append(vec![i as u8; 60]).await.unwrap();
    }
    let stats = wal.stats().await.unwrap();
    wal.shutdown().await.unwrap();
    let segs = segment_lsns(d.path());
    let meta = read_meta(&actix_wal::storage::FsStorage, d.path())
        .unwrap()
        .unwrap();
    println!(
        "{} batches over {} segments: {} META replaces",
        stats.flushes,
        segs.len(),
        meta.seq
    );
    assert!(stats.flushes >= 300, "{}", stats.flushes);
    // The new log's replace, then one per segment (its first batch raises N).
    assert_eq!(meta.seq, 1 + segs.len() as u64);
    assert_eq!(meta.newest_lsn, *segs.last().unwrap());

    // The log ends cleanly without its newest segment: corruption, not reused LSNs.
    let newest = d
        .path()
        .join(actix_wal::files::segment_name(*segs.last().unwrap()));
    std::fs::remove_file(&newest).unwrap();
    match Wal::open(d.path(), small()).await {
        Err(e) => {
            assert!(e.is_corruption(), "{e}");
            assert!(e.to_string().contains("lost newest segment"), "{e}");
        }
        Ok(_) => panic!("a log missing its newest segment opened"),
    }
    // Nothing was changed by the refusal: the reader still sees the rest, then says what
    // recovery says (it read the rest "cleanly" before 2026-12-07: a log recovery
    // refuses read as sound).
    let items: Vec<Result<Record, WalError>> = LogReader::open(d.path()).unwrap().collect();
    let (last, records) = items.split_last().unwrap();
    assert_eq!(records.len() as u64, *segs.last().unwrap() - 1);
    assert!(records.iter().all(Result::is_ok));
    match last {
        Err(e) => assert!(e.to_string().contains("lost newest segment"), "{e}"),
        Ok(r) => panic!("the reader ended at {} without the loss", r.lsn),
    }
    // The salvage policy opens it, lowering N, and says so.
    let wal = Wal::open(
        d.path(),
        small().recovery_policy(RecoveryPolicy::SkipToLastGood),
    )
    .await
    .unwrap();
    assert!(wal.recovery_report().salvaged_from.is_some());
    assert_eq!(wal.recovery_report().next_lsn, Lsn(*segs.last().unwrap()));
    wal.shutdown().await.unwrap();
    Wal::open(d.path(), small())
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}

#[test]
fn the_log_writer_raises_newest_too() {
    let d = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size_bytes: 4096,
        max_record_bytes: 512,
        ..LogOptions::default()
    };
    let (mut log, _) = LogWriter::open(d.path(), opts.clone()).unwrap();
    for i in 0..200u32 {
        log.append(&[i as u8; 100]).unwrap();
        log.sync().unwrap();
    }
    drop(log);
    let segs = segment_lsns(d.path());
    std::fs::remove_file(
        d.path()
            .join(actix_wal::files::segment_name(*segs.last().unwrap())),
    )
    .unwrap();
    let err = LogWriter::open(d.path(), opts).unwrap_err();
    assert!(err.to_string().contains("lost newest segment"), "{err}");
}

/// Reads on the open log honour the persisted checkpoint too, inside a kept segment, and
/// so does the index rebuilt at the next open.
#[actix::test]
async fn reads_never_return_a_record_below_the_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    for i in 1..=20u32 {
        wal.append(i.to_le_bytes().to_vec()).await.unwrap();
    }
    let segs = segment_lsns(d.path());
    wal.send(TruncateBefore(Lsn(10))).await.unwrap();
    assert_eq!(
        segment_lsns(d.path()),
        segs,
        "the segment holding 10 is kept"
    );
    assert!(
        matches!(wal.read(Lsn(9)).await, Err(WalError::NotFound { .. })),
        "open log: 9 is below the checkpoint"
    );
    assert_eq!(
        wal.read(Lsn(10)).await.unwrap().payload,
        10u32.to_le_bytes()
    );
    wal.shutdown().await.unwrap();
    let wal = Wal::open(d.path(), WalConfig::default()).await.unwrap();
    assert!(
        matches!(wal.read(Lsn(9)).await, Err(WalError::NotFound { .. })),
        "reopened: 9 is below the checkpoint"
    );
    assert_eq!(
        wal.read(Lsn(20)).await.unwrap().payload,
        20u32.to_le_bytes()
    );
    wal.shutdown().await.unwrap();
}
