//! Cursors and retention on the queue's thread (issue 22, item 3): `OpenCursor`,
//! `AdvanceCursor`, `RemoveCursor`, `ListCursors`, the checkpoint's retention run and the
//! periodic one for `retention_secs`; after each run, the read index forgets what was
//! removed, and the cursors' gauges and the `CursorInvalidated` alert are updated. The
//! decisions and the file operations are in `log/retention.rs`; like `TruncateBefore`,
//! each runs here, where the directory is owned (a `META` replace is two fsyncs).

use super::Queue;
use crate::cursor::{AdvanceCursor, CursorInfo, ListCursors, OpenCursor, RemoveCursor};
use crate::error::WalError;
use crate::format::meta::{CursorMeta, LogMeta};
use crate::health::AlertKind;
use crate::log::retention::lag_bytes;
use crate::log::{Retained, SegmentUse};
use crate::lsn::Lsn;
use actix::prelude::*;

impl Queue {
    /// After a retention run: the read index forgets the removed segments and starts at
    /// the new first LSN, the disk figures are recounted if files went (or a removal
    /// failed), and the cursors' gauges and alert are updated. Then the removal that
    /// failed in it, if one did: the run's changes to `META` stand all the same.
    pub(super) fn retained(&mut self, r: Retained) -> Result<Retained, WalError> {
        self.index_truncated(&r.removed, r.first_lsn);
        if let (Some(first_lsn), Some(dir)) = (self.written_segment, &self.dir) {
            let written = dir.path().join(crate::log::segment_name(first_lsn));
            if r.removed.contains(&written) {
                self.written_segment = None;
            }
        }
        if !r.removed.is_empty() || r.removal_failed.is_some() {
            self.refresh_disk_bytes();
        } else {
            self.segment_sizes = r.segments.clone();
        }
        for (name, held) in &r.invalidated {
            self.cursor_invalidated(name, *held);
        }
        self.publish_cursors();
        match r.removal_failed {
            Some(e) => Err(e),
            None => Ok(r),
        }
    }

    /// The cursor `name` was found invalidated, having held `held_bytes`: counted and
    /// alerted, once per cursor (one alert each, even while another is still listed).
    fn cursor_invalidated(&mut self, name: &str, held_bytes: u64) {
        if self.invalidated_cursors.contains_key(name) {
            return;
        }
        self.invalidated_cursors
            .insert(name.to_string(), held_bytes);
        self.metrics.cursors_invalidated.increment(1);
        self.alerts.event(
            AlertKind::CursorInvalidated,
            held_bytes as f64,
            self.cfg.max_cursor_lag_bytes as f64,
        );
        tracing::warn!(cursor = %name, held_bytes, "cursor invalidated");
    }

    /// `result` with the bytes an invalidated cursor held filled in, where this log knows
    /// them (`META` keeps only that it was invalidated).
    pub(super) fn with_held_bytes<T>(&self, result: Result<T, WalError>) -> Result<T, WalError> {
        result.map_err(|e| match e {
            WalError::CursorInvalidated {
                name,
                lsn,
                lag_bytes: 0,
            } => {
                let lag_bytes = self.invalidated_cursors.get(&name).copied().unwrap_or(0);
                WalError::CursorInvalidated {
                    name,
                    lsn,
                    lag_bytes,
                }
            }
            e => e,
        })
    }

    /// Runs retention with no other change (the `retention_secs` timer): segments that
    /// aged out of the policy go. Skipped while the log is poisoned, shut down or in a
    /// rewind. A failure is logged; the next run tries again.
    pub(super) fn run_retention(&mut self) {
        if self.refusal().is_some() || self.answer_limit != u64::MAX {
            return;
        }
        let Some(dir) = &self.dir else {
            return;
        };
        let run = dir.retain_with(|_| {}).and_then(|r| self.retained(r));
        if let Err(e) = run {
            tracing::warn!(error = %e, "retention run failed");
        }
    }

    /// The cursors of `meta` with their lag, from the segment sizes last counted.
    fn cursor_infos(&self, meta: Option<&LogMeta>) -> Vec<CursorInfo> {
        let Some(meta) = meta else {
            return Vec::new();
        };
        meta.cursors
            .iter()
            .map(|c| cursor_info(c, &self.segment_sizes, self.durable_end))
            .collect()
    }

    /// The cursors now (for `Health` and `ListCursors`).
    pub(super) fn current_cursors(&self) -> Vec<CursorInfo> {
        let meta = self.dir.as_ref().and_then(|d| d.meta().current());
        self.cursor_infos(meta.as_deref())
    }

