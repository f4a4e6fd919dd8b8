//! Reading a segment of the largest size holds a window of it, not the segment (issue 15,
//! item 7): the reader (what `walctl` runs) and recovery, including the rebuild of a
//! poisoned log's last segment, which copies its frames, stay within a bound of peak memory
//! far below the 1 GiB segment they read.
//!
//! Peak memory is the process's `VmHWM` (Linux), so the reading runs in a child process (this
//! test binary again, running only `child_reads_a_big_segment`) that starts small.

use actix_wal::files::segment_name;
use actix_wal::files::MAX_SEGMENT_BYTES;
use actix_wal::format::frame::encode_record;
use actix_wal::format::SegmentHeader;
use actix_wal::storage::default_storage;
use actix_wal::{LogDir, LogReader, RecoveryOptions, RecoveryPolicy};
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Where the child finds the log the parent wrote.
const CHILD_DIR_ENV: &str = "ACTIX_WAL_BIG_SEGMENT_DIR";
/// Records of 1 MiB in the segment: 96 MiB of frames, then zeros to 1 GiB.
const RECORDS: u64 = 96;
const RECORD_BYTES: usize = 1 << 20;
/// Growth of peak memory allowed while reading: the 4 MiB window, a record or two, and
/// slack; the whole segment is 1024 MiB.
const BOUND_KIB: u64 = 64 * 1024;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// A 1 GiB segment (sparse: a hole after the frames) holding `RECORDS` records of 1 MiB.
fn write_big_segment(dir: &Path) {
    let path = dir.join(segment_name(1));
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&SegmentHeader::encode(1)).unwrap();
    let payload = vec![0x5Au8; RECORD_BYTES];
    let mut frame = Vec::with_capacity(RECORD_BYTES + 64);
    for lsn in 1..=RECORDS {
        frame.clear();
        encode_record(&mut frame, lsn, 0, &payload);
        file.write_all(&frame).unwrap();
    }
    file.set_len(MAX_SEGMENT_BYTES).unwrap();
}

#[test]
fn reading_a_1_gib_segment_holds_a_window_not_the_segment() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("no /proc/self/status: peak memory cannot be read here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write_big_segment(tmp.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_reads_a_big_segment",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, tmp.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run:\n{text}"
    );
}

#[test]
#[ignore = "run by reading_a_1_gib_segment_holds_a_window_not_the_segment, in a child process"]
fn child_reads_a_big_segment() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let start = vm_hwm_kib();

    let mut records = 0;
    for r in LogReader::open(dir).unwrap() {
        assert_eq!(r.unwrap().payload.len(), RECORD_BYTES);
        records += 1;
    }
    assert_eq!(records, RECORDS);
    let after_reader = vm_hwm_kib();

    // Recovery of a log poisoned by failed fsyncs: the scan, then the rebuild of the last
    // segment from its frames (96 MiB copied under a temporary name).
    std::fs::write(dir.join("POISONED"), "test").unwrap();
    let log = LogDir::open(dir, default_storage()).unwrap();
    let opts = RecoveryOptions {
        policy: RecoveryPolicy::TolerateTornTail,
        max_record_bytes: RECORD_BYTES as u64,
        preallocate_bytes: 0,
    };
    let out = log.recover(&opts).unwrap();
    assert_eq!(out.records, RECORDS);
    assert!(!dir.join("POISONED").exists(), "the rebuild ran");
    let after_recovery = vm_hwm_kib();

    println!(
        "peak memory (VmHWM): {start} KiB at start, {after_reader} KiB after reading the 1 GiB \
         segment, {after_recovery} KiB after recovering and rebuilding it"
    );
    assert!(
        after_recovery - start < BOUND_KIB,
        "peak memory grew by {} KiB reading a 1 GiB segment (bound {BOUND_KIB} KiB)",
        after_recovery - start
    );
}
