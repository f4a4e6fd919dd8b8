//! Retention (issue 22's figure): disk use over a long run (`--retention-secs`, 10
//! minutes by default) with a paced writer, a checkpoint every 3 seconds at the durable
//! end, and a cursor that lags the log by 10 seconds, then stalls for the last third of
//! the run, until the cap (`max_cursor_lag_bytes`) invalidates it. Every 250 ms `Health`
//! is sampled: the bytes wholly below the checkpoint must stay within what retention and
//! the (valid) cursor may hold, plus at most one segment, and the disk use within the cap
//! plus the checkpoint's window.

use actix_wal::{Lsn, Wal, WalConfig, WalError};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Segment size of the run.
pub const SEGMENT_BYTES: u64 = 4 << 20;
/// `retention_bytes` of the run.
pub const RETENTION_BYTES: u64 = 16 << 20;
/// `max_cursor_lag_bytes` of the run.
pub const CAP_BYTES: u64 = 48 << 20;
/// Payload written per second (paced), bytes.
pub const WRITE_BYTES_PER_S: u64 = 2 << 20;
/// Seconds between checkpoints.
pub const CHECKPOINT_EVERY_S: u64 = 3;
/// Seconds the cursor lags the log while it follows.
pub const CURSOR_LAG_S: u64 = 10;

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionFigures {
    /// Seconds run.
    pub seconds: f64,
    /// Payload bytes written.
    pub written_bytes: u64,
    /// Health samples taken.
    pub samples: u64,
    /// Samples whose bytes below the checkpoint exceeded the allowed bound.
    pub over_bound: u64,
    /// Samples (once enough was written) where retention kept less than it should, by
    /// more than one segment.
    pub under_kept: u64,
    /// The largest excess of bytes below the checkpoint over the bound (without the one
    /// segment of slack), bytes; negative when always under it.
    pub worst_excess_bytes: i64,
    /// Samples where the valid cursor stood below the log's first LSN (records it needs
    /// gone): must be 0.
    pub cursor_below_first: u64,
    /// Largest disk use (segments and spare), bytes.
    pub max_disk_bytes: u64,
    /// Largest disk use while the cursor was valid.
    pub max_disk_valid_bytes: u64,
    /// Largest disk use after the invalidation.
    pub max_disk_after_bytes: u64,
    /// Largest bytes below the checkpoint after the invalidation.
    pub max_retained_after_bytes: u64,
    /// Seconds into the run the cursor was invalidated (None: never).
    pub invalidated_at_s: Option<f64>,
    /// Seconds into the run the cursor stalled.
    pub stalled_at_s: f64,
    /// Checkpoints taken.
    pub checkpoints: u64,
}

impl RetentionFigures {
    /// The disk-use bound: the cap, the checkpoint's window of writes, a segment holding
    /// the checkpoint and the spare.
    pub fn disk_bound_bytes() -> u64 {
        CAP_BYTES + CHECKPOINT_EVERY_S * WRITE_BYTES_PER_S + 2 * SEGMENT_BYTES
    }
}

