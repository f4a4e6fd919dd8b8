//! `META` kept in two copies (issue 20, item 5): any single damaged, cut or missing copy
//! opens with the right values (the checkpoint and the slot), says so in
//! `RecoveryReport::meta_repair`, and is written back whole; both copies damaged is
//! corruption, under every policy, and changes nothing.

use actix_wal::files::{read_meta, META_COPY_FILE, META_FILE};
use actix_wal::storage::FsStorage;
use actix_wal::{Lsn, RecoveryPolicy, RecoveryReport, Wal, WalConfig, WalError};
use std::fs;
use std::path::Path;

fn config(policy: RecoveryPolicy) -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(1024)
        .max_record_bytes(256)
        .preallocate(false)
        .recovery_policy(policy)
}

/// A log of records 1..=60 with the checkpoint at 12 and the slot `vote`.
fn write_log(dir: &Path) {
    actix::System::new().block_on(async {
        let wal = Wal::open(dir, config(RecoveryPolicy::default()))
            .await
            .unwrap();
        for i in 1..=60u64 {
            assert_eq!(wal.append(vec![i as u8; 30]).await.unwrap(), Lsn(i));
        }
        wal.set_meta(b"vote".to_vec()).await.unwrap();
        wal.truncate_before(Lsn(12)).await.unwrap();
        wal.shutdown().await.unwrap();
    });
}

fn open(dir: &Path, policy: RecoveryPolicy) -> Result<(RecoveryReport, Option<Vec<u8>>), WalError> {
    actix::System::new().block_on(async {
        let wal = Wal::open(dir, config(policy)).await?;
        let report = wal.recovery_report().clone();
        let meta = wal.meta();
        wal.shutdown().await?;
        Ok((report, meta))
    })
}

/// A way to damage one copy, with its name.
type Damage = (String, Box<dyn Fn(&Path)>);

/// The ways one copy is damaged.
fn damages(len: usize) -> Vec<Damage> {
    let mut out: Vec<Damage> = Vec::new();
    for byte in (0..len).step_by(3) {
        out.push((
            format!("bit flip in byte {byte}"),
            Box::new(move |p: &Path| {
                let mut b = fs::read(p).unwrap();
                b[byte] ^= 0x08;
                fs::write(p, b).unwrap();
            }),
        ));
    }
    for keep in [0, 30, len - 1] {
        out.push((
            format!("cut to {keep} bytes"),
            Box::new(move |p: &Path| {
                let b = fs::read(p).unwrap();
                fs::write(p, &b[..keep]).unwrap();
            }),
        ));
    }
    out.push((
        "removed".into(),
        Box::new(|p: &Path| fs::remove_file(p).unwrap()),
    ));
    out.push((
        "garbage".into(),
        Box::new(|p: &Path| fs::write(p, vec![0x5a; 300]).unwrap()),
    ));
    out
}

#[test]
fn any_single_damaged_or_missing_meta_copy_opens_with_the_right_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    let good: Vec<(String, Vec<u8>)> = [META_FILE, META_COPY_FILE]
        .iter()
        .map(|n| (n.to_string(), fs::read(dir.join(n)).unwrap_or_default()))
        .collect();
    let restore = || {
        for (n, b) in &good {
            fs::write(dir.join(n), b).unwrap();
        }
    };
    let mut checked = 0;
    for copy in [META_FILE, META_COPY_FILE] {
        let len = fs::read(dir.join(copy)).map(|b| b.len()).unwrap_or(64);
        for (what, damage) in damages(len) {
            restore();
            damage(&dir.join(copy));
            for policy in [
                RecoveryPolicy::TolerateTornTail,
                RecoveryPolicy::AbsoluteConsistency,
            ] {
                let (report, meta) = open(dir, policy)
                    .unwrap_or_else(|e| panic!("{copy} {what}, {policy:?}: open failed: {e}"));
                assert_eq!(report.first_lsn, Lsn(12), "{copy} {what}: {report:?}");
                assert_eq!(report.next_lsn, Lsn(61), "{copy} {what}: {report:?}");
                assert_eq!(meta.as_deref(), Some(&b"vote"[..]), "{copy} {what}");
                if policy == RecoveryPolicy::TolerateTornTail {
                    let said = report.meta_repair.clone().unwrap_or_else(|| {
                        panic!("{copy} {what}: the report does not say: {report:?}")
                    });
                    assert!(said.contains(copy), "{copy} {what}: {said}");
                } else {
                    // Repaired by the first open: both copies whole and equal again.
                    assert_eq!(report.meta_repair, None, "{copy} {what}");
                }
                checked += 1;
            }
            let a = fs::read(dir.join(META_FILE)).unwrap();
            let b = fs::read(dir.join(META_COPY_FILE)).unwrap();
            assert_eq!(a, b, "{copy} {what}: the copies differ after the open");
        }
    }
    assert!(checked > 40, "{checked}");
}

