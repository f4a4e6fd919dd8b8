//! One large batch flushed again and again: `records` buffered appends gather into one
//! batch, then `Flush` dispatches it (the suite's "batch" part).

use crate::log_under_test::{open, stats};
use crate::report::{new_histogram, CallerTime, Figures, Latency};
use crate::sys;
use actix_wal::{Append, Durability, WalConfig};
use futures::future::join_all;
use std::path::Path;
use std::time::{Duration, Instant};

/// The flush of one large batch, again and again for `seconds`: `records` buffered appends
/// of `record_bytes` gather into one batch, then `Flush` dispatches it. The latency is the
/// flusher's own write + fdatasync time per batch (`WalStats::last_flush_us`); the caller's
/// `Flush` round trip is reported beside it. The note counts batches that were split.
pub async fn batch_flush(
    dir: &Path,
    records: usize,
    record_bytes: usize,
    seconds: Duration,
    config: WalConfig,
) -> Result<Figures, String> {
    // No timer flush while a batch gathers: the Flush alone dispatches it.
    let config = WalConfig {
        durability: Durability::Buffered,
        flush_interval_ms: 600_000,
        ..config
    };
    let (wal, _) = open(dir, config).await?;
    let payload = vec![0x5Au8; record_bytes];
    let mut flush_us = new_histogram();
    let mut caller = new_histogram();
    let mut rounds = 0u64;
    let mut split = 0u64;
    let begin = Instant::now();
    while begin.elapsed() < seconds {
        let (_, before) = stats(&wal).await?;
        let sends = (0..records).map(|_| wal.queue().send(Append::new(payload.clone())));
        for r in join_all(sends).await {
            r.map_err(|e| format!("append: {e}"))?
                .map_err(|e| format!("append: {e}"))?;
        }
        let t = Instant::now();
        wal.flush().await.map_err(|e| format!("flush: {e}"))?;
        let took = t.elapsed();
        let (_, after) = stats(&wal).await?;
        if after.flushes - before.flushes != 1 {
            split += 1;
        }
        let _ = flush_us.record((after.last_flush_us * 1000).max(1));
        let _ = caller.record((took.as_nanos() as u64).max(1));
        rounds += 1;
    }
    let seconds = begin.elapsed().as_secs_f64();
    wal.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    let bytes = rounds * (records * record_bytes) as u64;
    Ok(Figures {
        system: "actix-wal".into(),
        note: format!(
            "{records}x{record_bytes} B batch{}",
            if split > 0 {
                format!(", {split} split")
            } else {
                String::new()
            }
        ),
        committers: 1,
        payload_bytes: records * record_bytes,
        seconds,
        commits: rounds,
        commits_per_s: rounds as f64 / seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
        disk_mb_per_s: 0.0,
        latency: Latency::of(&flush_us),
        fsyncs_per_s: Some(rounds as f64 / seconds),
        mean_batch: Some(records as f64),
        flusher_cpu: None,
        queue_thread_cpu: None,
        process_cpu: None,
        cpu_us_per_commit: None,
        peak_queue_bytes: None,
        peak_rss_bytes: sys::peak_rss_bytes(),
        caller: Some(CallerTime {
            what: "caller's Flush round trip".into(),
            latency: Latency::of(&caller),
        }),
        errors: 0,
    })
}