/// Runs the workload for `secs` seconds in `dir`.
pub async fn measure(dir: &Path, base: WalConfig, secs: f64) -> Result<RetentionFigures, String> {
    let cfg = base
        .segment_size_bytes(SEGMENT_BYTES)
        .retention_bytes(RETENTION_BYTES)
        .max_cursor_lag_bytes(CAP_BYTES);
    let err = |e: WalError| e.to_string();
    let wal = Wal::open(dir, cfg).await.map_err(err)?;
    let run = Duration::from_secs_f64(secs);
    let stall_at = run.mul_f64(2.0 / 3.0);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    // The paced writer: 20 records of 1 KiB every 10 ms.
    let writer = {
        let (wal, stop) = (wal.clone(), stop.clone());
        actix_rt::spawn(async move {
            let mut written = 0u64;
            let batch: Vec<Vec<u8>> = (0..20).map(|i| json_like(i, 1024)).collect();
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                wal.append_batch(batch.clone()).await?;
                written += 20 * 1024;
                next += Duration::from_millis(10);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    actix_rt::time::sleep(wait).await;
                }
            }
            Ok::<u64, WalError>(written)
        })
    };

    let cursor = wal.cursor("lagging").await.map_err(err)?;
    let mut seen: VecDeque<(Instant, Lsn)> = VecDeque::new();
    let mut f = RetentionFigures {
        stalled_at_s: stall_at.as_secs_f64(),
        worst_excess_bytes: i64::MIN,
        ..RetentionFigures::default()
    };
    let mut last_checkpoint = Instant::now();
    let mut last_advance = Instant::now();
    let mut valid = true;
    while started.elapsed() < run {
        actix_rt::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        let stats = wal.stats().await.map_err(err)?;
        let durable_end = Lsn(stats.durable_lsn.0 + 1);
        seen.push_back((now, durable_end));
        if now.duration_since(last_checkpoint) >= Duration::from_secs(CHECKPOINT_EVERY_S) {
            wal.truncate_before(durable_end).await.map_err(err)?;
            f.checkpoints += 1;
            last_checkpoint = now;
        }
        // The cursor follows 10 s behind, once a second, until it stalls.
        let following = started.elapsed() < stall_at;
        if valid && following && now.duration_since(last_advance) >= Duration::from_secs(1) {
            last_advance = now;
            while seen.len() > 1 && now.duration_since(seen[1].0).as_secs() >= CURSOR_LAG_S {
                seen.pop_front();
            }
            let (at, lsn) = seen[0];
            if now.duration_since(at).as_secs() >= CURSOR_LAG_S && lsn > cursor.lsn() {
                match cursor.advance(lsn).await {
                    Ok(()) => {}
                    Err(WalError::CursorInvalidated { .. }) => valid = false,
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        let h = wal.health().await.map_err(err)?;
        let info = h.cursors.iter().find(|c| c.name == "lagging");
        let cursor_valid = info.is_some_and(|c| !c.invalidated);
        if info.is_some_and(|c| !c.invalidated && c.lsn < h.first_lsn) {
            f.cursor_below_first += 1;
        }
        if !cursor_valid && f.invalidated_at_s.is_none() {
            f.invalidated_at_s = Some(started.elapsed().as_secs_f64());
            valid = false;
        }
        // What may be below the checkpoint: retention's bytes, or what the valid cursor
        // holds there (never more than the cap).
        let held = info
            .filter(|c| !c.invalidated && c.lsn < h.checkpoint_lsn)
            .map_or(0, |c| c.lag_bytes.min(CAP_BYTES));
        let bound = RETENTION_BYTES.max(held);
        let excess = h.retained_bytes as i64 - bound as i64;
        f.worst_excess_bytes = f.worst_excess_bytes.max(excess);
        if h.retained_bytes > bound + SEGMENT_BYTES {
            f.over_bound += 1;
        }
        // Retention keeps what it should: at least its bytes less one segment, once
        // that much lies below the checkpoint.
        let written_below = h.checkpoint_lsn.0.saturating_sub(1) * 1024;
        if written_below > RETENTION_BYTES + 2 * SEGMENT_BYTES
            && h.retained_bytes + SEGMENT_BYTES < RETENTION_BYTES
        {
            f.under_kept += 1;
        }
        f.samples += 1;
        f.max_disk_bytes = f.max_disk_bytes.max(h.disk_bytes);
        if f.invalidated_at_s.is_none() {
            f.max_disk_valid_bytes = f.max_disk_valid_bytes.max(h.disk_bytes);
        } else {
            f.max_disk_after_bytes = f.max_disk_after_bytes.max(h.disk_bytes);
            f.max_retained_after_bytes = f.max_retained_after_bytes.max(h.retained_bytes);
        }
    }
    stop.store(true, Ordering::Relaxed);
    f.written_bytes = writer.await.map_err(|e| e.to_string())?.map_err(err)?;
    f.seconds = started.elapsed().as_secs_f64();
    wal.shutdown().await.map_err(err)?;
    Ok(f)
}

/// A record of `len` bytes that looks like JSON (as an application's would).
fn json_like(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{{\"id\":{i},\"kind\":\"order\",\"items\":[").into_bytes();
    while v.len() < len {
        v.extend_from_slice(b"{\"sku\":\"A-1\",\"qty\":2},");
    }
    v.truncate(len);
    v
}