    /// Bytes of the segments wholly below the checkpoint: what retention (or a cursor)
    /// keeps beyond it.
    pub(super) fn retained_bytes(&self) -> u64 {
        let Some(meta) = self.dir.as_ref().and_then(|d| d.meta().current()) else {
            return 0;
        };
        let c = meta.checkpoint();
        self.segment_sizes
            .windows(2)
            .take_while(|w| w[1].first_lsn <= c)
            .map(|w| w[0].size_bytes)
            .sum()
    }

    /// Publishes the cursor gauges (count, largest lag, each cursor's lag) and the
    /// retained bytes, and evaluates whether any invalidated cursor is left (the alert
    /// clears once none is).
    pub(super) fn publish_cursors(&mut self) {
        let cursors = self.current_cursors();
        self.metrics.cursors.set(cursors.len() as f64);
        let max_lag = cursors
            .iter()
            .filter(|c| !c.invalidated)
            .map(|c| c.lag_bytes)
            .max()
            .unwrap_or(0);
        self.metrics.cursor_max_lag_bytes.set(max_lag as f64);
        self.metrics
            .retained_bytes
            .set(self.retained_bytes() as f64);
        for c in &cursors {
            crate::metrics::cursor_lag(&c.name, c.lag_bytes, c.lag_records);
        }
        // Cursors found invalidated otherwise than by a run of this log (at open: by a
        // run before a restart or a crash) are alerted too; the ones no longer listed
        // are forgotten.
        for c in cursors.iter().filter(|c| c.invalidated) {
            self.cursor_invalidated(&c.name, 0);
        }
        self.invalidated_cursors
            .retain(|name, _| cursors.iter().any(|c| c.invalidated && c.name == *name));
        let invalidated = cursors.iter().filter(|c| c.invalidated).count();
        if invalidated == 0 {
            self.alerts.update(
                AlertKind::CursorInvalidated,
                false,
                0.0,
                self.cfg.max_cursor_lag_bytes as f64,
            );
        }
    }
}

/// `c` with its lag over `segments` (in LSN order) at the durable end `durable_end`.
fn cursor_info(c: &CursorMeta, segments: &[SegmentUse], durable_end: u64) -> CursorInfo {
    CursorInfo {
        name: c.name.clone(),
        lsn: Lsn(c.lsn),
        invalidated: c.invalidated,
        lag_records: durable_end.saturating_sub(c.lsn),
        lag_bytes: match c.invalidated {
            true => 0,
            false => lag_bytes(segments, c.lsn),
        },
    }
}

impl Handler<OpenCursor> for Queue {
    type Result = Result<CursorMeta, WalError>;

    fn handle(&mut self, msg: OpenCursor, _: &mut Self::Context) -> Self::Result {
        let dir = self.writable_dir()?;
        let opened = dir.open_cursor(&msg.0, self.cfg.max_cursors, self.cfg.max_cursor_name_bytes);
        let (cursor, r) = self.with_held_bytes(opened)?;
        match r {
            // The cursor stands even if the run before it left segments to remove (logged
            // by the run; the next one removes them).
            Some(r) => drop(self.retained(r)),
            None => self.publish_cursors(),
        }
        Ok(cursor)
    }
}

impl Handler<AdvanceCursor> for Queue {
    type Result = Result<(), WalError>;

    fn handle(&mut self, msg: AdvanceCursor, _: &mut Self::Context) -> Self::Result {
        let dir = self.writable_dir()?;
        let advanced = dir.advance_cursor(&msg.name, msg.lsn, self.durable_end);
        if let Some(r) = self.with_held_bytes(advanced)? {
            self.retained(r)?;
        }
        Ok(())
    }
}

impl Handler<RemoveCursor> for Queue {
    type Result = Result<(), WalError>;

    fn handle(&mut self, msg: RemoveCursor, _: &mut Self::Context) -> Self::Result {
        let dir = self.writable_dir()?;
        let r = dir.remove_cursor(&msg.0)?;
        self.retained(r).map(drop)
    }
}

impl Handler<ListCursors> for Queue {
    type Result = Result<Vec<CursorInfo>, WalError>;

    fn handle(&mut self, _: ListCursors, _: &mut Self::Context) -> Self::Result {
        if self.dir.is_none() {
            return Err(WalError::ShutDown);
        }
        Ok(self.current_cursors())
    }
}
