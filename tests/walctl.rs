//! The `walctl` tool, run as a process: summaries of good logs, exit codes and one-line
//! errors naming segment and offset for damaged ones, JSON lines from `dump`, and counts
//! from `stat`. It must never modify the log it reads.

mod common;
use actix_wal::files::segment_name;
use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::{LogOptions, LogReader, LogWriter, Lsn};
use common::segment_count;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// Small segments, so that the logs span several of them.
fn options() -> LogOptions {
    LogOptions {
        segment_size_bytes: 1024,
        max_record_bytes: 256,
        ..LogOptions::default()
    }
}

/// Writes 40 records (LSNs 1..=40, in batches of 4), then a transaction of three
/// entries (LSNs 41..=43).
fn write_log(dir: &Path) {
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

fn walctl(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(args)
        .arg(dir)
        .output()
        .expect("run walctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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
fn assert_one_line_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "stderr is one line: {err:?}");
    assert!(err.starts_with("walctl: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} does not mention {n:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn verify_on_a_good_log_exits_0_with_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let before = snapshot(tmp.path());
    let o = walctl(&["verify"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let segments = segment_count(tmp.path());
    assert!(segments >= 2, "the log should span segments");
    for line in [
        format!("segments: {segments}"),
        "records: 43 (1 transactions)".to_string(),
        "first lsn: 1".to_string(),
        "last lsn: 43".to_string(),
        "tail: clean".to_string(),
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    assert!(stderr(&o).is_empty());
    assert_eq!(snapshot(tmp.path()), before, "walctl modified the log");
}

#[test]
fn verify_on_a_damaged_log_exits_1_and_names_segment_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    // Damage the payload of LSN 3, in the first segment (followed by later segments).
    let victim = LogReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap())
        .find(|r| r.lsn == Lsn(3))
        .unwrap();
    let seg = dir.join(segment_name(u64::from(victim.segment_first_lsn)));
    let mut bytes = fs::read(&seg).unwrap();
    bytes[(victim.frame_offset as usize) + FRAME_HEADER_BYTES] ^= 0x01;
    fs::write(&seg, &bytes).unwrap();
    let before = snapshot(dir);

    let o = walctl(&["verify"], dir);
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    let offset = format!("offset {}", victim.frame_offset);
    assert_one_line_error(&o, &[&seg.display().to_string(), &offset, "last LSN 2"]);
    assert_eq!(snapshot(dir), before, "walctl modified the log");

    // dump prints the good records, then fails the same way.
    let o = walctl(&["dump"], dir);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).lines().count(), 2);
    assert_one_line_error(&o, &[&offset]);

    let o = walctl(&["stat"], dir);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, &[&offset]);
}

#[test]
fn verify_reports_a_torn_tail_and_strict_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_log(dir);
    let last = LogReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap())
        .last()
        .unwrap();
    let seg = dir.join(segment_name(u64::from(last.segment_first_lsn)));
    let end = last.frame_offset as usize
        + FRAME_HEADER_BYTES
        + 3 * 4
        + b"txn a".len()
        + b"txn b".len()
        + b"\x00\xffbinary\n".len();
    let mut bytes = fs::read(&seg).unwrap();
    bytes[end..end + 10].copy_from_slice(&[0xee; 10]);
    fs::write(&seg, &bytes).unwrap();

    let o = walctl(&["verify"], dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let tail = out.lines().find(|l| l.starts_with("tail: ")).unwrap();
    assert!(tail.starts_with("tail: torn"), "{tail}");
    assert!(tail.contains(&format!("offset {end}")), "{tail}");
    assert!(tail.contains("10 bytes"), "{tail}");

    let o = walctl(&["verify", "--strict"], dir);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, &["torn tail", &format!("offset {end}")]);
}

#[test]
fn dump_json_lines_parse_with_the_right_lsns() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let expected: Vec<_> = LogReader::open(tmp.path())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();

    let o = walctl(&["dump", "--json", "--payload"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 43);
    for (line, r) in lines.iter().zip(&expected) {
        assert_eq!(line["lsn"], u64::from(r.lsn));
        assert_eq!(line["len"], r.payload.len());
        assert_eq!(line["crc"], format!("{:#010x}", r.frame_crc));
        assert_eq!(line["segment"], u64::from(r.segment_first_lsn));
        assert_eq!(line["offset"], r.frame_offset);
        let hex: String = r.payload.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(line["payload"], hex);
    }
    assert_eq!(lines[40]["txn"], serde_json::json!([0, 3]));
    assert_eq!(lines[42]["txn"], serde_json::json!([2, 3]));
    assert!(lines[0]["txn"].is_null());

    // --utf8 shows text; without --payload there is no payload field.
    let o = walctl(&["dump", "--json", "--payload", "--utf8"], tmp.path());
    let first: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(first["payload"], "record 1");
    let o = walctl(&["dump", "--json"], tmp.path());
    let first: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert!(first.get("payload").is_none());
}

