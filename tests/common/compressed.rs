//! Shared by the compression tests (tests/compression.rs, compression_segments.rs,
//! compression_faults.rs): JSON-like records that compress, a small log's config, a
//! workload of records, batches and transactions, and the reads that check what is on disk.
//! Included with `#[path = "common/compressed.rs"] mod compressed;`.
#![allow(dead_code)]

use actix_wal::files::{list_segments, segment_name};
use actix_wal::format::*;
use actix_wal::storage::default_storage;
use actix_wal::*;
use std::fs;
use std::path::Path;

/// A JSON-like record of `len` bytes: what compresses in real logs (keys repeat, values
/// vary).
pub fn json(i: u64, len: usize) -> Vec<u8> {
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
pub fn record(i: u64) -> Vec<u8> {
    if i.is_multiple_of(7) {
        format!("short {i}").into_bytes()
    } else {
        json(i, 1024 + (i as usize * 613) % 3072)
    }
}

pub fn small(compression: Compression) -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(64 * 1024)
        .max_record_bytes(16 * 1024)
        .preallocate(false)
        .compression(compression)
}

/// The flags byte (23) of the frame holding `r`.
pub fn frame_flags(dir: &Path, r: &Record) -> u8 {
    let bytes = fs::read(dir.join(segment_name(r.segment_first_lsn.0))).unwrap();
    bytes[r.frame_offset as usize + 23]
}

pub fn segments(dir: &Path) -> Vec<actix_wal::files::SegmentFile> {
    list_segments(default_storage().as_ref(), dir).unwrap().0
}

pub fn read_all(dir: &Path) -> Vec<Record> {
    LogReader::open_with(dir, default_storage(), 16 * 1024)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// What was appended, by LSN.
pub type Expected = Vec<(Lsn, Vec<u8>)>;

/// Appends records, a batch and transactions of `record`s from `from` on; returns them.
pub async fn write(wal: &Wal, from: u64, n: u64) -> Expected {
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

pub fn assert_records(got: &[Record], want: &Expected) {
    assert_eq!(got.len(), want.len());
    for (r, (lsn, p)) in got.iter().zip(want) {
        assert_eq!(r.lsn, *lsn);
        assert!(r.payload == *p, "record {} differs", lsn.0);
    }
}

/// Every compressed frame of the log in `dir` lies in a segment whose header has
/// COMPRESSED; returns how many frames are compressed.
pub fn compressed_frames_only_in_flagged_segments(dir: &Path) -> usize {
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
