//! Recovery of damaged logs: mid-log corruption is refused (and named, by the reader and
//! by recovery, which then changes nothing), `SkipToLastGood` salvages the prefix and the
//! log continues, and a torn tail is cut and the bytes cut reported.
//! Many segments, checkpoint truncation and abandoned tails: tests/recovery_segments.rs.

#[path = "common/numbered_records.rs"]
mod numbered_records;

use actix_wal::files::segment_name;
use actix_wal::files::SegmentEnd;
use actix_wal::format::frame::encode_record;
use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::storage::default_storage;
use actix_wal::{LogReader, LogWriter, Lsn, Record, RecoveryPolicy, WalError};
use numbered_records::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Flips every bit of one byte.
fn damage(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

/// The record with LSN `lsn`, read from a good log.
fn find(dir: &Path, lsn: u64) -> Record {
    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    records
        .into_iter()
        .find(|r| r.lsn == Lsn(lsn))
        .expect("record present")
}

fn segment_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(segment_name(u64::from(first_lsn)))
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Asserts `err` is corruption naming `segment` and `offset`, in the value and in its text.
fn assert_corruption_at(err: Option<WalError>, segment: &Path, offset: u64) {
    match err {
        Some(e @ WalError::Corruption { .. }) => {
            let text = e.to_string();
            let WalError::Corruption {
                segment: s,
                offset: o,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(s, segment);
            assert_eq!(o, offset);
            assert!(text.contains(&segment.display().to_string()), "{text}");
            assert!(text.contains(&format!("offset {offset}")), "{text}");
        }
        other => panic!(
            "expected corruption in {}, got {other:?}",
            segment.display()
        ),
    }
}

#[test]
fn damage_in_an_earlier_write_batch_is_an_error_from_the_reader_and_from_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Three batches of two records, all in the first segment.
    write_records(dir, 6, 2, options(RecoveryPolicy::default()));
    let victim = find(dir, 3);
    let seg = segment_path(dir, victim.segment_first_lsn);
    assert_eq!(segment_files(dir).len(), 1);
    damage(&seg, victim.frame_offset + FRAME_HEADER_BYTES as u64 + 2);
    let before = snapshot(dir);

    let (records, err) = read_log(dir);
    assert_eq!(lsns(&records), [1, 2]);
    assert_payloads(&records);
    assert_corruption_at(err, &seg, victim.frame_offset);

    let refused = LogWriter::open(dir, options(RecoveryPolicy::default()));
    assert_corruption_at(refused.err(), &seg, victim.frame_offset);
    assert_eq!(
        snapshot(dir),
        before,
        "refused recovery must change nothing"
    );
}

#[test]
fn damage_in_an_earlier_segment_is_an_error_from_the_reader_and_from_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 60, 5, options(RecoveryPolicy::default()));
    assert!(segment_files(dir).len() >= 4);
    let victim = find(dir, 3);
    assert_eq!(victim.segment_first_lsn, Lsn(1));
    let seg = segment_path(dir, Lsn(1));
    // The CRC field itself.
    damage(&seg, victim.frame_offset);
    let before = snapshot(dir);

    let (records, err) = read_log(dir);
    assert_eq!(lsns(&records), [1, 2]);
    assert_corruption_at(err, &seg, victim.frame_offset);

    for policy in [
        RecoveryPolicy::TolerateTornTail,
        RecoveryPolicy::AbsoluteConsistency,
    ] {
        let refused = LogWriter::open(dir, options(policy));
        assert_corruption_at(refused.err(), &seg, victim.frame_offset);
        assert_eq!(snapshot(dir), before, "{policy:?} must change nothing");
    }
}

#[test]
fn damage_followed_by_a_later_batch_ending_in_an_empty_record_is_corruption() {
    // The later batch's last frame ends in zero bytes (its reserved byte, an empty payload):
    // it still proves the damaged batch was fsynced, so this is not a torn tail.
    for last in [&b""[..], &[0u8; 40][..]] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut log, _) = LogWriter::open(dir, options(RecoveryPolicy::default())).unwrap();
        log.append(b"one").unwrap();
        log.sync().unwrap();
        log.append(b"two").unwrap();
        log.sync().unwrap();
        log.append(last).unwrap();
        log.sync().unwrap();
        drop(log);
        let victim = find(dir, 2);
        let seg = segment_path(dir, Lsn(1));
        damage(&seg, victim.frame_offset + FRAME_HEADER_BYTES as u64);

        let (records, err) = read_log(dir);
        assert_eq!(lsns(&records), [1]);
        assert_corruption_at(err, &seg, victim.frame_offset);
        let refused = LogWriter::open(dir, options(RecoveryPolicy::default()));
        assert_corruption_at(refused.err(), &seg, victim.frame_offset);
    }
}

