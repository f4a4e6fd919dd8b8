//! Compression (issue 22, item 4), damaged and hostile frames: a compressed frame damaged
//! or hostile (a decompressed length out of bounds, a block that does not decompress to
//! its length, a compressed frame in a segment without the flag) is a torn tail or typed
//! corruption with its place, never a panic or an allocation of what a file claims; and
//! `max_record_bytes` bounds a payload before compression.

#[path = "common/compressed.rs"]
mod compressed;

use actix_wal::files::segment_name;
use actix_wal::format::frame::encode_stored;
use actix_wal::format::*;
use actix_wal::storage::default_storage;
use actix_wal::*;
use compressed::*;
use std::fs;
use std::path::{Path, PathBuf};

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
