//! Reading the log back: the reader's scan (every record out, payloads copied), the bare
//! frame walk over a segment held in memory (headers and CRCs only), and recovery of a
//! large log (`LogDir::recover`, what `Wal::open` runs first).
//!
//! ```text
//! cargo bench --bench log                          # recovery of a 1 GiB log
//! WALBENCH_RECOVERY_MIB=128 cargo bench --bench log  # smaller, for a quick run
//! ```
//!
//! The log is written once per run into a temporary directory and read from the page
//! cache: these are CPU figures. `walbench --suite` times opening a log from the device.

use actix_wal::log::scan::{SegmentCursor, SegmentData};
use actix_wal::log::{list_segments, LogDir, LogOptions, LogReader, LogWriter};
use actix_wal::storage::default_storage;
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

/// The frame walk alone: one 64 MiB segment already in memory, headers parsed and CRCs
/// checked, nothing copied. Recovery's inner loop.
fn frame_walk(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("frame_walk");
    g.sample_size(10);
    for record_bytes in [256usize, 4096] {
        let dir = tmp.path().join(format!("w{record_bytes}"));
        let bytes = build(&dir, 60, record_bytes);
        let storage = default_storage();
        let (segments, _) = list_segments(storage.as_ref(), &dir).expect("list");
        let seg = SegmentData::load(storage.as_ref(), &segments[0]).expect("load");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("segment_{record_bytes}B"), |b| {
            b.iter(|| {
                let mut cursor = SegmentCursor::new(seg.file.first_lsn, None, 1 << 20);
                let mut frames = 0u64;
                while let Some(f) = cursor.next_frame(&seg).expect("intact") {
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

criterion_group!(benches, reader_scan, frame_walk, recovery, storage_seam);
criterion_main!(benches);
