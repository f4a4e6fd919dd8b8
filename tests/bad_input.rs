//! Bad input: an empty or missing directory (an empty log for the reader: a first start),
//! a file where a directory should be, files that
//! are not segments or are from a newer format, files that cannot be read, and a second
//! opener. Each is a clear `WalError` naming the path, never a panic, and leaves every file
//! as it was (an opener may create the empty `LOCK` file, nothing else).

use actix_wal::files::segment_name;
use actix_wal::format::{SegmentHeader, FORMAT_VERSION, SEGMENT_HEADER_BYTES};
use actix_wal::storage::default_storage;
use actix_wal::{
    FsStorage, LogDir, LogOptions, LogReader, LogWriter, RecoveryOptions, RecoveryPolicy,
    SharedStorage, Storage, StorageFile, WalError,
};
use std::any::Any;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the lock file an opener creates (empty; `flock` holds the lock).
const LOCK: &str = "LOCK";

/// Small segments, so that the logs here are quick to write, read and compare.
fn small() -> LogOptions {
    LogOptions {
        segment_size_bytes: 64 * 1024,
        max_record_bytes: 1024,
        ..LogOptions::default()
    }
}

fn recovery_options(policy: RecoveryPolicy) -> RecoveryOptions {
    LogOptions {
        recovery_policy: policy,
        ..small()
    }
    .recovery_options()
}

/// Every file under `path` (or the file itself), by path, with its bytes.
fn snapshot(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if path.is_file() {
        out.insert(path.to_path_buf(), fs::read(path).unwrap());
    } else if path.is_dir() {
        for e in fs::read_dir(path).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.clone(), fs::read(&p).unwrap());
        }
    }
    out
}

/// Asserts that every file is as it was, allowing only an empty `LOCK` file to appear.
fn assert_unchanged(before: &BTreeMap<PathBuf, Vec<u8>>, path: &Path) {
    let mut after = snapshot(path);
    if !before.contains_key(&path.join(LOCK)) {
        if let Some(lock) = after.remove(&path.join(LOCK)) {
            assert!(lock.is_empty(), "the lock file holds no bytes");
        }
    }
    assert_eq!(&after, before, "files under {} changed", path.display());
}

/// Writes a small good log to `dir` and returns its one segment's path.
fn good_log(dir: &Path) -> PathBuf {
    let (mut log, _) = LogWriter::open(dir, small()).unwrap();
    for i in 0..5u32 {
        log.append(&i.to_le_bytes()).unwrap();
    }
    log.sync().unwrap();
    dir.join(segment_name(1))
}

/// The first item the reader yields, which these tests expect to be an error.
fn first_error(reader: LogReader) -> WalError {
    match reader.into_iter().next() {
        Some(Err(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn assert_names(e: &WalError, path: &Path) {
    let text = e.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "`{text}` does not name {}",
        path.display()
    );
}

/// A first start (issue 20): an empty directory reads as an empty log, and the reader
/// creates nothing in it.
#[test]
fn empty_directory_is_an_empty_log_for_the_reader_and_stays_empty() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(LogReader::open(tmp.path()).unwrap().count(), 0);
    assert!(
        snapshot(tmp.path()).is_empty(),
        "the reader created nothing"
    );
}

/// A first start: a directory that does not exist yet reads as an empty log, and the
/// reader does not create it.
#[test]
fn missing_directory_is_an_empty_log_for_the_reader_and_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    assert_eq!(LogReader::open(&missing).unwrap().count(), 0);
    assert!(!missing.exists());
}

#[test]
fn a_file_given_as_the_log_directory_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"some bytes that are not a log").unwrap();
    let before = snapshot(tmp.path());

    match LogReader::open(&file) {
        Err(e @ WalError::NotADirectory { .. }) => assert_names(&e, &file),
        other => panic!("LogReader: expected NotADirectory, got {other:?}"),
    }
    match LogDir::open(&file, default_storage()) {
        Err(e @ WalError::NotADirectory { .. }) => assert_names(&e, &file),
        other => panic!("LogDir: expected NotADirectory, got {other:?}"),
    }
    assert!(matches!(
        LogWriter::open(&file, small()),
        Err(WalError::NotADirectory { .. })
    ));
    assert_eq!(snapshot(tmp.path()), before);
}

