//! Compression (issue 22, item 4), the segment flag `COMPRESSED`: compressed frames lie
//! only in segments that carry it, whatever happened to the log: logs mixing compressed
//! and plain frames read whatever the setting; a build before compression refuses a
//! compressed log by its segment flag; rewinds, resets and a spare whose rename was lost
//! keep compressed frames in flagged segments.

#[path = "common/compressed.rs"]
mod compressed;

use actix_wal::files::segment_name;
use actix_wal::format::segment_header::HeaderError;
use actix_wal::format::*;
use actix_wal::*;
use compressed::*;
use std::fs;
use std::path::{Path, PathBuf};

fn segment_headers(dir: &Path) -> Vec<(PathBuf, [u8; SEGMENT_HEADER_BYTES])> {
    segments(dir)
        .into_iter()
        .map(|s| {
            let b = fs::read(&s.path).unwrap();
            (s.path, b[..SEGMENT_HEADER_BYTES].try_into().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn mixed_logs_read_whatever_the_setting() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut want = Vec::new();
    // Plain, then compressed (the tail segment is given the flag), then plain again.
    for (round, compression) in [Compression::None, Compression::lz4(), Compression::None]
        .into_iter()
        .enumerate()
    {
        let wal = Wal::open_standalone(dir, small(compression)).await.unwrap();
        let from = 1 + 100 * round as u64;
        want.extend(write(&wal, from, 60).await);
        let got = wal
            .read_range(Lsn(1)..Lsn(want.len() as u64 + 1), 64 << 20)
            .await
            .unwrap();
        assert_records(&got, &want);
        wal.shutdown().await.unwrap();
        if round == 0 {
            assert!(segment_headers(dir).iter().all(|(_, h)| h[12] == 0));
        }
    }
    let all = read_all(dir);
    assert_records(&all, &want);
    let flags: Vec<u8> = all.iter().map(|r| frame_flags(dir, r)).collect();
    assert!(flags.contains(&0) && flags.contains(&FRAME_FLAG_LZ4));
    // Every frame written in the second round is compressed or short; none of the others
    // is compressed.
    let second = want.iter().position(|(_, p)| p == &record(101)).unwrap();
    let third = want.iter().position(|(_, p)| p == &record(201)).unwrap();
    assert!(flags[..second].iter().all(|f| *f == 0));
    assert!(flags[third..].iter().all(|f| *f == 0));
    assert!(flags[second..third].iter().filter(|f| **f != 0).count() > 20);
    // Compressed frames lie only in segments with COMPRESSED: the second open went on
    // plain in the tail it found (whose header it never rewrites) until it rolled over.
    for (r, f) in all.iter().zip(&flags) {
        let header = fs::read(dir.join(segment_name(r.segment_first_lsn.0))).unwrap();
        let h = SegmentHeader::decode(&header[..SEGMENT_HEADER_BYTES]).unwrap();
        assert!(*f == 0 || h.allows_compressed(), "LSN {}", r.lsn.0);
    }
    // The first compressed frame of the second open started a segment of its own: the
    // tail it found, which holds frames, is never rewritten (no header in place).
    let first = &all[second];
    assert_eq!(flags[second], FRAME_FLAG_LZ4);
    assert_eq!(first.segment_first_lsn, first.lsn);
    let before = &all[second - 1];
    let header = fs::read(dir.join(segment_name(before.segment_first_lsn.0))).unwrap();
    let h = SegmentHeader::decode(&header[..SEGMENT_HEADER_BYTES]).unwrap();
    assert!(!h.allows_compressed());
}

/// What a build before compression makes of each segment: `Ok` (it reads the segment)
/// or the flags it refuses.
fn old_build_verdicts(dir: &Path) -> Vec<Result<(), u32>> {
    segment_headers(dir)
        .iter()
        .map(|(_, h)| {
            match SegmentHeader::decode_knowing(h, SEGMENT_FLAGS_KNOWN_BEFORE_COMPRESSION) {
                Ok(_) => Ok(()),
                Err(HeaderError::Flags(f)) => Err(f),
                Err(e) => panic!("{e:?}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_build_before_compression_refuses_a_compressed_log() {
    // A new compressing log: every segment, the first included (created before the log
    // knew it would compress, and created again with the flag before its first frame),
    // carries COMPRESSED, which the older build refuses (`UnknownSegmentFlags`) rather
    // than read a compressed frame as a torn tail and cut it.
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small(Compression::lz4()))
        .await
        .unwrap();
    write(&wal, 1, 100).await;
    wal.shutdown().await.unwrap();
    let verdicts = old_build_verdicts(d.path());
    assert!(verdicts.len() >= 2, "{} segments", verdicts.len());
    assert!(
        verdicts.iter().all(|v| *v == Err(SEGMENT_FLAG_COMPRESSED)),
        "{verdicts:?}"
    );

    // A plain log reopened with compression: the segments written plain stay readable by
    // the older build and hold only plain frames; every segment holding a compressed
    // frame is refused by it.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open_standalone(dir, small(Compression::None))
        .await
        .unwrap();
    write(&wal, 1, 10).await;
    wal.shutdown().await.unwrap();
    assert!(old_build_verdicts(dir).iter().all(Result::is_ok));
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    write(&wal, 11, 100).await;
    wal.shutdown().await.unwrap();
    let verdicts = old_build_verdicts(dir);
    assert_eq!(verdicts[0], Ok(()));
    assert_eq!(verdicts.last(), Some(&Err(SEGMENT_FLAG_COMPRESSED)));
    let firsts: Vec<u64> = segments(dir).iter().map(|s| s.first_lsn).collect();
    for r in read_all(dir) {
        let i = firsts
            .iter()
            .position(|f| *f == r.segment_first_lsn.0)
            .unwrap();
        if frame_flags(dir, &r) != 0 {
            assert_eq!(verdicts[i], Err(SEGMENT_FLAG_COMPRESSED), "LSN {}", r.lsn.0);
        }
    }
}

#[tokio::test]
async fn rewinds_and_resets_keep_compressed_frames_in_flagged_segments() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open_standalone(dir, small(Compression::None))
        .await
        .unwrap();
    write(&wal, 1, 40).await;
    wal.shutdown().await.unwrap();
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    let more = write(&wal, 100, 60).await;
    // Back into the first, plain segment (it holds frames): it goes on plain there.
    wal.truncate_after(Lsn(2)).await.unwrap();
    let after = write(&wal, 200, 60).await;
    assert_eq!(after[0].0, Lsn(3));
    let n = compressed_frames_only_in_flagged_segments(dir);
    assert!(n > 10, "{n} compressed frames");
    let got = wal
        .read_range(Lsn(3)..Lsn(after.last().unwrap().0 .0 + 1), 64 << 20)
        .await
        .unwrap();
    assert_records(&got, &after);
    // A reset leaves one empty segment (created plain); the writer creates it again with
    // the flag before the first compressed frame goes in.
    wal.reset(Lsn(10_000)).await.unwrap();
    let p = json(1, 3000);
    assert_eq!(wal.append(p.clone()).await.unwrap(), Lsn(10_000));
    wal.shutdown().await.unwrap();
    assert_eq!(compressed_frames_only_in_flagged_segments(dir), 1);
    let all = read_all(dir);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].payload, p);
    assert!(more.len() > 60);
}

#[tokio::test]
async fn a_compressing_logs_spare_whose_rename_was_lost_is_adopted() {
    // The torture test found it: a compressing log's spare carries COMPRESSED, and
    // recovery took only spares without flags as candidates, so a power cut that lost a
    // rollover's rename lost the acknowledged records in the spare.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    let want = write(&wal, 1, 100).await;
    wal.shutdown().await.unwrap();
    let segs = segments(dir);
    assert!(segs.len() >= 2);
    let last = segs.last().unwrap();
    assert!(SegmentHeader::decode(&fs::read(&last.path).unwrap()[..32])
        .unwrap()
        .allows_compressed());
    // The newest segment still under its spare name, as a crash before the directory
    // fsync of its rename leaves it.
    let spare = dir.join(actix_wal::files::spare_name(7));
    fs::rename(&last.path, &spare).unwrap();
    assert_records(&read_all(dir), &want);
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    assert_eq!(
        wal.recovery_report().next_lsn,
        Lsn(want.last().unwrap().0 .0 + 1)
    );
    wal.shutdown().await.unwrap();
    assert!(!spare.exists());
    assert_records(&read_all(dir), &want);
}
