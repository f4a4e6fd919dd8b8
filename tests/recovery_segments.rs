//! Recovery and reading across segments: many segments read back in order, checkpoint
//! truncation removes only whole segments below its LSN (through `LogWriter` and
//! `LogDir`), and the tail a rewrite after a failed fsync abandoned is skipped, its
//! records read once from the next segment.

#[path = "common/numbered_records.rs"]
mod numbered_records;

use actix_wal::files::segment_name;
use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::storage::default_storage;
use actix_wal::{
    FsStorage, LogDir, LogOptions, LogReader, LogWriter, Lsn, Record, RecoveryPolicy, Storage,
    StorageFile,
};
use numbered_records::*;
use std::any::Any;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    // `META` was read before the change: its first LSN and checkpoint moved up before the
    // segments went, so the log opens (it did not: META was left unread, the segments were
    // removed below a first LSN of 1, and recovery refused "the first segment starts at
    // LSN 69 above the log's first LSN 1").
    let meta = actix_wal::files::read_meta(&actix_wal::storage::FsStorage, dir)
        .unwrap()
        .unwrap();
    assert!(meta.checkpoint() >= checkpoint.0, "{meta:?}");
    LogWriter::open(dir, options(RecoveryPolicy::default())).unwrap();
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

/// `LogDir::update_meta` on a directory opened without recovery changes the value on disk,
/// not a default one: the first LSN, the checkpoint, the newest segment and the slot stay.
/// (It wrote the change over an empty value: the checkpoint went to 0 and the newest
/// segment was forgotten.)
#[test]
fn update_meta_through_log_dir_changes_the_value_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_records(dir, 150, 4, options(RecoveryPolicy::default()));
    let log = LogDir::open(dir, default_storage()).unwrap();
    log.truncate_before(Lsn(77)).unwrap();
    drop(log);
    let read = || {
        actix_wal::files::read_meta(&actix_wal::storage::FsStorage, dir)
            .unwrap()
            .unwrap()
    };
    let before = read();
    let log = LogDir::open(dir, default_storage()).unwrap();
    log.update_meta(|m| m.slot = Some(b"vote".to_vec()))
        .unwrap();
    drop(log);
    let after = read();
    assert_eq!(after.slot.as_deref(), Some(&b"vote"[..]));
    assert_eq!(
        (after.first_lsn, after.checkpoint(), after.newest_lsn),
        (before.first_lsn, before.checkpoint(), before.newest_lsn)
    );
    LogWriter::open(dir, options(RecoveryPolicy::default())).unwrap();
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
