//! The `walctl` tool, run as a process, on where a log starts and on `META`: `verify` and
//! `stat` say where the log starts and why (`META`'s first LSN after a checkpoint, not the
//! first segment's name); `walctl meta` shows both copies of `META` and the slot value in
//! force (a newer one in the log); `walctl repair-meta` repairs a damaged copy.

#[path = "common/walctl.rs"]
mod walctl;

use actix_wal::files::segment_name;
use actix_wal::{LogWriter, Lsn};
use std::fs;
use walctl::*;

/// Issue 15, item 3: a log whose first segment is gone looks like a checkpointed one, so
/// `verify` says where the log starts and the two reasons it may start there.
#[test]
fn verify_says_where_the_log_starts_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    let o = walctl(&["verify"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let line = format!(
        "start: log starts at LSN 1: the first segment file is {}, the beginning of the log",
        segment_name(1)
    );
    assert!(stdout(&o).lines().any(|l| l == line), "{}", stdout(&o));

    let (mut log, _) = LogWriter::open(dir, options()).unwrap();
    assert!(log.truncate_before(Lsn(40)).unwrap() > 0);
    drop(log);
    let first = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|n| actix_wal::files::parse_segment_name(&n))
        .min()
        .unwrap();
    assert!(first > 1 && first <= 40);
    let o = walctl(&["verify"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    // Where the log starts is META's first LSN (issue 20, item 10), not the first
    // segment's name.
    let line = format!(
        "start: log starts at LSN 40 (META's first LSN: records below it were removed by \
         truncate_before); the first segment file is {}, from LSN {first}",
        segment_name(first)
    );
    let out = stdout(&o);
    assert!(out.lines().any(|l| l == line), "{out}");
    // The first record shown is the checkpoint persisted in META (issue 11): records of
    // the kept segment below it are hidden.
    assert!(out.lines().any(|l| l == "first lsn: 40"), "{out}");
}

/// Issue 20, item 10: on a log checkpointed inside its first segment, `verify` and `stat`
/// say the log starts where `META` says, not at the first segment's name.
#[test]
fn verify_and_stat_take_where_the_log_starts_from_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    let (mut log, _) = LogWriter::open(dir, options()).unwrap();
    log.truncate_before(Lsn(12)).unwrap();
    drop(log);
    assert!(dir.join(segment_name(1)).exists());
    let o = walctl(&["verify"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let line = format!(
        "start: log starts at LSN 12 (META's first LSN: records below it were removed by \
         truncate_before); the first segment file is {}, from LSN 1",
        segment_name(1)
    );
    assert!(out.lines().any(|l| l == line), "{out}");
    assert!(!out.contains("log starts at LSN 1:"), "{out}");
    let o = walctl(&["stat"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l == "log starts at: 12"), "{out}");
}

/// Issue 20, item 5: `walctl meta` shows both copies of `META`; `walctl repair-meta`
/// writes a damaged copy back from the good one, and refuses to invent a slot when
/// neither is good unless told there was none.
#[test]
fn walctl_meta_shows_the_copies_and_repair_meta_repairs_them() {
    use actix_wal::files::{META_COPY_FILE, META_FILE};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    let (mut log, _) = LogWriter::open(dir, options()).unwrap();
    log.truncate_before(Lsn(12)).unwrap();
    drop(log);
    let o = walctl(&["meta"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "first lsn: 12",
        "intent: none",
        "slot: none",
        "META: ok, seq ",
        "META.copy: ok, seq ",
    ] {
        assert!(out.contains(needle), "{needle:?} not in {out}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("newest segment: ")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("seq: ")), "{out}");

    // One copy damaged: `meta` says which, exits 1; `repair-meta` writes it back.
    let good = fs::read(dir.join(META_FILE)).unwrap();
    fs::write(dir.join(META_COPY_FILE), b"garbage").unwrap();
    let o = walctl(&["meta"], dir);
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    assert!(stdout(&o).contains("META.copy: damaged"), "{}", stdout(&o));
    assert!(stdout(&o).contains("first lsn: 12"), "{}", stdout(&o));
    let o = walctl(&["repair-meta"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(
        fs::read(dir.join(META_COPY_FILE)).unwrap(),
        fs::read(dir.join(META_FILE)).unwrap()
    );
    let o = walctl(&["meta"], dir);
    assert_eq!(o.status.code(), Some(0), "stdout: {}", stdout(&o));
    let _ = good;

    // Both gone: refused (the slot cannot be known), unless told there was none.
    fs::remove_file(dir.join(META_FILE)).unwrap();
    fs::write(dir.join(META_COPY_FILE), b"garbage").unwrap();
    let before = snapshot(dir);
    let o = walctl(&["repair-meta"], dir);
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    assert_one_line_error(&o, &["META", "--without-slot"]);
    assert_eq!(snapshot(dir), before);
    let o = walctl(&["repair-meta", "--without-slot"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let o = walctl(&["meta"], dir);
    assert_eq!(o.status.code(), Some(0), "stdout: {}", stdout(&o));
    let out = stdout(&o);
    let first = actix_wal::files::list_segments(&actix_wal::storage::FsStorage, dir)
        .unwrap()
        .0[0]
        .first_lsn;
    assert!(out.contains(&format!("first lsn: {first}")), "{out}");
    assert!(out.contains("slot: none"), "{out}");
}

/// Issue 23, item 4: with slot values in the log (slot frames), `walctl meta` names the
/// value in force: the log's newer one, not `META`'s older one.
#[test]
fn walctl_meta_shows_a_newer_slot_value_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let d = dir.clone();
    actix::System::new().block_on(async move {
        let wal = actix_wal::Wal::open(&d, actix_wal::WalConfig::default())
            .await
            .unwrap();
        wal.set_meta(b"v1".to_vec()).await.unwrap();
        wal.set_meta(b"the value in force".to_vec()).await.unwrap();
        wal.shutdown().await.unwrap();
    });
    let o = walctl(&["meta"], &dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "slot: 2 bytes",
        "slot generation: 1",
        "slot in the log: 18 bytes, generation 2 (the value in force)",
    ] {
        assert!(out.contains(needle), "{needle:?} not in {out}");
    }
}

/// `repair-meta --without-slot` rebuilds `META` with no slot: the next open must not take
/// a slot value back from the slot frames `set_meta` wrote into the log. Those frames may
/// be older than the value in force, which was lost with `META` (a rewind that cut the
/// newest frame leaves the value only in `META`): the repair's "no slot" used to become
/// the log's newest surviving frame at the next open, an older vote for a Raft store.
#[test]
fn repair_meta_without_slot_leaves_no_slot_for_the_next_open() {
    use actix_wal::files::{META_COPY_FILE, META_FILE};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // Opens the log, takes the slot it opens with, sets `then` if given, shuts down.
    let open_set = |then: Option<&'static [u8]>| {
        let d = dir.clone();
        actix::System::new().block_on(async move {
            let wal = actix_wal::Wal::open(&d, actix_wal::WalConfig::default())
                .await
                .unwrap();
            let slot = wal.meta();
            if let Some(value) = then {
                wal.append(b"a record".to_vec()).await.unwrap();
                wal.set_meta(value.to_vec()).await.unwrap();
            }
            wal.shutdown().await.unwrap();
            slot
        })
    };
    open_set(Some(b"vote 1"));
    open_set(Some(b"vote 2"));
    fs::remove_file(dir.join(META_FILE)).unwrap();
    fs::remove_file(dir.join(META_COPY_FILE)).unwrap();
    let o = walctl(&["repair-meta", "--without-slot"], &dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));

    let o = walctl(&["meta"], &dir);
    assert_eq!(o.status.code(), Some(0), "stdout: {}", stdout(&o));
    assert!(stdout(&o).contains("slot: none"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("slot in the log: none newer"),
        "{}",
        stdout(&o)
    );
    let slot = open_set(Some(b"vote 3"));
    assert_eq!(
        slot.as_deref().map(String::from_utf8_lossy),
        None,
        "the open after repair-meta --without-slot took a slot value back from the log"
    );
    // A value set after the repair is the one in force, after a reopen too.
    assert_eq!(open_set(None).as_deref(), Some(&b"vote 3"[..]));
}

#[test]
fn repair_meta_on_two_whole_copies_under_one_seq_says_so_and_how_to_choose() {
    // What a build from before META.copy leaves after a crash between this build's two
    // writes: it reads META alone (the older value), and its own replace writes META
    // under the seq META.copy already has. Both copies whole, one seq, two values.
    use actix_wal::files::{read_meta_copy, META_COPY_FILE, META_FILE};
    use actix_wal::storage::FsStorage;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    let (mut log, _) = LogWriter::open(dir, options()).unwrap();
    log.truncate_before(Lsn(12)).unwrap();
    drop(log);
    let mut other = read_meta_copy(&FsStorage, &dir.join(META_FILE))
        .unwrap()
        .unwrap();
    other.first_lsn = 1;
    other.checkpoint_lsn = 1;
    fs::write(dir.join(META_FILE), other.encode(u64::MAX).unwrap()).unwrap();
    let o = walctl(&["repair-meta"], dir);
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    let err = stderr(&o);
    assert!(
        !err.contains("no whole copy of META is left"),
        "both copies are whole: {err}"
    );
    for needle in ["both copies of META are whole", "same seq", "cp "] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // What it advises works: the log opens with the value kept.
    fs::copy(dir.join(META_FILE), dir.join(META_COPY_FILE)).unwrap();
    let o = walctl(&["meta"], dir);
    assert_eq!(o.status.code(), Some(0), "stdout: {}", stdout(&o));
    assert!(stdout(&o).contains("first lsn: 1"), "{}", stdout(&o));
    LogWriter::open(dir, options()).expect("the log opens");
}
