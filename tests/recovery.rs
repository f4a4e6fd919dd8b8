//! Recovery: mid-log corruption is refused (and named), salvage keeps the prefix, a torn
//! tail is cut, many segments read back in order, abandoned segment tails are skipped, and
//! checkpoint truncation removes only whole segments below its LSN.

use actix_wal::files::segment_name;
use actix_wal::files::SegmentEnd;
use actix_wal::format::frame::encode_record;
use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::storage::default_storage;
use actix_wal::{
    FsStorage, LogDir, LogOptions, LogReader, LogWriter, Lsn, Record, RecoveryPolicy, Storage,
    StorageFile, WalError,
};
use std::any::Any;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Largest record of these logs.
const MAX_RECORD_BYTES: u64 = 256;
/// Segment size of these logs: a handful of records per segment.
const SEGMENT_SIZE_BYTES: u64 = 1024;

fn options(policy: RecoveryPolicy) -> LogOptions {
    LogOptions {
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        max_record_bytes: MAX_RECORD_BYTES,
        preallocate: true,
        recovery_policy: policy,
        ..LogOptions::default()
    }
}

/// The payload of the record with LSN `lsn`: recognisable, and of varying length.
fn payload(lsn: u64) -> Vec<u8> {
    let len = (lsn * 37 % 120) as usize + 1;
    let mut p = format!("record {lsn}:").into_bytes();
    p.resize(len.max(p.len()), b'a' + (lsn % 26) as u8);
    p
}

/// Writes records `1..=n` to a new log in `dir`, one write batch per `batch` records.
fn write_records(dir: &Path, n: u64, batch: u64, opts: LogOptions) {
    let (mut log, _) = LogWriter::open(dir, opts).expect("open a new log");
    for lsn in 1..=n {
        assert_eq!(log.append(&payload(lsn)).expect("append"), Lsn(lsn));
        if lsn % batch == 0 {
            log.sync().expect("sync");
        }
    }
    log.sync().expect("sync");
}

/// The records before the first error, and that error.
fn read_log(dir: &Path) -> (Vec<Record>, Option<WalError>) {
    let reader = LogReader::open_with(dir, default_storage(), MAX_RECORD_BYTES).expect("open");
    let mut out = Vec::new();
    for item in reader {
        match item {
            Ok(r) => out.push(r),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn lsns(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| u64::from(r.lsn)).collect()
}

fn assert_payloads(records: &[Record]) {
    for r in records {
        assert_eq!(
            r.payload,
            payload(u64::from(r.lsn)),
            "payload of LSN {}",
            r.lsn
        );
    }
}

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

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
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

#[test]
fn a_log_of_many_segments_reads_back_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 400, 7, options(RecoveryPolicy::default()));
    let names = segment_files(dir);
    assert!(names.len() >= 20, "only {} segments", names.len());

    let reader = LogReader::open_with(dir, default_storage(), MAX_RECORD_BYTES).unwrap();
    let listed: Vec<String> = reader
        .segments()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, names, "segments are listed in LSN order");
    let records: Vec<Record> = reader.map(|r| r.unwrap()).collect();
    assert_eq!(lsns(&records), (1..=400).collect::<Vec<_>>());
    assert_payloads(&records);
    // Each segment holds a contiguous run starting at the LSN in its name.
    let mut seen = Vec::new();
    for r in &records {
        if seen.last() != Some(&r.segment_first_lsn) {
            assert_eq!(
                r.lsn, r.segment_first_lsn,
                "a segment starts with its named LSN"
            );
            seen.push(r.segment_first_lsn);
        }
    }
    let from_names: Vec<Lsn> = names
        .iter()
        .map(|n| Lsn(n.trim_end_matches(".wal").parse().unwrap()))
        .collect();
    assert_eq!(seen, from_names);
}

#[test]
fn truncate_before_removes_only_whole_segments_below_the_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 200, 3, options(RecoveryPolicy::default()));
    let firsts: Vec<u64> = segment_files(dir)
        .iter()
        .map(|n| n.trim_end_matches(".wal").parse().unwrap())
        .collect();
    assert!(firsts.len() >= 8);
    let (mut log, _) = LogWriter::open(dir, options(RecoveryPolicy::default())).unwrap();

    // Below the second segment's first LSN nothing can go: segment 1 still holds records
    // at or after it.
    assert_eq!(log.truncate_before(Lsn(firsts[1] - 1)).unwrap(), 0);
    // Exactly at a segment's first LSN: every segment before it goes.
    assert_eq!(log.truncate_before(Lsn(firsts[2])).unwrap(), 2);
    assert_eq!(segment_files(dir).len(), firsts.len() - 2);
    // In the middle of a segment: that segment stays.
    let mid = firsts[5] + 1;
    assert!(mid < firsts[6]);
    assert_eq!(log.truncate_before(Lsn(mid)).unwrap(), 3);
    assert_eq!(
        segment_files(dir)[0],
        segment_name(firsts[5]),
        "the segment holding LSN {mid} is kept"
    );
    // Past the end: the last segment is never removed.
    assert_eq!(log.truncate_before(Lsn(10_000)).unwrap(), firsts.len() - 6);
    assert_eq!(segment_files(dir), [segment_name(*firsts.last().unwrap())]);
    let last_first = *firsts.last().unwrap();

    // The log continues; the reader starts at the checkpoint (201, the durable end when
    // it was asked past the end), not at the first kept segment.
    assert_eq!(log.append(b"after truncation").unwrap(), Lsn(201));
    log.sync().unwrap();
    drop(log);
    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(lsns(&records), [201]);

    let (mut log, outcome) = LogWriter::open(dir, options(RecoveryPolicy::default())).unwrap();
    // The checkpoint asked past the end was recorded at the durable end (201): the kept
    // segment's older records are hidden.
    assert_eq!(outcome.start_lsn, Lsn(201));
    assert_eq!(outcome.first_lsn, Some(Lsn(201)));
    assert_eq!(outcome.next_lsn, Lsn(202));
    for lsn in 202..=260 {
        assert_eq!(log.append(&payload(lsn)).unwrap(), Lsn(lsn));
    }
    log.sync().unwrap();
    drop(log);
    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    // The reader honours the checkpoint in META: nothing below 201, though segment
    // `last_first` is kept.
    assert_eq!(lsns(&records), (201..=260).collect::<Vec<_>>());
    assert_eq!(segment_files(dir)[0], segment_name(last_first));
}

