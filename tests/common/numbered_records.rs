//! Shared by tests/recovery.rs and recovery_segments.rs: logs of small segments written
//! through `LogWriter`, records `1..=n` whose payloads name their LSN, and the reads that
//! check them. Included with `#[path = "common/numbered_records.rs"] mod numbered_records;`.
#![allow(dead_code)]

use actix_wal::storage::default_storage;
use actix_wal::{LogOptions, LogReader, LogWriter, Lsn, Record, RecoveryPolicy, WalError};
use std::fs;
use std::path::Path;

/// Largest record of these logs.
pub const MAX_RECORD_BYTES: u64 = 256;
/// Segment size of these logs: a handful of records per segment.
pub const SEGMENT_SIZE_BYTES: u64 = 1024;

pub fn options(policy: RecoveryPolicy) -> LogOptions {
    LogOptions {
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        max_record_bytes: MAX_RECORD_BYTES,
        preallocate: true,
        recovery_policy: policy,
        ..LogOptions::default()
    }
}

/// The payload of the record with LSN `lsn`: recognisable, and of varying length.
pub fn payload(lsn: u64) -> Vec<u8> {
    let len = (lsn * 37 % 120) as usize + 1;
    let mut p = format!("record {lsn}:").into_bytes();
    p.resize(len.max(p.len()), b'a' + (lsn % 26) as u8);
    p
}

/// Writes records `1..=n` to a new log in `dir`, one write batch per `batch` records.
pub fn write_records(dir: &Path, n: u64, batch: u64, opts: LogOptions) {
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
pub fn read_log(dir: &Path) -> (Vec<Record>, Option<WalError>) {
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

pub fn lsns(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| u64::from(r.lsn)).collect()
}

pub fn assert_payloads(records: &[Record]) {
    for r in records {
        assert_eq!(
            r.payload,
            payload(u64::from(r.lsn)),
            "payload of LSN {}",
            r.lsn
        );
    }
}

pub fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}