#[test]
fn both_copies_damaged_is_corruption_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    for copy in [META_FILE, META_COPY_FILE] {
        let p = dir.join(copy);
        let mut b = fs::read(&p).unwrap();
        b[20] ^= 1;
        fs::write(&p, b).unwrap();
    }
    let before: Vec<_> = [META_FILE, META_COPY_FILE]
        .iter()
        .map(|n| fs::read(dir.join(n)).unwrap())
        .collect();
    for policy in [
        RecoveryPolicy::TolerateTornTail,
        RecoveryPolicy::AbsoluteConsistency,
        RecoveryPolicy::SkipToLastGood,
    ] {
        let err = open(dir, policy).unwrap_err();
        assert!(err.is_corruption(), "{policy:?}: {err}");
        assert!(err.to_string().contains("META"), "{err}");
    }
    let after: Vec<_> = [META_FILE, META_COPY_FILE]
        .iter()
        .map(|n| fs::read(dir.join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
    assert!(read_meta(&FsStorage, dir).unwrap_err().is_corruption());
}

/// A log whose segments were written beside a `META` (their headers say so) and that has
/// lost both copies is corruption under every policy, not a fresh start that forgets the
/// slot and the checkpoint; nothing is changed.
#[test]
fn a_missing_meta_beside_segments_that_need_one_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    for name in ["META", "META.copy"] {
        let _ = fs::remove_file(dir.join(name));
    }
    let names = |dir: &Path| {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "LOCK")
            .collect();
        n.sort();
        n
    };
    let before = names(dir);
    for policy in [
        RecoveryPolicy::TolerateTornTail,
        RecoveryPolicy::AbsoluteConsistency,
        RecoveryPolicy::SkipToLastGood,
    ] {
        match open(dir, policy) {
            Err(e) => {
                assert!(e.is_corruption(), "{policy:?}: {e}");
                assert!(e.to_string().contains("META"), "{e}");
            }
            Ok((report, meta)) => panic!("{policy:?}: opened as {report:?}, slot {meta:?}"),
        }
        assert_eq!(names(dir), before, "{policy:?}");
    }
}

/// The way on from a lost `META`: `walctl repair-meta` refuses to invent a slot, and with
/// `--without-slot` writes a `META` the log then opens with (no slot, the first segment's
/// first LSN).
#[test]
fn repair_meta_without_slot_is_the_way_on_from_a_lost_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    for name in [META_FILE, META_COPY_FILE] {
        fs::remove_file(dir.join(name)).unwrap();
    }
    let walctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
            .args(args)
            .arg(dir)
            .output()
            .unwrap()
    };
    let o = walctl(&["repair-meta"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!dir.join(META_FILE).exists());
    let o = walctl(&["repair-meta", "--without-slot"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let (report, meta) = open(dir, RecoveryPolicy::TolerateTornTail).unwrap();
    assert_eq!(meta, None);
    assert_eq!(report.next_lsn, Lsn(61));
    assert_eq!(report.meta_repair, None, "{report:?}");
}

/// The same with the newest segment's header unreadable too (a byte flipped in it, or the
/// file a symlink to itself): the earlier segments' headers still say `KEEPS_META`, so
/// `META` is lost, under every policy (`SkipToLastGood` wrote a fresh one: checkpoint,
/// cursors and slot forgotten), and `walctl meta` and `walctl verify` say so (exit 1).
#[test]
fn a_missing_meta_is_corruption_when_the_newest_header_is_unreadable() {
    for damage in ["flipped", "symlink loop"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_log(dir);
        for name in [META_FILE, META_COPY_FILE] {
            fs::remove_file(dir.join(name)).unwrap();
        }
        let mut wals: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        wals.sort();
        assert!(wals.len() >= 2, "{wals:?}");
        let newest = wals.last().unwrap();
        if damage == "flipped" {
            let mut bytes = fs::read(newest).unwrap();
            bytes[20] ^= 0xff;
            fs::write(newest, bytes).unwrap();
        } else {
            fs::remove_file(newest).unwrap();
            std::os::unix::fs::symlink(newest, newest).unwrap();
        }
        for policy in [
            RecoveryPolicy::SkipToLastGood,
            RecoveryPolicy::TolerateTornTail,
            RecoveryPolicy::AbsoluteConsistency,
        ] {
            match open(dir, policy) {
                Err(e) => {
                    assert!(e.is_corruption(), "{damage}, {policy:?}: {e}");
                    assert!(e.to_string().contains("META"), "{damage}, {policy:?}: {e}");
                }
                Ok((report, meta)) => {
                    panic!("{damage}, {policy:?}: opened as {report:?}, slot {meta:?}")
                }
            }
            assert!(!dir.join(META_FILE).exists(), "{damage}, {policy:?}");
            assert!(!dir.join(META_COPY_FILE).exists(), "{damage}, {policy:?}");
        }
        for cmd in ["meta", "verify"] {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
                .arg(cmd)
                .arg(dir)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(1), "{damage}, walctl {cmd}: {o:?}");
        }
    }
}

/// A refused open leaves the `POISONED` marker where it was: the log's segments gone (the
/// log was lost), a `POISONED` marker beside `META` and one copy of `META` damaged (fuzzer
/// seed 201332). Recovery cleared the marker before `META`'s check refused the log, so a
/// later open no longer knew the page cache might hold bytes the disk never got.
#[test]
fn a_refused_open_keeps_the_poisoned_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    for e in fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "wal") {
            fs::remove_file(path).unwrap();
        }
    }
    fs::write(dir.join("POISONED"), b"fsync failed").unwrap();
    let mut copy = fs::read(dir.join(META_COPY_FILE)).unwrap();
    copy[20] ^= 0xff;
    fs::write(dir.join(META_COPY_FILE), copy).unwrap();
    for policy in [
        RecoveryPolicy::TolerateTornTail,
        RecoveryPolicy::AbsoluteConsistency,
    ] {
        match open(dir, policy) {
            Err(e) => assert!(e.is_corruption(), "{policy:?}: {e}"),
            Ok((report, _)) => panic!("{policy:?}: opened as {report:?}"),
        }
        assert!(
            dir.join("POISONED").exists(),
            "{policy:?}: the refused open removed POISONED"
        );
    }
}
