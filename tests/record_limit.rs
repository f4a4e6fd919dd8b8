//! A log opened with a lower `max_record_bytes` than it was written with is refused, and a
//! refused open changes nothing.
//!
//! A probe reopened a log whose acknowledged last record was 1.5 MB with
//! `WalConfig::default()` (1 MiB): recovery took the intact frame for a torn one, cut it,
//! and gave its LSN out again. Another opened a log of 50,000-byte records with 4,096: the
//! segment was cut to its header before the open was refused (`META` named a record
//! past the cut), and the log no longer opened with the right limit either.

mod common;

use actix_wal::{Wal, WalConfig, WalError};
use common::{file_names, segment_lsns};
use std::path::Path;

/// Every file of the log in `dir` with its bytes.
fn image(dir: &Path) -> Vec<(String, Vec<u8>)> {
    file_names(dir)
        .into_iter()
        .filter(|n| n != "LOCK")
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

#[actix::test]
async fn an_intact_record_longer_than_the_limit_refuses_the_open_and_cuts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let written_with = WalConfig::default().max_record_bytes(2 << 20);
    let wal = Wal::open(dir, written_with.clone()).await.unwrap();
    for i in 0..3u8 {
        wal.append(vec![i; 100]).await.unwrap();
    }
    let big = wal.append(vec![9u8; 1_500_000]).await.unwrap();
    assert_eq!(big.0, 4);
    wal.shutdown().await.unwrap();
    drop(wal);
    let before = image(dir);

    let refused = Wal::open(dir, WalConfig::default()).await;
    let err = match refused {
        Ok(w) => panic!(
            "opened: records {}, bytes cut {}",
            w.recovery_report().records,
            w.recovery_report().bytes_cut
        ),
        Err(e) => e,
    };
    assert!(
        matches!(&err, WalError::Corruption { reason, .. } if reason.contains("max_record_bytes")),
        "{err}"
    );
    assert!(image(dir) == before, "the refused open changed the log");

    let wal = Wal::open(dir, written_with).await.unwrap();
    assert_eq!(wal.recovery_report().records, 4);
    assert_eq!(wal.read(big).await.unwrap().payload, vec![9u8; 1_500_000]);
    assert_eq!(wal.append(b"next".to_vec()).await.unwrap().0, 5);
    wal.shutdown().await.unwrap();
}

#[actix::test]
async fn an_open_refused_for_a_lost_newest_segment_leaves_the_torn_tail_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = WalConfig::default()
        .segment_size_bytes(64 << 10)
        .preallocate(false);
    let wal = Wal::open(dir, config.clone()).await.unwrap();
    let mut n = 0;
    while segment_lsns(dir).len() < 3 {
        wal.append(vec![n as u8; 4_000]).await.unwrap();
        n += 1;
        assert!(n < 1_000, "no rollover");
    }
    wal.append(b"in the newest segment".to_vec()).await.unwrap();
    wal.shutdown().await.unwrap();
    drop(wal);
    // The newest segment is lost; the one before it ends in a torn write.
    let lsns = segment_lsns(dir);
    let newest = dir.join(format!("{:020}.wal", lsns[2]));
    let before_it = dir.join(format!("{:020}.wal", lsns[1]));
    assert!(newest.exists(), "{:?}", file_names(dir));
    std::fs::remove_file(&newest).unwrap();
    let mut torn = std::fs::read(&before_it).unwrap();
    torn.extend_from_slice(&[0xA5; 40]);
    std::fs::write(&before_it, &torn).unwrap();
    let before = image(dir);

    let Err(err) = Wal::open(dir, config).await else {
        panic!("opened a log whose newest segment is lost");
    };
    assert!(
        matches!(&err, WalError::Corruption { reason, .. } if reason.contains("newest")),
        "{err}"
    );
    assert!(image(dir) == before, "the refused open changed the log");
}
