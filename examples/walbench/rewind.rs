//! Rewind cost: a log of `mib` MiB is built with the synchronous writer and opened; then
//! `truncate_after` removes one segment's worth of its tail, and then all of it but the
//! first record, each timed; beside the same number of plain file removals (files of the
//! segment size, written the same way, `unlink` each and one directory fsync: the floor)
//! and the time to read the removed bytes once from the page cache (the least a rewind
//! that rewrote or scanned them would cost). A rewind should cost its segment removals,
//! not its bytes.

use crate::baselines::read_dir_files;
use crate::recovery::build;
use actix_wal::{Lsn, Wal, WalConfig};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// What the two rewinds cost.
#[derive(Debug, Clone, Serialize)]
pub struct RewindFigures {
    /// Bytes of frames in the log before the rewinds.
    pub log_bytes: u64,
    /// Segments the small rewind removed (plus one cut).
    pub small_segments_removed: usize,
    /// The small rewind, milliseconds.
    pub small_ms: f64,
    /// Segments the big rewind removed (plus one cut).
    pub big_segments_removed: usize,
    /// Bytes the big rewind removed.
    pub big_bytes: u64,
    /// The big rewind, milliseconds.
    pub big_ms: f64,
    /// Reading the log's files once from the page cache, milliseconds.
    pub read_warm_ms: f64,
    /// Removing as many plain files of the segment size as the big rewind removed, and
    /// fsyncing the directory once, milliseconds.
    pub plain_removals_ms: f64,
}

/// Writes `n` files of `bytes` each into `dir` (4 MiB writes, fsynced), then times their
/// removal and one directory fsync.
fn plain_removals(dir: &Path, n: usize, bytes: u64) -> Result<f64, String> {
    use std::io::Write;
    let err = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(dir).map_err(err)?;
    let chunk = vec![0x3Cu8; 4 << 20];
    let paths: Vec<_> = (0..n).map(|i| dir.join(format!("plain-{i}"))).collect();
    for p in &paths {
        let mut f = std::fs::File::create(p).map_err(err)?;
        let mut left = bytes;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..k]).map_err(err)?;
            left -= k as u64;
        }
        f.sync_all().map_err(err)?;
    }
    let t = Instant::now();
    for p in &paths {
        std::fs::remove_file(p).map_err(err)?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

fn segment_count(dir: &Path) -> Result<usize, String> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .count())
}

/// Builds a log of `mib` MiB in `dir` (`record_bytes` records) and times two rewinds.
pub async fn measure(dir: &Path, mib: u64, record_bytes: usize) -> Result<RewindFigures, String> {
    let (log_bytes, records) = build(dir, mib << 20, record_bytes)?;
    let (_, read_warm_s) = read_dir_files(dir, false).map_err(|e| e.to_string())?;
    let cfg = WalConfig::default();
    let per_segment = cfg.segment_size_bytes / (record_bytes as u64 + 24);
    let wal = Wal::open(dir, cfg)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let before = segment_count(dir)?;
    let keep = records.saturating_sub(per_segment + per_segment / 2).max(1);
    let t = Instant::now();
    wal.truncate_after(Lsn(keep))
        .await
        .map_err(|e| format!("small rewind: {e}"))?;
    let small_ms = t.elapsed().as_secs_f64() * 1e3;
    let middle = segment_count(dir)?;
    let t = Instant::now();
    wal.truncate_after(Lsn(1))
        .await
        .map_err(|e| format!("big rewind: {e}"))?;
    let big_ms = t.elapsed().as_secs_f64() * 1e3;
    let after = segment_count(dir)?;
    if wal
        .append(b"after".to_vec())
        .await
        .map_err(|e| e.to_string())?
        != Lsn(2)
    {
        return Err("the append after the rewind did not get LSN 2".into());
    }
    wal.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    let segment_bytes = WalConfig::default().segment_size_bytes;
    let plain_removals_ms = plain_removals(&dir.join("plain"), before - after, segment_bytes)?;
    Ok(RewindFigures {
        log_bytes,
        small_segments_removed: before - middle,
        small_ms,
        big_segments_removed: middle - after,
        big_bytes: (keep - 1) * (record_bytes as u64 + 24),
        big_ms,
        read_warm_ms: read_warm_s * 1e3,
        plain_removals_ms,
    })
}
