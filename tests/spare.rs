//! Spare segments (issue 14, item 1): the next segment is prepared ahead under a name
//! that is not a segment name, and a rollover renames it into place after its header and
//! frames are durable. A spare is never read as data: readers and `walctl` skip it,
//! recovery removes it. (Crashes at every step of preparing and using one are in
//! tests/torture.rs, which also shows a spare renamed before its fsync is caught.)

mod common;
mod sim;

use common::{file_names, sim_options};

use actix_wal::files::is_spare_name;
use actix_wal::*;
use std::path::Path;
use std::process::Command;

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
    let (w, written) = write_300_open(d.path());
    let open = file_names(d.path());
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
    assert!(!spare.exists(), "{:?}", file_names(d.path()));
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
    let open = file_names(d.path());
    assert!(open.iter().filter(|n| n.ends_with(".wal")).count() > 3);
    assert!(
        open.iter().filter(|n| is_spare_name(n)).count() <= 1,
        "{open:?}"
    );
    wal.shutdown().await.unwrap();
    // The flusher is joined by `shutdown`, its writer dropped: the unused spare is
    // removed, and the helper's raise of N (off the commit path) has landed.
    let after = file_names(d.path());
    assert!(after.iter().all(|n| !is_spare_name(n)), "{after:?}");
    let newest = after
        .iter()
        .filter_map(|n| actix_wal::files::parse_segment_name(n))
        .max()
        .unwrap();
    let meta = actix_wal::files::read_meta(&actix_wal::storage::FsStorage, d.path())
        .unwrap()
        .unwrap();
    assert_eq!(meta.newest_lsn, newest);
    assert_eq!(read_all(d.path()), written);
    let wal = Wal::open(d.path(), cfg).await.unwrap();
    assert!(wal.recovery_report().removed.is_empty());
    assert_eq!(wal.recovery_report().next_lsn, Lsn(201));
    wal.shutdown().await.unwrap();
}

/// The segment files of `dir` (by name), newest last.
fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    file_names(dir)
        .into_iter()
        .filter(|n| actix_wal::files::parse_segment_name(n).is_some())
        .map(|n| dir.join(n))
        .collect()
}

/// 300 records through a `LogWriter` with small segments (many rollovers), synced every
/// third; the writer is returned still open.
fn write_300_open(dir: &Path) -> (LogWriter, Vec<Vec<u8>>) {
    let (mut w, _) = LogWriter::open(dir, small()).unwrap();
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
    (w, written)
}

/// [`write_300_open`], the writer dropped.
fn write_300(dir: &Path) -> Vec<Vec<u8>> {
    write_300_open(dir).1
}

/// A crash after a rollover's rename but before the directory `fsync` that the spare
/// helper makes (off the commit path) can bring the newest segment back under its spare
/// name, acknowledged records and all: recovery adopts it.
#[test]
fn a_newest_segment_whose_rename_was_lost_is_adopted_from_its_spare() {
    let d = tempfile::tempdir().unwrap();
    let written = write_300(d.path());
    let newest = segment_paths(d.path()).pop().unwrap();
    let spare = d.path().join(actix_wal::files::spare_name(42));
    std::fs::rename(&newest, &spare).unwrap();
    let (w, outcome) = LogWriter::open(d.path(), small()).unwrap();
    assert_eq!(outcome.adopted_spare.as_ref(), Some(&newest));
    assert!(
        newest.exists() && !spare.exists(),
        "{:?}",
        file_names(d.path())
    );
    assert!(!outcome.removed.contains(&spare), "{:?}", outcome.removed);
    assert_eq!(outcome.next_lsn, Lsn(301));
    drop(w);
    assert_eq!(read_all(d.path()), written);
}