/// A path under a regular file (`file/log`): the file is what is not a directory, for each
/// opener, and nothing is created (it used to be `Io { op: "stat" | "create dir",
/// NotADirectory }` from each).
#[test]
fn a_log_directory_under_a_file_names_the_file_as_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"some bytes that are not a log").unwrap();
    let under = file.join("log");
    let before = snapshot(tmp.path());

    match LogReader::open(&under) {
        Err(WalError::NotADirectory { path }) if path == file => {}
        other => panic!("LogReader: expected NotADirectory, got {other:?}"),
    }
    match LogDir::open(&under, default_storage()) {
        Err(WalError::NotADirectory { path }) if path == file => {}
        other => panic!("LogDir: expected NotADirectory, got {other:?}"),
    }
    match LogWriter::open(&under, small()) {
        Err(WalError::NotADirectory { path }) if path == file => {}
        other => panic!("LogWriter: expected NotADirectory, got {other:?}"),
    }
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn segment_with_a_wrong_magic_is_not_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seg = good_log(dir);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[..8].copy_from_slice(b"NOTAWAL!");
    fs::write(&seg, &bytes).unwrap();
    let before = snapshot(dir);

    let reader = LogReader::open(dir).unwrap();
    match first_error(reader) {
        e @ WalError::NotASegment { .. } => {
            assert_names(&e, &seg);
            assert!(e.is_corruption());
        }
        other => panic!("reader: expected NotASegment, got {other:?}"),
    }
    let log_dir = LogDir::open(dir, default_storage()).unwrap();
    for policy in [
        RecoveryPolicy::TolerateTornTail,
        RecoveryPolicy::AbsoluteConsistency,
    ] {
        match log_dir.recover(&recovery_options(policy)) {
            Err(WalError::NotASegment { path }) => assert_eq!(path, seg),
            other => panic!("recovery ({policy:?}): expected NotASegment, got {other:?}"),
        }
    }
    drop(log_dir);
    assert!(matches!(
        LogWriter::open(dir, small()),
        Err(WalError::NotASegment { .. })
    ));
    assert_unchanged(&before, dir);
}

#[test]
fn a_foreign_file_named_like_a_segment_is_not_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seg = dir.join(segment_name(1));
    fs::write(
        &seg,
        b"#!/bin/sh\necho this file is not an actix-wal segment\n",
    )
    .unwrap();
    let before = snapshot(dir);

    match first_error(LogReader::open(dir).unwrap()) {
        WalError::NotASegment { path } => assert_eq!(path, seg),
        other => panic!("expected NotASegment, got {other:?}"),
    }
    assert!(matches!(
        LogWriter::open(dir, small()),
        Err(WalError::NotASegment { .. })
    ));
    assert_unchanged(&before, dir);
}

#[test]
fn segment_with_a_future_format_version_is_unsupported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seg = dir.join(segment_name(1));
    // A well-formed header (its CRC matches) from a newer build.
    let mut header = SegmentHeader::encode(1);
    header[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32fast::hash(&header[..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut bytes = header.to_vec();
    bytes.resize(SEGMENT_HEADER_BYTES + 100, 0x42);
    fs::write(&seg, &bytes).unwrap();
    let before = snapshot(dir);

    let expect = |e: WalError, who: &str| match e {
        e @ WalError::UnsupportedVersion { .. } => {
            assert_names(&e, &seg);
            let WalError::UnsupportedVersion {
                found, supported, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(found, FORMAT_VERSION + 1);
            assert_eq!(supported, FORMAT_VERSION);
        }
        other => panic!("{who}: expected UnsupportedVersion, got {other:?}"),
    };
    expect(first_error(LogReader::open(dir).unwrap()), "reader");
    let log_dir = LogDir::open(dir, default_storage()).unwrap();
    expect(
        log_dir
            .recover(&recovery_options(RecoveryPolicy::default()))
            .unwrap_err(),
        "recovery",
    );
    drop(log_dir);
    match LogWriter::open(dir, small()) {
        Err(e) => expect(e, "LogWriter"),
        Ok(_) => panic!("LogWriter opened a log of a future format"),
    }
    assert_unchanged(&before, dir);
}

/// The real file system, except that opening files (or listing directories) whose path ends
/// with `deny` is refused, as `EACCES` would be. (Tests run as root, where `chmod` does
/// not stop a read.)
#[derive(Debug)]
struct Denying {
    deny: &'static str,
    deny_list: bool,
}

impl Denying {
    fn check(&self, path: &Path) -> io::Result<()> {
        if path.to_string_lossy().ends_with(self.deny) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "permission denied (test storage)",
            ));
        }
        Ok(())
    }
}