#[test]
fn dump_text_prints_one_line_per_record_even_for_binary_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let o = walctl(&["dump", "--payload", "--utf8"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 43);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("lsn={} len=", i + 1)), "{line}");
        assert!(line.contains(" crc=0x"), "{line}");
    }
    assert!(lines[0].ends_with("payload=\"record 1\""), "{}", lines[0]);
    assert!(lines[42].contains("txn=2/3"), "{}", lines[42]);
}

#[test]
fn stat_reports_record_counts() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let o = walctl(&["stat"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let segments = segment_count(tmp.path());
    assert!(out.lines().any(|l| l == "records: 43"), "{out}");
    assert!(
        out.lines().any(|l| l == format!("segments: {segments}")),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "first lsn: 1"), "{out}");
    assert!(out.lines().any(|l| l == "last lsn: 43"), "{out}");
    // One row per segment, whose record counts add up.
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.contains(".wal"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), segments);
    let total: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(total, 43);
    let on_disk: u64 = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        out.lines()
            .any(|l| l == format!("bytes on disk: {on_disk}")),
        "{out}"
    );
}

#[test]
fn missing_or_empty_log_and_bad_usage_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let o = walctl(&["verify"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["no actix-wal log"]);

    let missing = tmp.path().join("missing");
    let o = walctl(&["stat"], &missing);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &[&missing.display().to_string()]);

    let o = walctl(&["frobnicate"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let o = walctl(&["dump", "--max-record-bytes", "0"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let o = walctl(&["dump", "--utf8"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "--utf8 needs --payload");
}

#[test]
fn max_record_bytes_below_the_log_s_records_is_reported_as_damage() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    // "record 10" is 9 bytes: a bound of 8 turns its frame into damage.
    let o = walctl(&["verify", "--max-record-bytes", "8"], tmp.path());
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, &["max_record_bytes", "offset"]);
}

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

/// A log is private to its owner: `walctl dump --payload` run as `nobody` is refused with
/// a permission error (exit 2), and prints no record. We run as root, which ignores modes,
/// so it runs through `setpriv`; the tempdir is opened to all so that only the log's own
/// modes stand in the way.
#[test]
fn dump_as_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a command as nobody");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = d.path().join("log");
    write_log(&dir);
    let as_nobody = |dir: &Path| {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_walctl"))
            .args(["dump", "--payload", "--utf8"])
            .arg(dir)
            .output()
            .expect("run setpriv")
    };
    let o = as_nobody(&dir);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_one_line_error(&o, &["permission denied"]);
    assert!(!stdout(&o).contains("record 1"), "{}", stdout(&o));
    // Teeth: the same log opened to all is read by nobody.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(&dir).unwrap() {
        fs::set_permissions(e.unwrap().path(), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let o = as_nobody(&dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("record 1"), "{}", stdout(&o));
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

#[test]
fn dump_and_verify_read_a_compressed_log() {
    let d = tempfile::tempdir().unwrap();
    let cfg = actix_wal::WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .compression(actix_wal::Compression::lz4());
    let wal = actix_wal::Wal::open_blocking(d.path(), cfg).unwrap();
    let payloads: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "ab".repeat(800)).into_bytes())
        .collect();
    futures::executor::block_on(async {
        for p in &payloads {
            wal.append(p.clone()).await.unwrap();
        }
        wal.shutdown().await.unwrap();
    });
    // Stored compressed: the flags byte of each frame is LZ4.
    let records: Vec<_> = LogReader::open(d.path())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let seg = fs::read(d.path().join(segment_name(1))).unwrap();
    assert!(records
        .iter()
        .all(|r| seg[r.frame_offset as usize + 23] == 1));
    let before = snapshot(d.path());
    let verify = walctl(&["verify"], d.path());
    assert!(verify.status.success(), "{}", stderr(&verify));
    let dump = walctl(&["dump", "--payload"], d.path());
    assert!(dump.status.success(), "{}", stderr(&dump));
    let out = stdout(&dump);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    for (line, p) in lines.iter().zip(&payloads) {
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        assert!(line.ends_with(&format!("payload={hex}")), "{line}");
        assert!(line.contains(&format!("len={}", p.len())), "{line}");
    }
    assert_eq!(snapshot(d.path()), before, "walctl must not modify the log");
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
