//! Read figures, same run: `Wal::read(lsn)` of a recent record beside a bare `pread` of
//! the same bytes (the file opened once, and opened per read), and `Wal::read_range` of
//! 1,000 records of 256 B. Prints figures; asserts nothing.
//!
//! `cargo run --release --example readbench -- [reads]`

use actix_wal::{Lsn, Wal, WalConfig};
use clap::Parser;
use hdrhistogram::Histogram;
use std::os::unix::fs::FileExt;
use std::time::Instant;

const RECORDS: u64 = 20_000;
const PAYLOAD_BYTES: usize = 256;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "readbench",
    about = "Read figures of actix-wal beside a bare pread, in the same run"
)]
struct Args {
    /// Timed reads of each kind.
    #[arg(default_value_t = 20_000)]
    reads: u64,
}

fn line(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<34} p50 {:>7.1} us   p99 {:>7.1} us   ({} samples)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.len()
    );
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reads = Args::parse().reads;
    let d = tempfile::tempdir()?;
    let wal = Wal::open(d.path(), WalConfig::default()).await?;
    for chunk in 0..RECORDS / 500 {
        let appends = (0..500).map(|i| wal.append(vec![(chunk * 500 + i) as u8; PAYLOAD_BYTES]));
        for r in futures::future::join_all(appends).await {
            r?;
        }
    }
    let last = wal.flush().await?.0;
    let recent = |i: u64| Lsn(last - (i % 100));

    let mut h_read = Histogram::<u64>::new(3)?;
    let mut h_pread = Histogram::<u64>::new(3)?;
    let mut h_open_pread = Histogram::<u64>::new(3)?;
    // Where the records sit, from the log itself (not timed).
    let mut places = Vec::new();
    for i in 0..100 {
        let r = wal.read(recent(i)).await?;
        let path = d
            .path()
            .join(actix_wal::files::segment_name(r.segment_first_lsn.0));
        places.push((path, r.frame_offset));
    }
    let file = std::fs::File::open(&places[0].0)?;
    let mut buf = vec![0u8; PAYLOAD_BYTES + 24];
    for i in 0..reads {
        let t = Instant::now();
        let r = wal.read(recent(i)).await?;
        h_read.record(t.elapsed().as_nanos() as u64)?;
        std::hint::black_box(r);
        let (path, offset) = &places[(i % 100) as usize];
        let t = Instant::now();
        file.read_exact_at(&mut buf, *offset)?;
        h_pread.record(t.elapsed().as_nanos() as u64)?;
        let t = Instant::now();
        std::fs::File::open(path)?.read_exact_at(&mut buf, *offset)?;
        h_open_pread.record(t.elapsed().as_nanos() as u64)?;
    }
    // The hand-off alone: a read of an LSN the index does not hold goes to the pool and
    // back without touching a file.
    let mut h_hop = Histogram::<u64>::new(3)?;
    for _ in 0..reads {
        let t = Instant::now();
        let r = wal.read(Lsn(last + 1_000_000)).await;
        h_hop.record(t.elapsed().as_nanos() as u64)?;
        std::hint::black_box(r.is_err());
    }
    println!("{RECORDS} records of {PAYLOAD_BYTES} B; reads of the 100 most recent");
    line("Wal::read(lsn)", &h_read);
    line("bare pread, file open", &h_pread);
    line("bare open + pread", &h_open_pread);
    line("Wal::read, absent LSN (pool hop)", &h_hop);
    println!(
        "read / bare pread (p50): {:.1}x",
        h_read.value_at_quantile(0.5) as f64 / h_pread.value_at_quantile(0.5).max(1) as f64
    );

    let mut h_range = Histogram::<u64>::new(3)?;
    for i in 0..200u64 {
        let start = 1 + (i * 97) % (RECORDS - 1000);
        let t = Instant::now();
        let got = wal
            .read_range(Lsn(start)..Lsn(start + 1000), 1 << 20)
            .await?;
        h_range.record(t.elapsed().as_nanos() as u64)?;
        if got.len() != 1000 {
            println!(
                "range read from {start} returned a prefix of {} records",
                got.len()
            );
        }
    }
    line("read_range 1,000 x 256 B", &h_range);
    wal.shutdown().await?;
    Ok(())
}
