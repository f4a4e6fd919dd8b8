//! Hostile files in a log directory, each a typed error from the reader, `Wal::open` and
//! `walctl`, promptly, with nothing dropped silently and no LSN given out twice:
//! - a segment that overlaps the one before it without being a rewrite (it would shadow
//!   the records at and after its first LSN);
//! - a segment header with flag bits this build does not know (a newer format);
//! - files named like segments that are not regular files: a FIFO (whose `open(2)` for
//!   reading blocks until a writer comes, so the log hung) and a symbolic link.
//! - the other names the log owns (a leftover `.wal.tmp`, `META.tmp`, `META.reserve`,
//!   `POISONED`) that are not regular files: refused alike, nothing changed.

use actix_wal::files::segment_name;
use actix_wal::format::{SegmentHeader, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use actix_wal::storage::FileKind;
use actix_wal::{LogOptions, LogReader, LogWriter, Lsn, RecoveryPolicy, Wal, WalConfig, WalError};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a call may take before the test calls it hung (they used to block forever).
const HANG: Duration = Duration::from_secs(10);

const MAX_RECORD_BYTES: u64 = 1024;

fn options() -> LogOptions {
    LogOptions {
        segment_size_bytes: 1024 * 1024,
        max_record_bytes: MAX_RECORD_BYTES,
        ..LogOptions::default()
    }
}

fn config() -> WalConfig {
    WalConfig {
        segment_size_bytes: 1024 * 1024,
        max_record_bytes: MAX_RECORD_BYTES,
        max_batch_bytes: 64 * 1024,
        ..WalConfig::default()
    }
}

fn payload(lsn: u64) -> Vec<u8> {
    format!("record {lsn}").into_bytes()
}

/// Writes records `1..=n` into one segment and returns its path.
fn write_log(dir: &Path, n: u64) -> PathBuf {
    let (mut log, _) = LogWriter::open(dir, options()).unwrap();
    for lsn in 1..=n {
        assert_eq!(log.append(&payload(lsn)).unwrap(), Lsn(lsn));
        if lsn % 10 == 0 {
            log.sync().unwrap();
        }
    }
    log.sync().unwrap();
    drop(log);
    dir.join(segment_name(1))
}

/// Runs `f` on its own thread and returns what it returns, or fails the test if it has
/// not returned within [`HANG`].
fn promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {HANG:?}: it hangs")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Reads the whole log: the records before the first error, and the error.
fn read_log(dir: &Path) -> (Vec<u64>, Option<WalError>) {
    let dir = dir.to_path_buf();
    promptly("LogReader", move || {
        let reader = match LogReader::open_with(
            &dir,
            actix_wal::storage::default_storage(),
            MAX_RECORD_BYTES,
        ) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut lsns = Vec::new();
        for item in reader {
            match item {
                Ok(r) => lsns.push(r.lsn.0),
                Err(e) => return (lsns, Some(e)),
            }
        }
        (lsns, None)
    })
}

/// `Wal::open` in an actix system of its own; an opened log is shut down again.
fn wal_open(dir: &Path, config: fn() -> WalConfig) -> Result<(), WalError> {
    let dir = dir.to_path_buf();
    promptly("Wal::open", move || {
        actix::System::new().block_on(async move {
            let wal = Wal::open(&dir, config()).await?;
            wal.shutdown().await
        })
    })
}

/// Runs `walctl ARGS DIR`, killing it if it has not exited within [`HANG`].
fn walctl(args: &[&str], dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(args)
        .arg(dir)
        .args(["--max-record-bytes", &MAX_RECORD_BYTES.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run walctl");
    let started = Instant::now();
    while child.try_wait().expect("wait for walctl").is_none() {
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("walctl {args:?} did not exit within {HANG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("walctl output")
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// Overlapping segments
// ---------------------------------------------------------------------------------------

/// Records 1..=100 in segment 1, and beside it a segment named 50 holding only a header
/// (not marked as a rewrite). Returns segment 1's path and the offset of its frame of LSN
/// 50, where the overlap starts.
fn overlapping_log(dir: &Path) -> (PathBuf, u64) {
    let seg1 = write_log(dir, 100);
    fs::write(dir.join(segment_name(50)), SegmentHeader::encode(50)).unwrap();
    let frame_50 = SEGMENT_HEADER_BYTES as u64
        + (1..50)
            .map(|lsn| (FRAME_HEADER_BYTES + payload(lsn).len()) as u64)
            .sum::<u64>();
    (seg1, frame_50)
}

fn assert_overlap_corruption(e: &WalError, seg1: &Path, frame_50: u64) {
    match e {
        WalError::Corruption {
            segment, offset, ..
        } => {
            assert_eq!(segment, seg1, "{e}");
            assert_eq!(*offset, frame_50, "{e}");
        }
        other => panic!("expected corruption in segment 1 at LSN 50's frame, got {other:?}"),
    }
}

#[test]
fn reader_reports_a_segment_overlapping_the_one_before_it_as_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg1, frame_50) = overlapping_log(tmp.path());
    let (lsns, err) = read_log(tmp.path());
    assert_eq!(
        lsns,
        (1..50).collect::<Vec<_>>(),
        "records before the overlap"
    );
    let err = err.expect("the reader must not end quietly at LSN 49: records 50..=100 exist");
    assert_overlap_corruption(&err, &seg1, frame_50);
}

#[test]
fn walctl_reports_a_segment_overlapping_the_one_before_it_as_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, frame_50) = overlapping_log(tmp.path());
    for cmd in ["verify", "dump", "stat"] {
        let out = walctl(&[cmd], tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "walctl {cmd}: {stderr}");
        assert!(
            stderr.contains(&segment_name(1)) && stderr.contains(&format!("offset {frame_50}")),
            "walctl {cmd} names segment 1 and the offset: {stderr}"
        );
    }
}

#[test]
fn wal_open_refuses_a_segment_overlapping_the_one_before_it_and_gives_out_no_lsn_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg1, frame_50) = overlapping_log(tmp.path());
    let seg1_bytes = fs::read(&seg1).unwrap();
    let err = wal_open(tmp.path(), config).expect_err("Wal::open must refuse the overlap");
    assert_overlap_corruption(&err, &seg1, frame_50);
    // Refused, nothing changed: no append could take LSN 50 again.
    assert_eq!(fs::read(&seg1).unwrap(), seg1_bytes);
    assert_eq!(
        segment_names(tmp.path()),
        [segment_name(1), segment_name(50)]
    );

    // Salvage is explicit, and says what it skipped.
    let opts = LogOptions {
        recovery_policy: RecoveryPolicy::SkipToLastGood,
        ..options()
    };
    let (_, outcome) = LogWriter::open(tmp.path(), opts).unwrap();
    assert_overlap_corruption(
        outcome
            .salvaged_from
            .as_ref()
            .expect("salvage reports the overlap"),
        &seg1,
        frame_50,
    );
    assert_eq!(outcome.next_lsn, Lsn(50));
}