#[test]
fn skip_to_last_good_salvages_the_prefix_of_a_damaged_segment_and_the_log_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 60, 5, options(RecoveryPolicy::default()));
    let segments_before = segment_files(dir);
    let victim = find(dir, 8);
    let seg = segment_path(dir, victim.segment_first_lsn);
    damage(&seg, victim.frame_offset + FRAME_HEADER_BYTES as u64);

    let (mut log, outcome) = LogWriter::open(dir, options(RecoveryPolicy::SkipToLastGood)).unwrap();
    assert_eq!(outcome.next_lsn, Lsn(8));
    assert_eq!(outcome.records, 7);
    assert_eq!(outcome.last_lsn, Some(Lsn(7)));
    assert!(matches!(
        outcome.salvaged_from,
        Some(WalError::Corruption { ref segment, offset, .. })
            if *segment == seg && offset == victim.frame_offset
    ));
    // Every segment after the damaged one is gone; the damaged one is kept up to the damage.
    let kept = segment_files(dir);
    assert_eq!(
        kept.last().unwrap(),
        &segment_name(u64::from(victim.segment_first_lsn))
    );
    assert_eq!(outcome.removed.len(), segments_before.len() - kept.len());
    assert_eq!(outcome.segments, kept.len());

    assert_eq!(log.append(b"after salvage").unwrap(), Lsn(8));
    log.sync().unwrap();
    drop(log);
    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(lsns(&records), (1..=8).collect::<Vec<_>>());
    assert_payloads(&records[..7]);
    assert_eq!(records[7].payload, b"after salvage");
}

#[test]
fn skip_to_last_good_over_a_damaged_first_segment_header_keeps_lsns_growing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 60, 5, options(RecoveryPolicy::default()));
    // A checkpoint removed the first segments; the log now starts later than LSN 1.
    let (mut log, _) = LogWriter::open(dir, options(RecoveryPolicy::default())).unwrap();
    assert!(log.truncate_before(Lsn(30)).unwrap() > 0);
    drop(log);
    let first = segment_files(dir)[0].clone();
    let first_lsn: u64 = first.trim_end_matches(".wal").parse().unwrap();
    assert!(first_lsn > 1);
    // Damage the header's first-LSN field: the header CRC no longer matches.
    damage(&dir.join(&first), 16);

    let (mut log, outcome) = LogWriter::open(dir, options(RecoveryPolicy::SkipToLastGood)).unwrap();
    assert!(outcome.salvaged_from.is_some());
    assert_eq!(outcome.records, 0);
    // Nothing survives, but the log goes on where it began (its first segment's name, or
    // the checkpoint persisted in META if that is later): LSNs never go back.
    let start = first_lsn.max(30);
    assert_eq!(outcome.next_lsn, Lsn(start));
    assert_eq!(log.append(b"after salvage").unwrap(), Lsn(start));
    log.sync().unwrap();
    drop(log);
    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(lsns(&records), [start]);
}

#[test]
fn skip_to_last_good_salvages_damage_before_later_batches_in_the_last_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 6, 2, options(RecoveryPolicy::default()));
    let victim = find(dir, 3);
    let seg = segment_path(dir, Lsn(1));
    damage(&seg, victim.frame_offset + 9);

    let (mut log, outcome) = LogWriter::open(dir, options(RecoveryPolicy::SkipToLastGood)).unwrap();
    assert_eq!(outcome.next_lsn, Lsn(3));
    assert!(outcome.salvaged_from.is_some());
    assert!(outcome.removed.is_empty());
    log.append(b"three again").unwrap();
    log.sync().unwrap();
    drop(log);
    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(lsns(&records), [1, 2, 3]);
    assert_eq!(records[2].payload, b"three again");
}

#[test]
fn torn_tail_is_cut_and_bytes_cut_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 12, 4, options(RecoveryPolicy::default()));
    let last = find(dir, 12);
    let seg = segment_path(dir, last.segment_first_lsn);
    let end = last.frame_offset + FRAME_HEADER_BYTES as u64 + last.payload.len() as u64;
    // A crash in the middle of writing LSN 13: the first 37 bytes of its frame.
    let mut frame = Vec::new();
    encode_record(&mut frame, 13, 0, &[0x5a; 100]);
    let torn = &frame[..37];
    assert_ne!(
        torn[36], 0,
        "the test needs the last torn byte to be non-zero"
    );
    {
        let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, torn, end).unwrap();
    }

    // The reader ends cleanly and says the tail was torn.
    let mut reader = LogReader::open_with(dir, default_storage(), MAX_RECORD_BYTES).unwrap();
    let records: Vec<Record> = reader.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(lsns(&records), (1..=12).collect::<Vec<_>>());
    assert_eq!(
        reader.tail_end(),
        Some(SegmentEnd::TornTail { garbage_bytes: 37 })
    );

    // AbsoluteConsistency refuses it and cuts nothing.
    let before = snapshot(dir);
    let refused = LogWriter::open(dir, options(RecoveryPolicy::AbsoluteConsistency));
    assert_corruption_at(refused.err(), &seg, end);
    assert_eq!(snapshot(dir), before);

    // The default policy cuts it, says how much, and continues at LSN 13.
    let (mut log, outcome) = LogWriter::open(dir, options(RecoveryPolicy::default())).unwrap();
    assert_eq!(outcome.bytes_cut, 37);
    assert_eq!(outcome.next_lsn, Lsn(13));
    assert_eq!(outcome.tail_offset, end);
    let data = fs::read(&seg).unwrap();
    assert!(
        data[end as usize..].iter().all(|&b| b == 0),
        "the cut tail reads as zeros"
    );
    assert_eq!(
        data.len() as u64,
        SEGMENT_SIZE_BYTES,
        "preallocated again after the cut"
    );
    log.append(&payload(13)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut reader = LogReader::open_with(dir, default_storage(), MAX_RECORD_BYTES).unwrap();
    let records: Vec<Record> = reader.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(lsns(&records), (1..=13).collect::<Vec<_>>());
    assert_payloads(&records);
    assert_eq!(reader.tail_end(), Some(SegmentEnd::Clean));
}
