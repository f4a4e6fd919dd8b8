//! Shared by the `walctl` tests (tests/walctl.rs, walctl_meta.rs): a small log of 43
//! records over several segments, `walctl` run as a process on a directory, its output,
//! the directory's bytes (to check that `walctl` changed nothing), and its one-line errors.
//! Included with `#[path = "common/walctl.rs"] mod walctl;`.
#![allow(dead_code)]

use actix_wal::{LogOptions, LogWriter, Lsn};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// Small segments, so that the logs span several of them.
pub fn options() -> LogOptions {
    LogOptions {
        segment_size_bytes: 1024,
        max_record_bytes: 256,
        ..LogOptions::default()
    }
}

/// Writes 40 records (LSNs 1..=40, in batches of 4), then a transaction of three
/// entries (LSNs 41..=43).
pub fn write_log(dir: &Path) {
    let (mut log, _) = LogWriter::open(dir, options()).unwrap();
    for i in 1..=40u64 {
        log.append(format!("record {i}").as_bytes()).unwrap();
        if i % 4 == 0 {
            log.sync().unwrap();
        }
    }
    let entries: [&[u8]; 3] = [b"txn a", b"txn b", b"\x00\xffbinary\n"];
    assert_eq!(log.append_transaction(&entries).unwrap(), Lsn(41));
    log.sync().unwrap();
}

pub fn walctl(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(args)
        .arg(dir)
        .output()
        .expect("run walctl")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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

/// Asserts stderr is exactly one line, mentioning each of `needles`.
pub fn assert_one_line_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "stderr is one line: {err:?}");
    assert!(err.starts_with("walctl: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} does not mention {n:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}
