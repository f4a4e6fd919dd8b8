//! The metadata file wired into the log (issue 11): a new log's first LSN, the metadata
//! slot (`set_meta`, `meta`, `RecoveryReport::meta`), the persisted checkpoint of
//! `truncate_before` (reported, honoured by replay and `LogReader`), `replay_from`, and a
//! lost newest segment reported as corruption.

use actix_wal::log::{read_meta, LogOptions, LogWriter};
use actix_wal::*;
use std::path::Path;

fn segments(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    v.sort();
    v
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
    assert_eq!(segments(d.path()), [1_000]);
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
    std::fs::remove_file(d.path().join("META")).unwrap();
    let (log, outcome) = LogWriter::open(d.path(), opts).unwrap();
    drop(log);
    assert_eq!(outcome.start_lsn, Lsn(1));
    let meta = read_meta(&actix_wal::storage::FsStorage, d.path())
        .unwrap()
        .unwrap();
    assert_eq!(meta.first_lsn, 1);
    let last_segment = *segments(d.path()).last().unwrap();
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
