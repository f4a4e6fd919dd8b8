//! Spare segments (issue 14, item 1): the next segment is prepared ahead under a name
//! that is not a segment name, and a rollover renames it into place after its header and
//! frames are durable. A spare is never read as data: readers and `walctl` skip it,
//! recovery removes it. (Crashes at every step of preparing and using one are in
//! tests/torture.rs, which also shows a spare renamed before its fsync is caught.)

use actix_wal::log::spare::is_spare_name;
use actix_wal::*;
use std::path::Path;
use std::process::Command;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn small() -> LogOptions {
    LogOptions {
        segment_size_bytes: 4096,
        max_record_bytes: 1024,
        ..LogOptions::default()
    }
}

fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    LogReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect()
}

#[test]
fn rollovers_use_prepared_spares_and_readers_and_recovery_never_read_one() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = LogWriter::open(d.path(), small()).unwrap();
    let mut written = Vec::new();
    for i in 0..300u32 {
        let p = format!("record {i:04} {}", "x".repeat(40)).into_bytes();
        w.append(&p).unwrap();
        written.push(p);
        if i % 3 == 2 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
    let open = names(d.path());
    let spares: Vec<&String> = open.iter().filter(|n| is_spare_name(n)).collect();
    let segments = open.iter().filter(|n| n.ends_with(".wal")).count();
    // Many rollovers, one spare waiting for the next, no creation left half done.
    assert!(segments > 5, "{open:?}");
    assert_eq!(spares.len(), 1, "one spare prepared ahead: {open:?}");
    assert!(
        open.iter()
            .all(|n| !n.ends_with(".wal.tmp") || is_spare_name(n)),
        "{open:?}"
    );
    // While the writer is open: the reader skips the spare (it is preallocated zeros).
    assert_eq!(read_all(d.path()), written);
    let spare = d.path().join(spares[0]);
    drop(w);
    // Dropping a writer removes its unused spare.
    assert!(!spare.exists(), "{:?}", names(d.path()));
    // One left by a crash, full of bytes that look like anything, is still not read.
    std::fs::write(&spare, vec![0xA5u8; 4096]).unwrap();
    assert_eq!(read_all(d.path()), written);
    let out = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(["verify", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("300"),
        "walctl verify counts 300 records: {text}"
    );
    // Recovery removes it and says so; the log is whole.
    let (w, outcome) = LogWriter::open(d.path(), small()).unwrap();
    assert!(outcome.removed.contains(&spare), "{:?}", outcome.removed);
    assert!(!spare.exists());
    assert_eq!(outcome.next_lsn, Lsn(301));
    drop(w);
    assert_eq!(read_all(d.path()), written);
}

/// The actor pipeline prepares spares too, on the flusher's helper thread, which also
/// raises `META`'s newest-segment LSN after the acknowledgement; the log reads back whole
/// after many rollovers and a reopen, with N at its newest segment.
#[actix::test]
async fn the_flusher_rolls_over_into_spares() {
    let d = tempfile::tempdir().unwrap();
    let cfg = WalConfig::default().segment_size_bytes(4096);
    let wal = Wal::open(d.path(), cfg.clone()).await.unwrap();
    let mut written = Vec::new();
    for i in 0..200u32 {
        let p = format!("r{i:04}{}", "y".repeat(60)).into_bytes();
        wal.append(p.clone()).await.unwrap();
        written.push(p);
    }
    let open = names(d.path());
    assert!(open.iter().filter(|n| n.ends_with(".wal")).count() > 3);
    assert!(
        open.iter().filter(|n| is_spare_name(n)).count() <= 1,
        "{open:?}"
    );
    wal.shutdown().await.unwrap();
    // The flusher is joined by `shutdown`, its writer dropped: the unused spare is
    // removed, and the helper's raise of N (off the commit path) has landed.
    let after = names(d.path());
    assert!(after.iter().all(|n| !is_spare_name(n)), "{after:?}");
    let newest = after
        .iter()
        .filter_map(|n| actix_wal::log::segment::parse_segment_name(n))
        .max()
        .unwrap();
    let meta = actix_wal::log::read_meta(&actix_wal::storage::FsStorage, d.path())
        .unwrap()
        .unwrap();
    assert_eq!(meta.newest_lsn, newest);
    assert_eq!(read_all(d.path()), written);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert!(wal.recovery_report().removed.is_empty());
    assert_eq!(wal.recovery_report().next_lsn, Lsn(201));
    wal.shutdown().await.unwrap();
}