/// A spare with a valid header that does not continue the log exactly where its last
/// segment ends is removed with the other leftovers, never read and never reported as
/// corruption: its batch reached it but not the segment before (so it was never
/// acknowledged), or it is stale. Also never adopted: a header with a flag set, one at or
/// below the last segment's first LSN, a spare of zeros.
#[test]
fn a_written_spare_that_does_not_follow_the_log_is_removed_not_adopted() {
    use actix_wal::format::{SegmentHeader, SEGMENT_FLAG_REWRITE};
    let d = tempfile::tempdir().unwrap();
    let written = write_300(d.path());
    let last_first = segment_paths(d.path())
        .iter()
        .filter_map(|p| actix_wal::files::parse_segment_name(p.file_name()?.to_str()?))
        .max()
        .unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // The segment before ends short of it (at 301).
        ("short", SegmentHeader::encode_with_flags(305, 0).to_vec()),
        // The segment before ends past it.
        (
            "past",
            SegmentHeader::encode_with_flags(last_first + 1, 0).to_vec(),
        ),
        (
            "at or below",
            SegmentHeader::encode_with_flags(last_first, 0).to_vec(),
        ),
        (
            "flagged",
            SegmentHeader::encode_with_flags(301, SEGMENT_FLAG_REWRITE).to_vec(),
        ),
        ("zeros", vec![0u8; 32]),
    ];
    for (what, header) in cases {
        let spare = d.path().join(actix_wal::files::spare_name(7));
        let mut bytes = header;
        bytes.resize(4096, 0);
        std::fs::write(&spare, &bytes).unwrap();
        let (w, outcome) = LogWriter::open(d.path(), small())
            .unwrap_or_else(|e| panic!("{what}: recovery refused the log: {e}"));
        assert_eq!(outcome.adopted_spare, None, "{what}");
        assert!(
            outcome.removed.contains(&spare),
            "{what}: {:?}",
            outcome.removed
        );
        assert!(!spare.exists(), "{what}");
        assert_eq!(outcome.next_lsn, Lsn(301), "{what}");
        drop(w);
        assert_eq!(read_all(d.path()), written, "{what}");
    }
}

/// The planner moves a batch that fits into the next segment whole, so a rollover batch
/// touches one segment (one `fdatasync`); a batch too large to move spans both, and one
/// that began its segment never moves (the new segment would take that name).
#[test]
fn a_rollover_batch_that_fits_moves_whole_into_the_new_segment() {
    use actix_wal::internals::{Batch, Planner};
    let segment = 8192u64;
    let planner_at = |offset| Planner {
        segment_first_lsn: 1,
        offset,
        next_lsn: 10,
        segment_size_bytes: segment,
        max_record_bytes: 4096,
        files_epoch: 0,
    };
    // Frames of 124 bytes from offset 7,800: the fourth does not fit (8,172 + 124).
    let mut p = planner_at(7800);
    let mut b = Batch::new(&p);
    for _ in 0..4 {
        b.push_record(&mut p, &[7u8; 100]).unwrap();
    }
    assert_eq!(b.chunks.len(), 1, "{:?}", b.chunks);
    let c = b.chunks[0];
    assert!(c.creates_segment);
    assert_eq!(
        (c.segment_first_lsn, c.offset, c.start, c.end),
        (10, 32, 0, 496)
    );
    assert_eq!(
        (p.segment_first_lsn, p.offset, p.next_lsn),
        (10, 32 + 496, 14)
    );
    // Too large to move (more than 1/8 of a segment): it spans.
    let mut p = planner_at(7000);
    let mut b = Batch::new(&p);
    for _ in 0..10 {
        b.push_record(&mut p, &[7u8; 100]).unwrap();
    }
    assert_eq!(b.chunks.len(), 2, "{:?}", b.chunks);
    assert!(!b.chunks[0].creates_segment && b.chunks[1].creates_segment);
    assert_eq!(b.chunks[0].segment_first_lsn, 1);
    assert!(b.chunks[1].segment_first_lsn > 10);
    // A batch that began its segment (offset 32, the segment named by its first LSN)
    // fills it before it rolls: it is never moved.
    let mut p = Planner {
        segment_first_lsn: 10,
        offset: 32,
        ..planner_at(32)
    };
    let mut b = Batch::new(&p);
    for _ in 0..70 {
        b.push_record(&mut p, &[7u8; 100]).unwrap();
    }
    assert_eq!(b.chunks[0].segment_first_lsn, 10);
    assert!(!b.chunks[0].creates_segment);
    assert!(b.chunks.len() == 2 && b.chunks[1].segment_first_lsn > 10);
}

