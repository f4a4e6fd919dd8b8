//! The `walctl` tool, run as a process: summaries of good logs, exit codes and one-line
//! errors naming segment and offset for damaged ones, JSON lines from `dump`, and counts
//! from `stat`; a log private to its owner, a compressed log. It must never modify the log
//! it reads. Where the log starts and `META`: tests/walctl_meta.rs.

mod common;
#[path = "common/walctl.rs"]
mod walctl;

use actix_wal::files::segment_name;
use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::{LogReader, Lsn};
use common::segment_count;
use std::fs;
use std::path::Path;
use std::process::Command;
use walctl::*;

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

/// The torn tail's offset, and the frame bytes, of a log holding compressed frames and
/// slot frames: where the frames really end on disk. (walctl summed each record's
/// decompressed length and left slot frames out: "offset 4276" where the frames ended at
/// a few hundred bytes.)
#[test]
fn verify_reports_where_compressed_and_slot_frames_really_end() {
    let d = tempfile::tempdir().unwrap();
    let cfg = actix_wal::WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .preallocate(false)
        .compression(actix_wal::Compression::lz4());
    let wal = actix_wal::Wal::open_blocking(d.path(), cfg).unwrap();
    futures::executor::block_on(async {
        for i in 0..5u8 {
            wal.append(vec![b'a' + i; 4000]).await.unwrap();
            wal.set_meta(vec![i; 10]).await.unwrap();
        }
        wal.shutdown().await.unwrap();
    });
    let seg = d.path().join(segment_name(1));
    let mut bytes = fs::read(&seg).unwrap();
    // The frames end at the last non-zero byte (the file is not preallocated: zeros
    // after them are the page's rest, if any).
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    let frames = LogReader::open(d.path()).unwrap().count();
    assert_eq!(frames, 5);
    let verify = walctl(&["verify"], d.path());
    assert!(verify.status.success(), "{}", stderr(&verify));
    let frame_bytes = stdout(&verify)
        .lines()
        .find_map(|l| l.strip_prefix("frame bytes: ").map(str::to_string))
        .unwrap();
    assert_eq!(frame_bytes, end.to_string(), "{}", stdout(&verify));
    bytes.resize(end + 20, 0);
    bytes[end + 9] = 0xee;
    fs::write(&seg, &bytes).unwrap();
    let o = walctl(&["verify", "--strict"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, &["torn tail", &format!("offset {end}:")]);
}
