//! Compression (issue 22, item 4): with `WalConfig::compression` on, payloads above the
//! threshold are stored LZ4-compressed (frame flag bit 0, in segments with the header flag
//! `COMPRESSED`), and every read path gives back the bytes appended: reads, range reads,
//! subscriptions, replay (stream and recipient), `LogReader`. Logs mixing compressed and
//! plain frames read whatever the setting; a build before compression refuses a compressed
//! log by its segment flag; damaged or hostile compressed frames are torn tails or typed
//! corruption with their place, never a panic or an allocation of what a file claims.

use actix::prelude::*;
use actix_wal::files::{list_segments, segment_name};
use actix_wal::format::frame::{encode_stored, transaction_payload};
use actix_wal::format::segment_header::HeaderError;
use actix_wal::format::*;
use actix_wal::storage::default_storage;
use actix_wal::*;
use futures::StreamExt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A JSON-like record of `len` bytes: what compresses in real logs (keys repeat, values
/// vary).
fn json(i: u64, len: usize) -> Vec<u8> {
    let mut s = format!("{{\"seq\":{i},\"items\":[");
    let mut k = 0u64;
    while s.len() < len {
        let x = i.wrapping_mul(2_654_435_761).wrapping_add(k * 97) % 10_000;
        s.push_str(&format!(
            "{{\"id\":{x},\"user\":\"user{}\",\"active\":{},\"score\":{}.{}}},",
            x % 500,
            x.is_multiple_of(3),
            x % 100,
            k % 10
        ));
        k += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

/// Records of 1 to 4 KiB, and every seventh a short one (stored as it is).
fn record(i: u64) -> Vec<u8> {
    if i.is_multiple_of(7) {
        format!("short {i}").into_bytes()
    } else {
        json(i, 1024 + (i as usize * 613) % 3072)
    }
}

fn small(compression: Compression) -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .max_record_bytes(16 * 1024)
        .preallocate(false)
        .compression(compression)
}

/// The flags byte (23) of the frame holding `r`.
fn frame_flags(dir: &Path, r: &Record) -> u8 {
    let bytes = fs::read(dir.join(segment_name(r.segment_first_lsn.0))).unwrap();
    bytes[r.frame_offset as usize + 23]
}

fn segments(dir: &Path) -> Vec<actix_wal::files::SegmentFile> {
    list_segments(default_storage().as_ref(), dir).unwrap().0
}

fn segment_headers(dir: &Path) -> Vec<(PathBuf, [u8; SEGMENT_HEADER_BYTES])> {
    segments(dir)
        .into_iter()
        .map(|s| {
            let b = fs::read(&s.path).unwrap();
            (s.path, b[..SEGMENT_HEADER_BYTES].try_into().unwrap())
        })
        .collect()
}

fn read_all(dir: &Path) -> Vec<Record> {
    LogReader::open_with(dir, default_storage(), 16 * 1024)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// What was appended, by LSN.
type Expected = Vec<(Lsn, Vec<u8>)>;

/// Appends records, a batch and transactions of `record`s from `from` on; returns them.
async fn write(wal: &Wal, from: u64, n: u64) -> Expected {
    let mut out = Vec::new();
    let mut i = from;
    while i < from + n {
        match i % 10 {
            3 => {
                let entries = vec![record(i), json(i + 1, 900), b"tail".to_vec()];
                let lsn = wal.commit(entries.clone()).await.unwrap();
                for (k, e) in entries.into_iter().enumerate() {
                    out.push((Lsn(lsn.0 + k as u64), e));
                }
            }
            5 => {
                let recs = vec![record(i), record(i + 2)];
                let lsn = wal.append_batch(recs.clone()).await.unwrap();
                for (k, e) in recs.into_iter().enumerate() {
                    out.push((Lsn(lsn.0 + k as u64), e));
                }
            }
            _ => {
                let p = record(i);
                out.push((wal.append(p.clone()).await.unwrap(), p));
            }
        }
        i += 1;
    }
    out
}

fn assert_records(got: &[Record], want: &Expected) {
    assert_eq!(got.len(), want.len());
    for (r, (lsn, p)) in got.iter().zip(want) {
        assert_eq!(r.lsn, *lsn);
        assert!(r.payload == *p, "record {} differs", lsn.0);
    }
}

struct Collector(Arc<Mutex<Vec<Record>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Replayed> for Collector {
    type Result = ();
    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        self.0.lock().unwrap().extend(msg.records);
    }
}

#[actix::test]
async fn compressed_records_round_trip_through_every_read_path() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open(dir, small(Compression::lz4())).await.unwrap();
    let want = write(&wal, 1, 120).await;
    let raw: usize = want.iter().map(|(_, p)| p.len()).sum();

    // Stored compressed (flag set) above the threshold, as they are below it.
    let on_disk = read_all(dir);
    assert_records(&on_disk, &want);
    let mut compressed = 0;
    for r in &on_disk {
        let flags = frame_flags(dir, r);
        if r.txn.is_none() && r.payload.len() < 512 {
            assert_eq!(flags, 0, "LSN {} is below the threshold", r.lsn.0);
        } else {
            assert_eq!(
                flags, FRAME_FLAG_LZ4,
                "LSN {} is JSON of 1 KiB or more",
                r.lsn.0
            );
            compressed += 1;
        }
    }
    assert!(compressed > 100, "{compressed}");
    let segment_bytes: u64 = segments(dir)
        .iter()
        .map(|s| fs::metadata(&s.path).unwrap().len())
        .sum();
    assert!(
        (segment_bytes as usize) < raw / 2,
        "{segment_bytes} bytes on disk for {raw} bytes appended"
    );

    // Reads by LSN, range reads, a subscription, the replay stream.
    for (lsn, p) in want.iter().step_by(7) {
        assert!(wal.read(*lsn).await.unwrap().payload == *p);
    }
    let mut ranged = Vec::new();
    let end = Lsn(want.last().unwrap().0 .0 + 1);
    while ranged.len() < want.len() {
        let from = Lsn(1 + ranged.len() as u64);
        ranged.extend(wal.read_range(from..end, 16 * 1024).await.unwrap());
    }
    assert_records(&ranged, &want);
    let sub: Vec<Record> = wal
        .subscribe(Lsn(1))
        .take(want.len())
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_records(&sub, &want);
    wal.shutdown().await.unwrap();

    // Replay at open, to a recipient (read by `LogReader`) and as a stream (range reads).
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = WalConfig {
        replay_to: Some(Collector(seen.clone()).start().recipient()),
        ..small(Compression::lz4())
    };
    let wal = Wal::open(dir, cfg).await.unwrap();
    assert_records(&seen.lock().unwrap(), &want);
    let replayed: Vec<Record> = wal.replay().map(|r| r.unwrap()).collect().await;
    assert_records(&replayed, &want);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn compressed_transactions_read_back_whole_with_their_positions() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    // Entries too short to compress alone; together, with their lengths, they do.
    let entries: Vec<Vec<u8>> = (0..40).map(|k| json(k, 60)).collect();
    let first = wal.commit(entries.clone()).await.unwrap();
    let after = wal.append(b"after".to_vec()).await.unwrap();
    assert_eq!(after.0, first.0 + 40);
    let got = wal.read_range(first..after, 1 << 20).await.unwrap();
    assert_eq!(got.len(), 40);
    for (k, r) in got.iter().enumerate() {
        assert_eq!(r.payload, entries[k]);
        assert_eq!(
            r.txn,
            Some(TxnPosition {
                index: k as u16,
                count: 40
            })
        );
    }
    assert_eq!(frame_flags(dir, &got[0]), FRAME_FLAG_LZ4);
    wal.shutdown().await.unwrap();
    let read = read_all(dir);
    assert_eq!(read.len(), 41);
    assert!(read[..40]
        .iter()
        .zip(&entries)
        .all(|(r, e)| r.payload == *e));
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

#[tokio::test]
async fn messages_sent_to_the_queue_are_compressed_there() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // A plain log first: the compressing queue's first compressed frame starts a segment.
    let wal = Wal::open_standalone(dir, small(Compression::None))
        .await
        .unwrap();
    let mut want = write(&wal, 1, 5).await;
    wal.shutdown().await.unwrap();
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    let q = wal.queue().clone();
    let p = json(1, 3000);
    want.push((q.send(Append::new(p.clone())).await.unwrap().unwrap(), p));
    let entries = vec![json(2, 700), json(3, 700)];
    let lsn = q.send(Commit::new(entries.clone())).await.unwrap().unwrap();
    want.extend(
        entries
            .into_iter()
            .enumerate()
            .map(|(k, e)| (Lsn(lsn.0 + k as u64), e)),
    );
    let recs = vec![json(4, 2000), b"short".to_vec()];
    let lsn = q
        .send(AppendBatch::new(recs.clone()))
        .await
        .unwrap()
        .unwrap();
    want.extend(
        recs.into_iter()
            .enumerate()
            .map(|(k, e)| (Lsn(lsn.0 + k as u64), e)),
    );
    wal.shutdown().await.unwrap();
    let all = read_all(dir);
    assert_records(&all, &want);
    let flags: Vec<u8> = all.iter().map(|r| frame_flags(dir, r)).collect();
    let n = want.len();
    assert_eq!(flags[n - 5..], [1, 1, 1, 1, 0][..]);
    let first = &all[n - 5];
    assert_eq!(first.segment_first_lsn, first.lsn, "a new segment");
    assert!(compressed_frames_only_in_flagged_segments(dir) >= 4);
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

/// A log of one segment (first LSN 1, header `flags`) holding `frames`.
fn write_segment(dir: &Path, flags: u32, frames: &[u8]) -> PathBuf {
    let path = dir.join(segment_name(1));
    let mut bytes = SegmentHeader::encode_with_flags(1, flags).to_vec();
    bytes.extend_from_slice(frames);
    fs::write(&path, bytes).unwrap();
    path
}

fn lz4(p: &[u8]) -> Vec<u8> {
    actix_wal::format::compress::lz4_stored(p).unwrap()
}

fn corruption(e: WalError) -> (PathBuf, u64, String) {
    match e {
        WalError::Corruption {
            segment,
            offset,
            reason,
        } => (segment, offset, reason),
        other => panic!("expected Corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hostile_decompressed_length_is_corruption_at_its_frame() {
    let first = json(1, 2000);
    let second = json(2, 3000);
    let at = (SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES + lz4(&first).len()) as u64;
    let cases: [(&str, Vec<u8>, u32, &str); 4] = [
        // The length a file claims is checked before a buffer of it is allocated.
        (
            "4 GiB claimed",
            set_raw_len(lz4(&second), u32::MAX),
            SEGMENT_FLAG_COMPRESSED,
            "more than max_record_bytes",
        ),
        (
            "not larger than stored",
            set_raw_len(lz4(&second), 10),
            SEGMENT_FLAG_COMPRESSED,
            "stored only when smaller",
        ),
        (
            "no block",
            5000u32.to_le_bytes().to_vec(),
            SEGMENT_FLAG_COMPRESSED,
            "claims",
        ),
        // A compressed frame where its segment says there is none.
        (
            "segment without the flag",
            lz4(&second),
            0,
            "lacks the COMPRESSED flag",
        ),
    ];
    for (what, stored, seg_flags, reason) in cases {
        let d = tempfile::tempdir().unwrap();
        let mut frames = Vec::new();
        encode_stored(
            &mut frames,
            FrameKind::Record,
            FRAME_FLAG_LZ4,
            1,
            0,
            1,
            &lz4(&first),
        );
        encode_stored(
            &mut frames,
            FrameKind::Record,
            FRAME_FLAG_LZ4,
            2,
            0,
            1,
            &stored,
        );
        let path = write_segment(d.path(), seg_flags, &frames);
        if seg_flags == 0 {
            // The first frame is then out of place too.
            let e = LogReader::open(d.path()).unwrap().find_map(Result::err);
            let (seg, off, why) = corruption(e.expect(what));
            assert_eq!(
                (seg, off),
                (path.clone(), SEGMENT_HEADER_BYTES as u64),
                "{what}"
            );
            assert!(why.contains(reason), "{what}: {why}");
            continue;
        }
        let mut reader = LogReader::open(d.path()).unwrap();
        assert_eq!(reader.next().unwrap().unwrap().payload, first, "{what}");
        let (seg, off, why) = corruption(reader.next().unwrap().unwrap_err());
        assert_eq!((seg, off), (path.clone(), at), "{what}");
        assert!(why.contains(reason), "{what}: {why}");
        // Recovery refuses it at the same place, whatever the policy about torn tails:
        // its CRC checked, so no crash explains it.
        let e = Wal::open_standalone(d.path(), small(Compression::None)).await;
        let (seg, off, why) = corruption(e.map(drop).expect_err(what));
        assert_eq!((seg, off), (path, at), "{what}");
        assert!(why.contains(reason), "{what}: {why}");
    }
}

fn set_raw_len(mut stored: Vec<u8>, raw: u32) -> Vec<u8> {
    stored[..4].copy_from_slice(&raw.to_le_bytes());
    stored
}

#[tokio::test]
async fn a_block_that_does_not_decompress_to_its_length_is_corruption_where_it_is_read() {
    let d = tempfile::tempdir().unwrap();
    let first = json(1, 2000);
    let second = json(2, 3000);
    // A plausible length (within the bound, larger than stored), but not the block's.
    let stored = set_raw_len(lz4(&second), 2999);
    let mut frames = Vec::new();
    encode_stored(
        &mut frames,
        FrameKind::Record,
        FRAME_FLAG_LZ4,
        1,
        0,
        1,
        &lz4(&first),
    );
    let at = (SEGMENT_HEADER_BYTES + frames.len()) as u64;
    encode_stored(
        &mut frames,
        FrameKind::Record,
        FRAME_FLAG_LZ4,
        2,
        0,
        1,
        &stored,
    );
    let path = write_segment(d.path(), SEGMENT_FLAG_COMPRESSED, &frames);
    let mut reader = LogReader::open(d.path()).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().payload, first);
    let (seg, off, why) = corruption(reader.next().unwrap().unwrap_err());
    assert_eq!((seg, off), (path.clone(), at));
    assert!(why.contains("decompress"), "{why}");
    assert!(reader.next().is_none());
    // Recovery checks frames, not blocks: the log opens; reading the record says where.
    let wal = Wal::open_standalone(d.path(), small(Compression::None))
        .await
        .unwrap();
    assert_eq!(wal.read(Lsn(1)).await.unwrap().payload, first);
    let (seg, off, why) = corruption(wal.read(Lsn(2)).await.unwrap_err());
    assert_eq!((seg, off), (path, at));
    assert!(why.contains("decompress"), "{why}");
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_damaged_compressed_frame_is_a_torn_tail_at_the_end_and_corruption_before_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    for i in 1..=6 {
        wal.append(json(i, 3000)).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    let records = read_all(dir);
    assert!(records
        .iter()
        .all(|r| frame_flags(dir, r) == FRAME_FLAG_LZ4));
    let seg = dir.join(segment_name(1));
    let pristine = fs::read(&seg).unwrap();
    let flip = |r: &Record| {
        let mut b = pristine.clone();
        // A byte inside the compressed block (past the header and raw_len).
        b[r.frame_offset as usize + FRAME_HEADER_BYTES + 40] ^= 0x20;
        fs::write(&seg, b).unwrap();
    };

    // The last frame damaged: a torn tail. The default policy cuts it and says so.
    flip(&records[5]);
    let strict = small(Compression::lz4()).recovery_policy(RecoveryPolicy::AbsoluteConsistency);
    let (s, off, why) = corruption(Wal::open_standalone(dir, strict).await.err().unwrap());
    assert_eq!((s, off), (seg.clone(), records[5].frame_offset));
    assert!(why.contains("torn tail"), "{why}");
    let wal = Wal::open_standalone(dir, small(Compression::lz4()))
        .await
        .unwrap();
    let report = wal.recovery_report().clone();
    assert_eq!(report.next_lsn, Lsn(6));
    assert!(report.bytes_cut > 0);
    wal.shutdown().await.unwrap();

    // An earlier frame damaged, with a later batch after it: corruption, at its offset.
    fs::write(&seg, &pristine).unwrap();
    flip(&records[2]);
    let e = Wal::open_standalone(dir, small(Compression::lz4())).await;
    let (s, off, why) = corruption(e.err().unwrap());
    assert_eq!((s, off), (seg.clone(), records[2].frame_offset));
    assert!(why.contains("later write batch"), "{why}");
    let e = LogReader::open(dir).unwrap().find_map(Result::err).unwrap();
    assert_eq!(corruption(e).1, records[2].frame_offset);
}

#[tokio::test]
async fn max_record_bytes_bounds_a_payload_before_compression() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open_standalone(d.path(), small(Compression::lz4()))
        .await
        .unwrap();
    // 20 KiB of zeros compresses to a few dozen bytes, and is still too large.
    match wal.append(vec![0u8; 20 * 1024]).await {
        Err(WalError::RecordTooLarge {
            size_bytes,
            max_bytes,
        }) => {
            assert_eq!((size_bytes, max_bytes), (20 * 1024, 16 * 1024));
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    match wal
        .commit(vec![vec![0u8; 10 * 1024], vec![0u8; 10 * 1024]])
        .await
    {
        Err(WalError::RecordTooLarge { .. }) => {}
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    let lsn = wal.append(vec![0u8; 16 * 1024]).await.unwrap();
    assert_eq!(wal.read(lsn).await.unwrap().payload, vec![0u8; 16 * 1024]);
    wal.shutdown().await.unwrap();
    // A reader with a smaller bound refuses the frame for its decompressed length.
    let mut reader = LogReader::open_with(d.path(), default_storage(), 8 * 1024).unwrap();
    let (_, _, why) = corruption(reader.next().unwrap().unwrap_err());
    assert!(why.contains("max_record_bytes"), "{why}");
}

#[test]
fn compression_settings_are_validated() {
    for (c, ok) in [
        (Compression::None, true),
        (Compression::lz4(), true),
        (Compression::Lz4 { min_bytes: 32 }, true),
        (Compression::Lz4 { min_bytes: 31 }, false),
        (
            Compression::Lz4 {
                min_bytes: 16 * 1024,
            },
            true,
        ),
        (
            Compression::Lz4 {
                min_bytes: 16 * 1024 + 1,
            },
            false,
        ),
    ] {
        match small(c).validate() {
            Ok(()) => assert!(ok, "{c:?} must be refused"),
            Err(WalError::InvalidConfig(m)) => {
                assert!(!ok, "{c:?} must be accepted: {m}");
                assert!(m.contains("compression"), "{m}");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(WalConfig::default().compression, Compression::None);
    // The layout a compressed transaction stores is the plain one, compressed.
    let entries = [b"ab".to_vec(), Vec::new()];
    assert_eq!(
        transaction_payload(&entries),
        [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]
    );
}

/// Every compressed frame of the log in `dir` lies in a segment whose header has
/// COMPRESSED; returns how many frames are compressed.
fn compressed_frames_only_in_flagged_segments(dir: &Path) -> usize {
    let mut n = 0;
    for r in read_all(dir) {
        let header = fs::read(dir.join(segment_name(r.segment_first_lsn.0))).unwrap();
        let h = SegmentHeader::decode(&header[..SEGMENT_HEADER_BYTES]).unwrap();
        if frame_flags(dir, &r) != 0 {
            assert!(h.allows_compressed(), "LSN {}", r.lsn.0);
            n += 1;
        }
    }
    n
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
