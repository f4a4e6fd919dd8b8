//! Offline readers see the log as recovery will (issue 20, item 7): `LogReader`,
//! `LogReader::open_from` and `walctl` apply recovery's rules read-only — a written spare
//! recovery adopts is read, a rewind or reset a crash left unfinished in `META` is read as
//! done — so what they read before `Wal::open` (or `LogWriter::open`) runs is what the
//! opened log holds. Each case is a crash image built by hand on the real file system;
//! tests/torture.rs (`reader-disagrees`) and tests/rewind_crash.rs compare the two views
//! on every crash image the simulator makes.

use actix_wal::format::meta::MetaIntent;
use actix_wal::LogDir;
use actix_wal::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn options() -> LogOptions {
    LogOptions {
        segment_size_bytes: 4096,
        max_record_bytes: 1024,
        ..LogOptions::default()
    }
}

/// `n` records through a `LogWriter` of 4 KiB segments (many rollovers), closed.
fn write(dir: &Path, n: u32) -> Vec<Vec<u8>> {
    let (mut w, _) = LogWriter::open(dir, options()).unwrap();
    let mut written = Vec::new();
    for i in 0..n {
        let p = format!("record {i:04} {}", "x".repeat(40)).into_bytes();
        w.append(&p).unwrap();
        written.push(p);
        if i % 3 == 2 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
    drop(w);
    written
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(actix_wal::files::parse_segment_name)
                .is_some()
        })
        .collect();
    v.sort();
    v
}

/// `(LSN, payload)` of every record `LogReader::open_from(dir, from)` yields.
fn read_from(dir: &Path, from: u64) -> Vec<(u64, Vec<u8>)> {
    LogReader::open_from(dir, Lsn(from))
        .unwrap()
        .map(|r| r.map(|r| (r.lsn.0, r.payload)).unwrap())
        .collect()
}

fn walctl(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

/// `walctl verify`: exits 0 and prints `records: n`; returns its output.
fn verify_counts(dir: &Path, n: usize) -> String {
    let out = walctl(&["verify"], dir);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "walctl verify: {out:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("records: {n} "))),
        "walctl verify must count {n} records:\n{text}"
    );
    text
}

/// Killed after a rollover batch was written into a spare and before its rename was
/// durable: the newest segment is back under its spare name. Recovery adopts it; the
/// readers read it too, so an application rebuilding its state from them before opening
/// does not write its records again.
#[test]
fn readers_read_the_written_spare_recovery_adopts() {
    let d = tempfile::tempdir().unwrap();
    let written = write(d.path(), 300);
    let newest = segments(d.path()).pop().unwrap();
    let spare = d.path().join(actix_wal::files::spare_name(42));
    std::fs::rename(&newest, &spare).unwrap();

    let before = read_from(d.path(), 0);
    assert_eq!(
        before.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        written
    );
    assert_eq!(
        read_from(d.path(), 295),
        before[294..].to_vec(),
        "open_from reads into the adopted spare"
    );
    let r = LogReader::open(d.path()).unwrap();
    assert_eq!(r.adopted_spare().map(|a| &a.spare), Some(&spare));
    assert_eq!(r.segments().last(), Some(&spare));
    let text = verify_counts(d.path(), 300);
    assert!(text.contains("adopts the written spare"), "{text}");
    let out = walctl(&["dump", "--json"], d.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 300);

    let (w, outcome) = LogWriter::open(d.path(), options()).unwrap();
    assert_eq!(outcome.adopted_spare.as_ref(), Some(&newest));
    assert_eq!(outcome.next_lsn, Lsn(301));
    drop(w);
    assert_eq!(read_from(d.path(), 0), before);
}