impl Storage for Denying {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        FsStorage.is_dir(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        if self.deny_list {
            self.check(dir)?;
        }
        FsStorage.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.check(path)?;
        FsStorage.create(path)
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn StorageFile>> {
        self.check(path)?;
        FsStorage.open(path, writable)
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

#[test]
fn unreadable_segment_is_permission_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seg = good_log(dir);
    let before = snapshot(dir);
    let storage: SharedStorage = Arc::new(Denying {
        deny: ".wal",
        deny_list: false,
    });

    let reader = LogReader::open_with(dir, storage.clone(), 1024).unwrap();
    match first_error(reader) {
        e @ WalError::PermissionDenied { .. } => {
            assert_names(&e, &seg);
            assert!(!e.is_corruption());
        }
        other => panic!("reader: expected PermissionDenied, got {other:?}"),
    }
    let log_dir = LogDir::open(dir, storage.clone()).unwrap();
    match log_dir.recover(&recovery_options(RecoveryPolicy::default())) {
        Err(WalError::PermissionDenied { path, .. }) => assert_eq!(path, seg),
        other => panic!("recovery: expected PermissionDenied, got {other:?}"),
    }
    drop(log_dir);
    let opts = LogOptions { storage, ..small() };
    assert!(matches!(
        LogWriter::open(dir, opts),
        Err(WalError::PermissionDenied { .. })
    ));
    assert_unchanged(&before, dir);
}

#[test]
fn unlistable_directory_is_permission_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    good_log(&dir);
    let before = snapshot(&dir);
    let storage: SharedStorage = Arc::new(Denying {
        deny: "/log",
        deny_list: true,
    });
    match LogReader::open_with(&dir, storage, 1024) {
        Err(e @ WalError::PermissionDenied { .. }) => assert_names(&e, &dir),
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert_unchanged(&before, &dir);
}

#[test]
fn second_opener_is_locked_out_until_the_first_lets_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    good_log(dir);
    let before = snapshot(dir);

    let first = LogDir::open(dir, default_storage()).unwrap();
    match LogDir::open(dir, default_storage()) {
        Err(e @ WalError::Locked { .. }) => assert_names(&e, dir),
        other => panic!("second LogDir: expected Locked, got {other:?}"),
    }
    match LogWriter::open(dir, small()) {
        Err(WalError::Locked { path }) => assert_eq!(path, dir),
        Err(e) => panic!("LogWriter: expected Locked, got {e:?}"),
        Ok(_) => panic!("LogWriter opened a locked log"),
    }
    // Reading takes no lock.
    assert_eq!(LogReader::open(dir).unwrap().count(), 5);
    assert_unchanged(&before, dir);

    drop(first);
    let (_log, outcome) = LogWriter::open(dir, small()).unwrap();
    assert_eq!(outcome.records, 5);
}

#[test]
fn a_segment_file_larger_than_any_segment_is_refused_without_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let seg = good_log(tmp.path());
    // A sparse 2 GiB file: reading it whole would allocate 2 GiB.
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let e = first_error(LogReader::open(tmp.path()).unwrap());
    assert!(matches!(e, WalError::Corruption { offset: 0, .. }), "{e}");
    assert!(e.to_string().contains("larger than any segment"), "{e}");
    assert_names(&e, &seg);
}