#[test]
fn truncate_before_through_log_dir_keeps_records_at_and_after_the_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 150, 4, options(RecoveryPolicy::default()));
    let checkpoint = Lsn(77);
    let log_dir = LogDir::open(dir, default_storage()).unwrap();
    let removed = log_dir.truncate_before(checkpoint).unwrap();
    assert!(!removed.is_empty());
    drop(log_dir);
    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    let first = records[0].lsn;
    assert!(first <= checkpoint, "record {checkpoint} must survive");
    assert_eq!(lsns(&records), (u64::from(first)..=150).collect::<Vec<_>>());
    // Each removed segment lay wholly below the checkpoint.
    for path in removed {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let seg_first: u64 = name.trim_end_matches(".wal").parse().unwrap();
        assert!(seg_first < u64::from(first));
    }
}

/// The real file system, except that the next `fail_syncs` calls to `fdatasync` fail.
#[derive(Debug)]
struct FailingSync {
    fail_syncs: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct FailingSyncFile {
    inner: Box<dyn StorageFile>,
    fail_syncs: Arc<AtomicUsize>,
}

impl Storage for FailingSync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        FsStorage.is_dir(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsStorage.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FailingSyncFile {
            inner: FsStorage.create(path)?,
            fail_syncs: self.fail_syncs.clone(),
        }))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FailingSyncFile {
            inner: FsStorage.open(path, writable)?,
            fail_syncs: self.fail_syncs.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send>> {
        FsStorage.lock(path)
    }
}

impl StorageFile for FailingSyncFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        let failed = self
            .fail_syncs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
}

#[test]
fn records_abandoned_by_an_fsync_failure_rewrite_are_read_once_from_the_next_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fail_syncs = Arc::new(AtomicUsize::new(0));
    let opts = LogOptions {
        storage: Arc::new(FailingSync {
            fail_syncs: fail_syncs.clone(),
        }),
        ..options(RecoveryPolicy::default())
    };
    let (mut log, _) = LogWriter::open(dir, opts.clone()).unwrap();
    for lsn in 1..=3 {
        log.append(&payload(lsn)).unwrap();
    }
    log.sync().unwrap();
    // The fsync of LSNs 4 and 5 fails: their frames stay in segment 1 (maybe on disk,
    // maybe not) and the batch is rewritten into a fresh segment named 4.
    fail_syncs.store(1, Ordering::SeqCst);
    log.append(&payload(4)).unwrap();
    log.append(&payload(5)).unwrap();
    assert_eq!(log.sync().unwrap(), Lsn(5));
    assert_eq!(
        fail_syncs.load(Ordering::SeqCst),
        0,
        "the failure was injected"
    );
    log.append(&payload(6)).unwrap();
    log.sync().unwrap();
    drop(log);
    assert_eq!(segment_files(dir), [segment_name(1), segment_name(4)]);
    // Segment 4's header marks it as a rewrite (flags, bytes 12..16: bit 0); 1's does not.
    let flags = |name: String| fs::read(dir.join(name)).unwrap()[12..16].to_vec();
    assert_eq!(
        flags(segment_name(4)),
        [1, 0, 0, 0],
        "segment 4 is a rewrite"
    );
    assert_eq!(flags(segment_name(1)), [0, 0, 0, 0]);

    let (records, err) = read_log(dir);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(lsns(&records), [1, 2, 3, 4, 5, 6]);
    assert_payloads(&records);
    assert!(records[3..].iter().all(|r| r.segment_first_lsn == Lsn(4)));
    // The abandoned copies are still in segment 1, after LSN 3: skipped, not corruption.
    let last_kept = &records[2];
    let abandoned_at =
        last_kept.frame_offset + (FRAME_HEADER_BYTES + last_kept.payload.len()) as u64;
    let seg1 = fs::read(dir.join(segment_name(1))).unwrap();
    assert_ne!(
        seg1[abandoned_at as usize + 22],
        0,
        "an abandoned frame follows LSN 3"
    );

    let (_, outcome) = LogWriter::open(dir, opts).unwrap();
    assert_eq!(outcome.records, 6);
    assert_eq!(outcome.next_lsn, Lsn(7));
    assert_eq!(outcome.bytes_cut, 0);
}
