//! `walctl cursors`: the log's named cursors and what retention keeps, read offline from
//! `META` and the segment files (issue 22, item 3): the first LSN, the checkpoint, the
//! bytes on disk (the segments and a spare, as `Health::disk_bytes` counts them) and below
//! the checkpoint, and each cursor with its LSN, its state and the bytes of segments it
//! holds (from the segment holding its LSN to the newest).

use super::Failure;
use actix_wal::files::{list_segments, read_meta};
use actix_wal::storage::FsStorage;
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// One cursor as printed.
#[derive(Debug, Serialize)]
struct Shown {
    name: String,
    lsn: u64,
    invalidated: bool,
    lag_bytes: u64,
}

/// What `walctl cursors --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    first_lsn: u64,
    checkpoint_lsn: u64,
    disk_bytes: u64,
    retained_bytes: u64,
    cursors: Vec<Shown>,
}

/// `walctl cursors DIR [--json]`.
pub fn show(dir: &Path, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    // No log (exit 2), or one whose META recovery refuses before it scans (exit 1: both
    // copies lost), as the other commands say it: not a log with no cursors and a
    // checkpoint of 0. (What only a scan finds, `verify` says.)
    super::meta_cmd::log_there(dir)?;
    let meta = read_meta(&FsStorage, dir)
        .map_err(|e| match e.is_corruption() {
            true => Failure::Damaged(e.to_string()),
            false => Failure::Failed(e.to_string()),
        })?
        .unwrap_or_default();
    let (segments, temps) =
        list_segments(&FsStorage, dir).map_err(|e| Failure::Failed(e.to_string()))?;
    // A spare prepared beside a live log (or a leftover `.wal.tmp`): on disk, counted as
    // `Health::disk_bytes` counts it; one gone meanwhile counts as none.
    let temp_bytes: u64 = temps
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    // (first LSN, bytes) of each segment; one gone meanwhile counts as none.
    let sizes: Vec<(u64, u64)> = segments
        .iter()
        .map(|s| {
            (
                s.first_lsn,
                std::fs::metadata(&s.path).map_or(0, |m| m.len()),
            )
        })
        .collect();
    let checkpoint = meta.checkpoint();
    let held_from = |lsn: u64| -> u64 {
        let i = sizes.partition_point(|s| s.0 <= lsn).saturating_sub(1);
        sizes[i.min(sizes.len())..].iter().map(|s| s.1).sum()
    };
    let report = Report {
        first_lsn: meta.first_lsn,
        checkpoint_lsn: checkpoint,
        disk_bytes: sizes.iter().map(|s| s.1).sum::<u64>() + temp_bytes,
        retained_bytes: sizes
            .windows(2)
            .take_while(|w| w[1].0 <= checkpoint)
            .map(|w| w[0].1)
            .sum(),
        cursors: meta
            .cursors
            .iter()
            .map(|c| Shown {
                name: c.name.clone(),
                lsn: c.lsn,
                invalidated: c.invalidated,
                lag_bytes: if c.invalidated { 0 } else { held_from(c.lsn) },
            })
            .collect(),
    };
    let w = (|| -> io::Result<()> {
        if json {
            let line = serde_json::to_string(&report).map_err(io::Error::other)?;
            return writeln!(out, "{line}");
        }
        writeln!(out, "first lsn: {}", report.first_lsn)?;
        writeln!(out, "checkpoint: {}", report.checkpoint_lsn)?;
        writeln!(out, "disk bytes: {}", report.disk_bytes)?;
        writeln!(out, "bytes below the checkpoint: {}", report.retained_bytes)?;
        writeln!(out, "cursors: {}", report.cursors.len())?;
        for c in &report.cursors {
            let state = if c.invalidated {
                "invalidated"
            } else {
                "valid"
            };
            writeln!(
                out,
                "cursor {}: lsn {}, {state}, holds {} bytes",
                c.name, c.lsn, c.lag_bytes
            )?;
        }
        Ok(())
    })();
    w.map_err(Failure::output)
}
