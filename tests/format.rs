//! The on-disk format, as properties and limits: what is written reads back identically,
//! and recovery goes on after it; records and transactions at and over `max_record_bytes`,
//! a reader bounded below a frame's length, transactions of 65,535 and 65,536 entries.
//! A cut or a flipped bit: tests/format_damage.rs.
//!
//! The geometry is small (records up to 2 KiB, segments of 8 KiB) so that logs roll over
//! into several segments; the proptest seed is fixed so that every run checks the same
//! cases.

#[path = "common/random_log.rs"]
mod random_log;

use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::{LogWriter, Lsn, Record, TxnPosition, WalError};
use proptest::prelude::*;
use random_log::*;

/// Records and, for a good log, each record's LSN and transaction position, checked.
fn assert_reads_back(records: &[Record], w: &Written) {
    assert_eq!(payloads(records), w.records, "payloads differ");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.lsn, Lsn(i as u64 + 1), "LSNs are contiguous from 1");
        assert_eq!(r.txn, w.txn[i], "transaction position of LSN {}", i + 1);
    }
}

proptest! {
    #![proptest_config(config(64, 0x5eed_0001))]

    #[test]
    fn written_records_read_back_identically(
        steps in prop::collection::vec(step(MAX_RECORD_BYTES as usize), 0..48),
        preallocate in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let opts = options(SEGMENT_SIZE_BYTES, MAX_RECORD_BYTES, preallocate);
        let w = write_log(&dir, &steps, opts.clone());

        let (records, err) = read_log(&dir, MAX_RECORD_BYTES);
        prop_assert!(err.is_none(), "reading a good log failed: {:?}", err);
        assert_reads_back(&records, &w);

        // Reopening finds the same records, cuts nothing and continues after them.
        let (mut log, outcome) = LogWriter::open(&dir, opts).unwrap();
        prop_assert_eq!(outcome.records, w.records.len() as u64);
        prop_assert_eq!(outcome.next_lsn, Lsn(w.records.len() as u64 + 1));
        prop_assert_eq!(outcome.bytes_cut, 0);
        let lsn = log.append(b"after reopen").unwrap();
        log.sync().unwrap();
        drop(log);
        prop_assert_eq!(lsn, Lsn(w.records.len() as u64 + 1));
        let (records, err) = read_log(&dir, MAX_RECORD_BYTES);
        prop_assert!(err.is_none());
        prop_assert_eq!(records.len(), w.records.len() + 1);
        prop_assert_eq!(&records[w.records.len()].payload[..], b"after reopen");
    }
}

#[test]
fn record_over_max_record_bytes_is_refused_and_one_at_the_limit_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(SEGMENT_SIZE_BYTES, MAX_RECORD_BYTES, true);
    let (mut log, _) = LogWriter::open(tmp.path(), opts).unwrap();
    let at_limit = vec![7u8; MAX_RECORD_BYTES as usize];
    let over = vec![7u8; MAX_RECORD_BYTES as usize + 1];
    assert_eq!(log.append(&at_limit).unwrap(), Lsn(1));
    match log.append(&over) {
        Err(WalError::RecordTooLarge {
            size_bytes,
            max_bytes,
        }) => {
            assert_eq!(size_bytes, MAX_RECORD_BYTES + 1);
            assert_eq!(max_bytes, MAX_RECORD_BYTES);
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // A transaction counts 4 bytes of length per entry against the same limit.
    let fits = [vec![1u8; MAX_RECORD_BYTES as usize - 4]];
    assert_eq!(log.append_transaction(&fits).unwrap(), Lsn(2));
    let too_big = [vec![1u8; MAX_RECORD_BYTES as usize - 3]];
    assert!(matches!(
        log.append_transaction(&too_big),
        Err(WalError::RecordTooLarge { .. })
    ));
    // The refused appends took no LSN.
    assert_eq!(log.append(b"next").unwrap(), Lsn(3));
    log.sync().unwrap();
    drop(log);
    let (records, err) = read_log(tmp.path(), MAX_RECORD_BYTES);
    assert!(err.is_none());
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].payload, at_limit);
    assert_eq!(records[2].payload, b"next");
}

#[test]
fn reader_refuses_a_frame_longer_than_its_max_record_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(SEGMENT_SIZE_BYTES, MAX_RECORD_BYTES, false);
    let (mut log, _) = LogWriter::open(tmp.path(), opts).unwrap();
    log.append(&[1u8; 100]).unwrap();
    log.sync().unwrap();
    log.append(&[2u8; 1000]).unwrap();
    log.sync().unwrap();
    log.append(&[3u8; 100]).unwrap();
    log.sync().unwrap();
    drop(log);
    // Read with a bound below the middle record: its frame is damage, followed by a frame
    // of a later batch, so the reader reports it rather than allocating for it.
    let (records, err) = read_log(tmp.path(), 500);
    assert_eq!(records.len(), 1);
    match err {
        Some(WalError::Corruption { offset, reason, .. }) => {
            assert_eq!(
                offset,
                records[0].frame_offset + FRAME_HEADER_BYTES as u64 + 100
            );
            assert!(reason.contains("max_record_bytes"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn transaction_of_65535_entries_round_trips_and_65536_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 1024 * 1024;
    let opts = options(4 * max, max, false);
    let (mut log, _) = LogWriter::open(tmp.path(), opts).unwrap();
    let entries: Vec<[u8; 2]> = (0..65_535u32).map(|i| (i as u16).to_le_bytes()).collect();
    assert_eq!(log.append_transaction(&entries).unwrap(), Lsn(1));
    let too_many: Vec<[u8; 0]> = vec![[]; 65_536];
    assert!(matches!(
        log.append_transaction(&too_many),
        Err(WalError::InvalidTransaction { .. })
    ));
    let none: [&[u8]; 0] = [];
    assert!(matches!(
        log.append_transaction(&none),
        Err(WalError::InvalidTransaction { .. })
    ));
    assert_eq!(log.append(b"after").unwrap(), Lsn(65_536));
    log.sync().unwrap();
    drop(log);
    let (records, err) = read_log(tmp.path(), max);
    assert!(err.is_none());
    assert_eq!(records.len(), 65_536);
    for (i, r) in records[..65_535].iter().enumerate() {
        assert_eq!(r.payload, (i as u16).to_le_bytes());
        assert_eq!(
            r.txn,
            Some(TxnPosition {
                index: i as u16,
                count: 65_535
            })
        );
    }
    assert_eq!(records[65_535].payload, b"after");
}
