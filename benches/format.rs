//! The hot pieces of the write path, without I/O: encoding a frame (header, payload copy,
//! CRC), the CRC alone, assembling a write batch (LSNs, placement, frames) the way
//! the queue does for every append, and compressing a JSON-like payload and reading it
//! back (`WalConfig::compression`).
//!
//! ```text
//! cargo bench --bench format
//! ```

use actix_wal::format::frame::{encode_record, encode_transaction};
use actix_wal::internals::{Batch, Planner};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

const SIZES: [usize; 3] = [64, 256, 4096];

fn planner() -> Planner {
    Planner {
        segment_first_lsn: 1,
        offset: actix_wal::format::SEGMENT_HEADER_BYTES as u64,
        next_lsn: 1,
        segment_size_bytes: 64 << 20,
        max_record_bytes: 1 << 20,
        files_epoch: 0,
    }
}

/// One record's frame: 24-byte header, the payload copied once, CRC32 over both.
fn frame_encoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_record");
    for size in SIZES {
        let payload = vec![0xA5u8; size];
        let mut buf = Vec::with_capacity(size + 64);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                buf.clear();
                encode_record(&mut buf, black_box(7), 0, black_box(p));
                black_box(buf.len())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("encode_transaction_4x");
    let entries = vec![vec![0x5Au8; 256]; 4];
    let mut buf = Vec::with_capacity(4096);
    g.throughput(Throughput::Bytes(4 * 256));
    g.bench_function("4x256", |b| {
        b.iter(|| {
            buf.clear();
            encode_transaction(&mut buf, 7, 0, black_box(&entries));
            black_box(buf.len())
        })
    });
    g.finish();
}

/// The CRC alone (crc32fast picks the carry-less multiply kernel where the CPU has it).
fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32");
    for size in [256usize, 4096, 1 << 20] {
        let data = vec![0x3Cu8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| crc32fast::hash(black_box(d)))
        });
    }
    g.finish();
}

/// A write batch of 1,000 records, assembled as the queue does: each append gets its
/// LSN and place and is encoded into the batch's one buffer (reused, as the queue reuses
/// its spare buffers).
fn batch_assembly(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_1000_records");
    for size in SIZES {
        let payload = vec![0xA5u8; size];
        let mut spare = Vec::with_capacity(1000 * (size + 24));
        g.throughput(Throughput::Elements(1000));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                let mut pl = planner();
                let mut batch = Batch::with_buffer(&pl, std::mem::take(&mut spare));
                for _ in 0..1000 {
                    // A 1,000-record batch fits the planner's segment: cannot fail.
                    batch.push_record(&mut pl, black_box(p)).expect("fits");
                }
                let n = batch.bytes();
                spare = batch.buf;
                black_box(n)
            })
        });
    }
    g.finish();
}

/// A JSON-like record of `len` bytes: the same keys every time, values that vary.
fn json(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut s = String::from("{\"items\":[");
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!(
            "{{\"kind\":\"order\",\"user_id\":{},\"amount\":{}.{:02},\"token\":\"{:08x}\"}},",
            x % 100_000,
            (x >> 20) % 10_000,
            (x >> 40) % 100,
            (x >> 24) as u32
        ));
    }
    s.truncate(len);
    s.into_bytes()
}

/// LZ4 of a JSON-like payload as a compressed frame stores it, and back (bounded).
fn compression(c: &mut Criterion) {
    use actix_wal::format::compress::{decompress, lz4_stored};
    let mut g = c.benchmark_group("lz4");
    for size in [1024, 4096] {
        let p = json(size as u64, size);
        let stored = lz4_stored(&p).expect("JSON compresses");
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("compress", size), &p, |b, p| {
            b.iter(|| lz4_stored(black_box(p)))
        });
        g.bench_with_input(BenchmarkId::new("decompress", size), &stored, |b, s| {
            b.iter(|| decompress(black_box(s), 1 << 20))
        });
    }
    g.finish();
}

criterion_group!(benches, frame_encoding, crc, batch_assembly, compression);
criterion_main!(benches);