#[test]
fn segment_header_flags_this_build_does_not_know_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let seg1 = write_log(tmp.path(), 10);
    let mut bytes = fs::read(&seg1).unwrap();
    bytes[..SEGMENT_HEADER_BYTES].copy_from_slice(&SegmentHeader::encode_with_flags(1, 1 << 7));
    fs::write(&seg1, &bytes).unwrap();
    let is_unknown_flags = |e: &WalError| {
        matches!(e, WalError::UnknownSegmentFlags { path, flags, .. }
            if path == &seg1 && *flags == 1 << 7)
    };

    let (lsns, err) = read_log(tmp.path());
    assert!(lsns.is_empty());
    let err = err.expect("reader refuses the header");
    assert!(is_unknown_flags(&err), "reader: {err:?}");
    let err = wal_open(tmp.path(), config).expect_err("Wal::open refuses the header");
    assert!(is_unknown_flags(&err), "Wal::open: {err:?}");
    let out = walctl(&["verify"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flags"));
}

// ---------------------------------------------------------------------------------------
// Files named like segments that are not regular files
// ---------------------------------------------------------------------------------------

/// A log of records 1..=10 in segment 1, and in segment 11's place what `make` makes.
fn log_with_next_segment(dir: &Path, make: impl FnOnce(&Path)) -> PathBuf {
    write_log(dir, 10);
    let next = dir.join(segment_name(11));
    make(&next);
    next
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
}

/// Each opener, on a log whose segment 11 is `make`'s file, returns `NotAFile` naming it
/// with `kind`, within [`HANG`].
fn assert_refused_everywhere(make: impl Fn(&Path), kind: FileKind) {
    let tmp = tempfile::tempdir().unwrap();
    let bad = log_with_next_segment(tmp.path(), make);
    let is_refused = |e: &WalError| matches!(e, WalError::NotAFile { path, kind: k } if path == &bad && *k == kind);

    let (lsns, err) = read_log(tmp.path());
    let err = err.expect("the reader refuses the file");
    assert!(is_refused(&err), "reader: {err:?}");
    assert_eq!(lsns, (1..=10).collect::<Vec<_>>(), "records before it");

    let err = wal_open(tmp.path(), config).expect_err("Wal::open refuses the file");
    assert!(is_refused(&err), "Wal::open: {err:?}");

    for cmd in ["verify", "dump", "stat"] {
        let out = walctl(&[cmd], tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "walctl {cmd}: {stderr}");
        assert!(
            stderr.contains(&segment_name(11)) && stderr.contains("not a regular file"),
            "walctl {cmd}: {stderr}"
        );
    }
    // Refused, not removed or replaced.
    assert!(fs::symlink_metadata(&bad).is_ok());
}

#[test]
fn fifo_named_like_a_segment_is_refused_not_hung() {
    assert_refused_everywhere(mkfifo, FileKind::Fifo);
}

#[test]
fn symlink_named_like_a_segment_is_refused_even_to_a_valid_segment() {
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join(segment_name(11));
    // A valid, empty segment 11: followed, the log would read as clean.
    fs::write(&target, SegmentHeader::encode(11)).unwrap();
    assert_refused_everywhere(
        |p| std::os::unix::fs::symlink(&target, p).unwrap(),
        FileKind::Symlink,
    );
}

// ---------------------------------------------------------------------------------------
// LSNs out of range (CRC-valid files)
// ---------------------------------------------------------------------------------------

/// A log of one segment at `first` holding `frames` (each a transaction of that many
/// one-byte entries, or a record for 1), every CRC valid; no `META`, no `KEEPS_META`.
fn crafted_log(dir: &Path, first: u64, frames: &[(u64, usize)]) -> PathBuf {
    use actix_wal::format::frame::{encode_record, encode_transaction};
    let mut bytes = SegmentHeader::encode(first).to_vec();
    for &(lsn, count) in frames {
        match count {
            1 => encode_record(&mut bytes, lsn, 0, b"x"),
            n => encode_transaction(&mut bytes, lsn, 0, &vec![b"a".to_vec(); n]),
        }
    }
    let path = dir.join(segment_name(first));
    fs::write(&path, bytes).unwrap();
    path
}

/// A crafted log: what it holds, its segment's first LSN, its frames (LSN, records).
type Crafted = (&'static str, u64, &'static [(u64, usize)]);

/// LSNs are `1..=2^63-1`: a segment named for an LSN outside that range, or a frame whose
/// LSNs reach past it, is corruption naming the file, refused by the reader, `LogWriter`,
/// `Wal::open` under every policy (changing nothing) and `walctl verify` (exit 1). They
/// overflowed `lsn + count` (a panic in debug builds; a wrap to LSN 0 or 1 in release),
/// and a segment at LSN 0 was read.
#[test]
fn lsns_outside_their_range_are_corruption_under_every_policy() {
    const MAX: u64 = actix_wal::format::MAX_LSN;
    let cases: [Crafted; 6] = [
        ("a record at u64::MAX", u64::MAX, &[(u64::MAX, 1)]),
        (
            "a transaction across u64::MAX",
            u64::MAX - 1,
            &[(u64::MAX - 1, 3)],
        ),
        (
            "a record after u64::MAX",
            u64::MAX,
            &[(u64::MAX, 1), (0, 1)],
        ),
        ("a segment at LSN 0", 0, &[(0, 1), (1, 1)]),
        ("a transaction past 2^63-1", MAX - 1, &[(MAX - 1, 3)]),
        ("a record past 2^63-1", MAX, &[(MAX, 1), (MAX + 1, 1)]),
    ];
    for (what, first, frames) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let seg = crafted_log(dir, first, frames);
        let before = fs::read(&seg).unwrap();
        let names = segment_names(dir);
        let is_ours =
            |e: &WalError| matches!(e, WalError::Corruption { segment, .. } if segment == &seg);

        let (lsns, err) = read_log(dir);
        assert!(
            lsns.iter().all(|&l| (1..=MAX).contains(&l)),
            "{what}: read {lsns:?}"
        );
        let err = err.unwrap_or_else(|| panic!("{what}: the reader read {lsns:?}"));
        assert!(is_ours(&err), "{what}: reader: {err:?}");

        let d = dir.to_path_buf();
        let writer = promptly("LogWriter::open", move || {
            LogWriter::open(&d, options()).map(|(_, outcome)| outcome.next_lsn)
        });
        match writer {
            Err(e) => assert!(is_ours(&e), "{what}: LogWriter::open: {e:?}"),
            Ok(next) => panic!("{what}: LogWriter::open opened, next LSN {next:?}"),
        }
        for policy in [
            RecoveryPolicy::TolerateTornTail,
            RecoveryPolicy::AbsoluteConsistency,
            RecoveryPolicy::SkipToLastGood,
        ] {
            let d = dir.to_path_buf();
            let opened = promptly("Wal::open", move || {
                actix::System::new().block_on(async move {
                    let wal = Wal::open(&d, config().recovery_policy(policy)).await?;
                    let next = wal.recovery_report().next_lsn;
                    wal.shutdown().await?;
                    Ok::<_, WalError>(next)
                })
            });
            match opened {
                Err(e) => assert!(is_ours(&e), "{what}, {policy:?}: Wal::open: {e:?}"),
                Ok(next) => panic!("{what}, {policy:?}: Wal::open opened, next LSN {next:?}"),
            }
            assert_eq!(fs::read(&seg).unwrap(), before, "{what}, {policy:?}");
            assert_eq!(segment_names(dir), names, "{what}, {policy:?}");
        }
        let out = walctl(&["verify"], dir);
        assert_eq!(out.status.code(), Some(1), "{what}: walctl verify: {out:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Names the log owns beside its segments, not regular files
// ---------------------------------------------------------------------------------------

/// A log of records 1..=10, and in `name`'s place what `make` makes; every opener refuses
/// it with `NotAFile` naming it, and nothing in the directory is changed. The reader and
/// `walctl` used to skip such a file and read the log as clean, while `Wal::open` failed
/// removing it (`Io { op: "remove", IsADirectory }`), after rebuilding the newest segment
/// first when the name was `POISONED`.
fn assert_leftover_refused(name: &str, make: impl Fn(&Path), kind: FileKind) {
    let tmp = tempfile::tempdir().unwrap();
    let segment = write_log(tmp.path(), 10);
    let bad = tmp.path().join(name);
    // `META.reserve` is there already, a regular file: replaced.
    let _ = fs::remove_file(&bad);
    make(&bad);
    let names_before = segment_names(tmp.path());
    let bytes_before = fs::read(&segment).unwrap();
    let inode_before = fs::metadata(&segment).unwrap().ino();
    let is_refused = |e: &WalError| matches!(e, WalError::NotAFile { path, kind: k } if path == &bad && *k == kind);

    let (_, err) = read_log(tmp.path());
    let err = err.unwrap_or_else(|| panic!("{name}: the reader read the log as clean"));
    assert!(is_refused(&err), "{name}: reader: {err:?}");

    let err = wal_open(tmp.path(), config).expect_err("Wal::open refuses the file");
    assert!(is_refused(&err), "{name}: Wal::open: {err:?}");

    let out = walctl(&["verify"], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: walctl verify: {stderr}"
    );
    assert!(
        stderr.contains(name) && stderr.contains("not a regular file"),
        "{name}: walctl verify: {stderr}"
    );
    // Refused, and nothing changed: not removed, no segment rebuilt or renamed.
    assert!(fs::symlink_metadata(&bad).is_ok(), "{name} removed");
    assert_eq!(segment_names(tmp.path()), names_before, "{name}");
    assert_eq!(
        fs::read(&segment).unwrap(),
        bytes_before,
        "{name}: segment changed"
    );
    let inode = fs::metadata(&segment).unwrap().ino();
    assert_eq!(inode, inode_before, "{name}: segment replaced");
}

fn mkdir(path: &Path) {
    fs::create_dir(path).unwrap();
}

#[test]
fn leftover_names_that_are_not_regular_files_are_refused_and_nothing_is_changed() {
    let spare = "spare-00000000000000000070.wal.tmp";
    assert_leftover_refused(spare, mkdir, FileKind::Directory);
    assert_leftover_refused(spare, mkfifo, FileKind::Fifo);
    assert_leftover_refused("00000000000000000099.wal.tmp", mkdir, FileKind::Directory);
    assert_leftover_refused("META.tmp", mkdir, FileKind::Directory);
    assert_leftover_refused("META.reserve", mkdir, FileKind::Directory);
    assert_leftover_refused("POISONED", mkdir, FileKind::Directory);
    // A symbolic link to a written spare that continues the log: never followed.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join(spare);
    fs::write(&target, SegmentHeader::encode(11)).unwrap();
    assert_leftover_refused(
        spare,
        |p| std::os::unix::fs::symlink(&target, p).unwrap(),
        FileKind::Symlink,
    );
}
