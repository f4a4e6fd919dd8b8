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
