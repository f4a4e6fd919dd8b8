//! Reading the log back: the reader's scan (every record out, payloads copied), the bare
//! frame walk over a segment (headers and CRCs only), recovery of a large log
//! (`LogDir::recover`, what `Wal::open` runs first), and the torn-tail verdict on hostile
//! tails (`crafted_tail`).
//!
//! ```text
//! cargo bench --bench log                          # recovery of a 1 GiB log
//! WALBENCH_RECOVERY_MIB=128 cargo bench --bench log  # smaller, for a quick run
//! cargo bench --bench log -- crafted_tail          # the torn-tail verdict only
//! ```
//!
//! The log is written once per run into a temporary directory and read from the page
//! cache: these are CPU figures. `walbench --suite` times opening a log from the device.

use actix_wal::files::list_segments;
use actix_wal::internals::scan::{SegmentCursor, SegmentData, SegmentEnd};
use actix_wal::storage::default_storage;
use actix_wal::{LogDir, LogOptions, LogReader, LogWriter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn env_mib(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes about `mib` MiB of `record_bytes` records in 4 MiB batches; returns frame bytes.
fn build(dir: &Path, mib: u64, record_bytes: usize) -> u64 {
    let (mut log, _) = LogWriter::open(dir, LogOptions::default()).expect("open a new log");
    let record = vec![0x3Cu8; record_bytes];
    let frame = (record_bytes + actix_wal::format::FRAME_HEADER_BYTES) as u64;
    let per_batch = ((4u64 << 20) / frame).max(1);
    let mut written = 0;
    while written < mib << 20 {
        for _ in 0..per_batch {
            log.append(&record).expect("append");
        }
        log.sync().expect("sync");
        written += per_batch * frame;
    }
    written
}

/// The reader: every record of the log, in LSN order, with its payload.
fn reader_scan(c: &mut Criterion) {
    let mib = env_mib("WALBENCH_SCAN_MIB", 64);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("reader_scan");
    g.sample_size(10);
    for record_bytes in [256usize, 4096] {
        let dir = tmp.path().join(format!("r{record_bytes}"));
        let bytes = build(&dir, mib, record_bytes);
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("{mib}MiB_{record_bytes}B"), |b| {
            b.iter(|| {
                let mut n = 0u64;
                for r in LogReader::open(&dir).expect("open reader") {
                    n += r.expect("intact").payload.len() as u64;
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

/// The frame walk alone: one 64 MiB segment read through the reader's window (from the page
/// cache), headers parsed and CRCs checked, payloads not copied. Recovery's inner loop.
fn frame_walk(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("frame_walk");
    g.sample_size(10);
    for record_bytes in [256usize, 4096] {
        let dir = tmp.path().join(format!("w{record_bytes}"));
        let bytes = build(&dir, 60, record_bytes);
        let storage = default_storage();
        let (segments, _) = list_segments(storage.as_ref(), &dir).expect("list");
        let mut seg = SegmentData::load(storage.as_ref(), &segments[0]).expect("load");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("segment_{record_bytes}B"), |b| {
            b.iter(|| {
                let mut cursor = SegmentCursor::new(seg.file.first_lsn, None, 1 << 20);
                let mut frames = 0u64;
                while let Some(f) = cursor.next_frame(&mut seg).expect("intact") {
                    frames += u64::from(f.header.count);
                }
                black_box(frames)
            })
        });
    }
    g.finish();
}

/// Recovery of a large log (1 GiB unless `WALBENCH_RECOVERY_MIB` says otherwise): list,
/// read and check every segment, find the tail. The lock is taken and released each time.
fn recovery(c: &mut Criterion) {
    let mib = env_mib("WALBENCH_RECOVERY_MIB", 1024);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let bytes = build(&dir, mib, 1024);
    let opts = LogOptions::default();
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(format!("{mib}MiB_1KiB_records"), |b| {
        b.iter(|| {
            let d = LogDir::open(&dir, opts.storage.clone()).expect("lock");
            let out = d.recover(&opts.recovery_options()).expect("recover");
            black_box(out.records)
        })
    });
    g.finish();
}

/// Writes the last segment of a log, at `first_lsn`, of `mib` MiB: a segment header, then
/// `tail` (its first frame damaged), then zeros.
fn hostile_segment(dir: &Path, mib: usize, first_lsn: u64, tail: impl Iterator<Item = u8>) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let size = mib << 20;
    let mut data = actix_wal::format::SegmentHeader::encode(first_lsn).to_vec();
    data.extend(tail.take(size - data.len()));
    data.resize(size, 0);
    std::fs::write(dir.join(actix_wal::files::segment_name(first_lsn)), data).expect("write");
}

/// The issue's crafted tail: 24-byte frame headers claiming 1,000,000-byte payloads, with
/// bad CRCs and LSNs 1, 2, 3, ..., up to the last whole header.
fn crafted_headers(bytes: usize) -> impl Iterator<Item = u8> {
    (1..=(bytes / 24) as u64).flat_map(|lsn| {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        h[4..8].copy_from_slice(&1_000_000u32.to_le_bytes());
        h[8..16].copy_from_slice(&lsn.to_le_bytes());
        h[20..24].copy_from_slice(&[1, 0, 1, 0]); // count 1, kind 1 (record), reserved 0
        h
    })
}

/// The torn-tail verdict (issue 15): reading a log whose last segment is a hostile tail,
/// through `LogReader` (what `walctl verify` runs; recovery runs the same cursor).
///
/// - `headers`: the issue's crafted tail, one candidate frame per 24 bytes; the search that
///   hashed each candidate's payload took 11.5 s for 16 MiB.
/// - `dense`: `01 00` repeated, at a first LSN that makes every even offset a candidate
///   (65,537-byte payloads, plausible LSNs of a later batch): the most candidates the
///   header's rules allow, one per 2 bytes.
fn crafted_tail(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("crafted_tail");
    g.sample_size(10);
    for mib in [16usize, 64] {
        let headers = tmp.path().join(format!("headers{mib}"));
        hostile_segment(&headers, mib, 1, crafted_headers(mib << 20));
        let dense = tmp.path().join(format!("dense{mib}"));
        hostile_segment(
            &dense,
            mib,
            0x0001_0000_FFFF_FFFF,
            [1u8, 0].into_iter().cycle(),
        );
        for (name, dir) in [("headers", headers), ("dense", dense)] {
            g.throughput(Throughput::Bytes((mib as u64) << 20));
            g.bench_function(format!("{name}_{mib}MiB"), |b| {
                b.iter(|| {
                    let mut r = LogReader::open(&dir).expect("open reader");
                    assert_eq!(r.by_ref().count(), 0, "no records in a hostile tail");
                    let end = r.tail_end();
                    assert!(matches!(end, Some(SegmentEnd::TornTail { .. })), "{end:?}");
                })
            });
        }
    }
    g.finish();
}

/// The storage seam's cost: a 4 KiB positional write through `FsStorage` (a boxed
/// `dyn StorageFile`) beside the same write straight on a `std::fs::File`. No fsync, so
/// the system call itself is as cheap as it gets and any cost of the seam would show.
fn storage_seam(c: &mut Criterion) {
    use actix_wal::Storage;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let buf = vec![7u8; 4096];
    let mut g = c.benchmark_group("storage_seam");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    let seam = actix_wal::FsStorage
        .create(&dir.path().join("seam"))
        .expect("create through the seam");
    let mut off = 0u64;
    g.bench_function("pwrite_4KiB_through_FsStorage", |b| {
        b.iter(|| {
            seam.write_all_at(&buf, off % (64 << 20)).expect("write");
            off += 4096;
        })
    });
    let direct = std::fs::File::create(dir.path().join("direct")).expect("create");
    let mut off = 0u64;
    g.bench_function("pwrite_4KiB_std_file", |b| {
        b.iter(|| {
            direct.write_all_at(&buf, off % (64 << 20)).expect("write");
            off += 4096;
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    reader_scan,
    frame_walk,
    recovery,
    crafted_tail,
    storage_seam
);
criterion_main!(benches);