/// The flusher's writer keeps the segment a spanning batch leaves to sync beside the new
/// one, which is safe only while the new one is a spare (named after both syncs). With no
/// spare ready (the first batch after an open, whose spare is prepared after it), the new
/// segment is created the usual way and named at once: the segment left must be synced
/// before that, or a crash keeps the named segment after a torn one, a hole recovery
/// refuses. Found by the torture test (`TORTURE_SEEDS=100000`, actors): "segment ends at
/// LSN 46 but the next segment starts at 47".
#[test]
fn a_first_batch_after_open_spanning_two_segments_without_a_spare_recovers_from_a_crash_at_every_step(
) {
    use actix_wal::internals::spare::SpareMode;
    use actix_wal::internals::Batch;
    for mode in [SpareMode::Thread, SpareMode::Inline] {
        let dir = Path::new("/wal");
        let sim = sim::SimStorage::new();
        let (mut log, _) = LogWriter::open(dir, sim_options(sim.shared())).unwrap();
        for i in 0..13u8 {
            log.append(&[i; 250]).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let (log, out) = LogWriter::open(dir, sim_options(sim.shared())).unwrap();
        drop(log);
        let seg = out.tail_segment.clone().unwrap();
        assert_eq!(seg.first_lsn, 1, "the filler stays in segment 1");
        let mut w = actix_wal::internals::SegmentWriter::new(sim.shared(), dir, 4096, false);
        w.enable_spares(mode);
        let mut p = actix_wal::internals::Planner {
            segment_first_lsn: seg.first_lsn,
            offset: out.tail_offset,
            next_lsn: out.next_lsn.0,
            segment_size_bytes: 4096,
            max_record_bytes: 1024,
            files_epoch: 0,
        };
        let acked = out.next_lsn.0;
        let mut b = Batch::new(&p);
        for i in 0..6u8 {
            b.push_record(&mut p, &[i; 250]).unwrap();
        }
        assert!(
            b.chunks.len() == 2 && b.chunks[1].creates_segment,
            "the batch spans"
        );
        sim.record(|| 0);
        w.write_batch(&b).unwrap();
        let mut points = sim.take_snapshots();
        points.push(sim.snapshot(0));
        let last = points.len() - 1;
        for (i, point) in points.iter().enumerate() {
            let need = if i == last { b.end_lsn } else { acked };
            for seed in 0..8u64 {
                let image = point.crash(sim::mix(i as u64, seed));
                match LogWriter::open(dir, sim_options(image.shared())) {
                    Ok((_, out)) => assert!(
                        out.next_lsn.0 >= need,
                        "{mode:?}, before {:?}, seed {seed}: acknowledged up to {}, \
                         recovered up to {}",
                        point.desc,
                        need - 1,
                        out.next_lsn.0 - 1
                    ),
                    Err(e) => panic!(
                        "{mode:?}, before {:?}, seed {seed}: recovery failed: {e}",
                        point.desc
                    ),
                }
            }
        }
    }
}

/// Issue 23 (slot frames, which take no LSN): a batch can span into a new segment with
/// only slot frames in the segment it leaves, so the frames of that segment can end at
/// the new segment's first LSN although the batch's bytes there were torn. A crash before
/// the leaving segment's `fdatasync` leaves such a tail: frames that reach the spare's LSN,
/// then garbage. The spare is not adopted (its batch was never acknowledged); the torn
/// tail is cut. Before the fix it was adopted, and the segment before it, now not the
/// last, was refused: "non-zero bytes ... where the next segment begins" (the million-point
/// torture run found it).
#[test]
fn a_spare_after_a_segment_whose_tail_is_torn_is_not_adopted() {
    use actix_wal::format::SegmentHeader;
    let d = tempfile::tempdir().unwrap();
    let written = write_300(d.path());
    let newest = segment_paths(d.path()).pop().unwrap();
    // Torn bytes after the newest segment's last frame (where its frames end: LSN 301).
    let (_, end) = {
        let (w, outcome) = LogWriter::open(d.path(), small()).unwrap();
        drop(w);
        (outcome.next_lsn, outcome.tail_offset)
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x5a; 20], end).unwrap();
    drop(f);
    // A written spare that starts where those frames end, holding a good record frame.
    let spare = d.path().join(actix_wal::files::spare_name(9));
    let mut bytes = SegmentHeader::encode_with_flags(301, 0).to_vec();
    actix_wal::format::frame::encode_record(&mut bytes, 301, 0, b"never acknowledged");
    std::fs::write(&spare, &bytes).unwrap();
    let (w, outcome) = LogWriter::open(d.path(), small()).expect("recovery opens the log");
    assert_eq!(outcome.adopted_spare, None);
    assert!(outcome.removed.contains(&spare), "{:?}", outcome.removed);
    assert_eq!(outcome.next_lsn, Lsn(301));
    assert_eq!(outcome.bytes_cut, 20);
    drop(w);
    assert_eq!(read_all(d.path()), written);
}
