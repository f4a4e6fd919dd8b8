//! Time to open a large log: build one with the synchronous `LogWriter`, then time
//! `Wal::open` (recovery scans every segment) with the page cache warm and cold, beside a
//! plain sequential read of the same files.

use crate::baselines::read_dir_files;
use crate::sys;
use actix_wal::{LogOptions, LogWriter, Wal, WalConfig};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// What opening the log cost.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryFigures {
    /// Bytes of frames in the log.
    pub log_bytes: u64,
    /// Bytes of the segment files (the last one preallocated past its frames).
    pub file_bytes: u64,
    /// Records in the log.
    pub records: u64,
    /// Bytes per record.
    pub record_bytes: usize,
    /// `Wal::open` with the files in the page cache, seconds.
    pub open_warm_s: f64,
    /// `Wal::open` after the files were dropped from the page cache, seconds.
    pub open_cold_s: f64,
    /// Reading the files sequentially from the cache, seconds.
    pub read_warm_s: f64,
    /// Reading the files sequentially from the device, seconds.
    pub read_cold_s: f64,
}

impl RecoveryFigures {
    /// Log megabytes recovered per second, cold.
    pub fn cold_mb_per_s(&self) -> f64 {
        self.log_bytes as f64 / self.open_cold_s / 1e6
    }

    /// Log megabytes recovered per second, warm.
    pub fn warm_mb_per_s(&self) -> f64 {
        self.log_bytes as f64 / self.open_warm_s / 1e6
    }
}

/// Writes a log of about `bytes` of frames of `record_bytes` records into `dir`, in 4 MiB
/// write batches. Returns the frame bytes and records written.
pub fn build(dir: &Path, bytes: u64, record_bytes: usize) -> Result<(u64, u64), String> {
    let (mut log, _) = LogWriter::open(dir, LogOptions::default()).map_err(|e| e.to_string())?;
    let record = vec![0x3Cu8; record_bytes];
    let frame = (record_bytes + actix_wal::format::FRAME_HEADER_BYTES) as u64;
    let per_batch = ((4u64 << 20) / frame).max(1);
    let (mut written, mut records) = (0u64, 0u64);
    while written < bytes {
        for _ in 0..per_batch {
            log.append(&record).map_err(|e| e.to_string())?;
        }
        log.sync().map_err(|e| e.to_string())?;
        written += per_batch * frame;
        records += per_batch;
    }
    Ok((written, records))
}

async fn time_open(dir: &Path, cold: bool) -> Result<f64, String> {
    if cold {
        for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
            sys::evict(&e.path()).map_err(|e| e.to_string())?;
        }
    }
    let t = Instant::now();
    let wal = Wal::open(dir, WalConfig::default())
        .await
        .map_err(|e| format!("open: {e}"))?;
    let took = t.elapsed().as_secs_f64();
    wal.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    Ok(took)
}

/// Builds a log of `mib` MiB in `dir` and times opening it, warm and cold.
pub async fn measure(dir: &Path, mib: u64, record_bytes: usize) -> Result<RecoveryFigures, String> {
    let (log_bytes, records) = build(dir, mib << 20, record_bytes)?;
    let (file_bytes, read_cold_s) = read_dir_files(dir, true).map_err(|e| e.to_string())?;
    let (_, read_warm_s) = read_dir_files(dir, false).map_err(|e| e.to_string())?;
    let open_warm_s = time_open(dir, false).await?;
    let open_cold_s = time_open(dir, true).await?;
    Ok(RecoveryFigures {
        log_bytes,
        file_bytes,
        records,
        record_bytes,
        open_warm_s,
        open_cold_s,
        read_warm_s,
        read_cold_s,
    })
}