/// Writes `META` with an intent as step 1 of a rewind or reset does (first LSN and
/// newest-segment LSN set as that step sets them).
fn leave_intent(dir: &Path, intent: MetaIntent) {
    let log = LogDir::open(dir, actix_wal::storage::default_storage()).unwrap();
    log.reload_meta().unwrap().meta.expect("the log has a META");
    // N' (docs/format.md): the segment holding the rewind's last record.
    let kept_newest = |x: u64| {
        segments(dir)
            .iter()
            .filter_map(|p| actix_wal::files::parse_segment_name(p.file_name()?.to_str()?))
            .filter(|&first| first <= x)
            .max()
            .unwrap_or(0)
    };
    log.update_meta(|m| {
        m.intent = intent;
        match intent {
            MetaIntent::Reset(n) => {
                m.first_lsn = n;
                m.newest_lsn = 0;
            }
            MetaIntent::TruncateAfter(x) => m.newest_lsn = m.newest_lsn.min(kept_newest(x)),
            MetaIntent::None => {}
        }
    })
    .unwrap();
}

/// Killed between a reset's removals and its new segment: only `META` (with the reset's
/// intent) is left. Recovery completes the reset and opens an empty log at its LSN; the
/// readers read that empty log, not "no log".
#[test]
fn readers_read_a_reset_a_crash_interrupted_as_done() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 120);
    leave_intent(d.path(), MetaIntent::Reset(500));
    for s in segments(d.path()) {
        std::fs::remove_file(s).unwrap();
    }

    let r = LogReader::open(d.path()).unwrap();
    assert_eq!(r.pending_intent(), MetaIntent::Reset(500));
    assert_eq!(r.start_lsn(), Lsn(500));
    assert_eq!(r.count(), 0);
    assert!(read_from(d.path(), 500).is_empty());
    let text = verify_counts(d.path(), 0);
    assert!(text.contains("completes a reset"), "{text}");

    let (w, outcome) = LogWriter::open(d.path(), options()).unwrap();
    assert_eq!(outcome.next_lsn, Lsn(500));
    assert_eq!(outcome.records, 0);
    drop(w);
    assert!(read_from(d.path(), 0).is_empty());
}

/// The same reset killed before its removals (every segment still there), and a rewind
/// killed before its removals: the readers read the log as completed.
#[test]
fn readers_read_a_rewind_or_reset_a_crash_interrupted_before_its_removals_as_done() {
    let d = tempfile::tempdir().unwrap();
    let written = write(d.path(), 300);
    leave_intent(d.path(), MetaIntent::TruncateAfter(150));
    let before = read_from(d.path(), 0);
    assert_eq!(
        before.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        written[..150].to_vec()
    );
    assert_eq!(read_from(d.path(), 140).len(), 11);
    verify_counts(d.path(), 150);
    drop(LogWriter::open(d.path(), options()).unwrap());
    assert_eq!(read_from(d.path(), 0), before);

    leave_intent(d.path(), MetaIntent::Reset(700));
    assert!(read_from(d.path(), 0).is_empty());
    verify_counts(d.path(), 0);
    let (w, outcome) = LogWriter::open(d.path(), options()).unwrap();
    assert_eq!(outcome.next_lsn, Lsn(700));
    drop(w);
    assert!(read_from(d.path(), 0).is_empty());
}

/// A spare listed as the adopted last segment and renamed before the reader reached it (a
/// live writer's rollover, or a recovery adopting it, meanwhile) is read under its segment
/// name: the same records, no "not found".
#[test]
fn a_spare_renamed_after_the_reader_listed_it_is_read_under_its_segment_name() {
    let d = tempfile::tempdir().unwrap();
    let written = write(d.path(), 300);
    let newest = segments(d.path()).pop().unwrap();
    let spare = d.path().join(actix_wal::files::spare_name(43));
    std::fs::rename(&newest, &spare).unwrap();
    let reader = LogReader::open(d.path()).unwrap();
    assert_eq!(reader.segments().last(), Some(&spare));
    std::fs::rename(&spare, &newest).unwrap();
    let read: Vec<Vec<u8>> = reader.map(|r| r.unwrap().payload).collect();
    assert_eq!(read, written);
}

/// A log whose files break `META`'s promises, which recovery refuses as corruption: the
/// offline readers refuse it too, so `walctl verify` never calls a log sound that
/// `Wal::open` will not open. (They read every record and exited 0 before: recovery's
/// checks of `META` against the segments were left out of the read-only plan.)
#[test]
fn readers_refuse_what_recovery_refuses_against_meta() {
    for case in [
        "the newest segment deleted",
        "the first segment deleted",
        "both copies of META deleted",
    ] {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), 300);
        let segs = segments(d.path());
        assert!(segs.len() >= 3, "{segs:?}");
        match case {
            "the newest segment deleted" => std::fs::remove_file(&segs[segs.len() - 1]).unwrap(),
            "the first segment deleted" => std::fs::remove_file(&segs[0]).unwrap(),
            _ => {
                std::fs::remove_file(d.path().join(files::META_FILE)).unwrap();
                std::fs::remove_file(d.path().join(files::META_COPY_FILE)).unwrap();
            }
        }
        let opened = LogWriter::open(d.path(), options()).map(drop).unwrap_err();
        assert!(opened.is_corruption(), "{case}: recovery: {opened}");
        let read: Result<Vec<Record>, WalError> =
            LogReader::open(d.path()).and_then(|r| r.collect());
        match read {
            Err(e) => assert!(e.is_corruption(), "{case}: LogReader: {e}"),
            Ok(records) => panic!("{case}: LogReader read {} records", records.len()),
        }
        // `meta` shows `META`, which is whole in the first two cases.
        let meta = case == "both copies of META deleted";
        // `cursors` too, which reads `META` as `meta` does: it printed no cursors and a
        // checkpoint of 0, exit 0, for a log whose copies of `META` were both lost.
        let commands: &[&[&str]] = if meta {
            &[&["verify"], &["dump"], &["stat"], &["meta"], &["cursors"]]
        } else {
            &[&["verify"], &["dump"], &["stat"]]
        };
        for args in commands {
            let out = walctl(args, d.path());
            assert_eq!(
                out.status.code(),
                Some(1),
                "{case}: walctl {args:?} must say the log is damaged: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Every segment deleted, `META` whole and naming a segment that held acknowledged
/// records: recovery refuses the log as lost, and `walctl verify`, `dump` and `stat` say
/// so (exit 1), where they said "no actix-wal log" (exit 2), their answer for a wrong
/// path (found by the eighth session's probe of the docs against the tools).
/// `LogReader` keeps its documented `NoLog` for a `META` with no segment.
#[test]
fn walctl_says_a_log_whose_segments_were_all_deleted_was_lost() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 300);
    for seg in segments(d.path()) {
        std::fs::remove_file(seg).unwrap();
    }
    let opened = LogWriter::open(d.path(), options()).map(drop).unwrap_err();
    assert!(
        opened.to_string().contains("the log was lost"),
        "recovery: {opened}"
    );
    for args in [&["verify"][..], &["dump"], &["stat"]] {
        let out = walctl(args, d.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "walctl {args:?}: {stderr}");
        assert!(
            stderr.contains("the log was lost"),
            "walctl {args:?}: {stderr}"
        );
    }
}

/// A directory with no log in it: every command says so (exit 2) and leaves nothing in
/// it, `meta`, `cursors` and `repair-meta` included (they printed a new log's values and exited 0).
#[test]
fn every_command_says_there_is_no_log_in_an_empty_directory() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["verify"][..],
        &["dump"],
        &["stat"],
        &["meta"],
        &["cursors"],
        &["repair-meta"],
        &["repair-meta", "--without-slot"],
    ] {
        let out = walctl(args, d.path());
        assert_eq!(
            out.status.code(),
            Some(2),
            "walctl {args:?}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no actix-wal log"),
            "walctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Nothing left behind (`repair-meta` took the log's LOCK in a directory with no log).
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert!(left.is_empty(), "walctl {args:?} left {left:?}");
    }
}
