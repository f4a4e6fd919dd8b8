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
    /// the new first LSN, the disk figures are recounted if files went, and the cursors'
    /// gauges and alert are updated.
    pub(super) fn retained(&mut self, r: &Retained) {
        self.index_truncated(&r.removed, r.first_lsn);
        if let (Some(first_lsn), Some(dir)) = (self.written_segment, &self.dir) {
            let written = dir.path().join(crate::log::segment_name(first_lsn));
            if r.removed.contains(&written) {
                self.written_segment = None;
            }
        }
        if !r.removed.is_empty() {
            self.refresh_disk_bytes();
        } else {
            self.segment_sizes = r.segments.clone();
        }
        for (name, held) in &r.invalidated {
            self.metrics.cursors_invalidated.increment(1);
            // One alert per cursor invalidated, even while another is still listed.
            self.alerts.event(
                AlertKind::CursorInvalidated,
                *held as f64,
                self.cfg.max_cursor_lag_bytes as f64,
            );
            tracing::warn!(cursor = %name, held_bytes = held, "cursor invalidated");
        }
        self.publish_cursors();
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
        match dir.retain_with(|_| {}) {
            Ok(r) => self.retained(&r),
            Err(e) => tracing::warn!(error = %e, "retention run failed"),
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
        let (cursor, r) =
            dir.open_cursor(&msg.0, self.cfg.max_cursors, self.cfg.max_cursor_name_bytes)?;
        if let Some(r) = r {
            self.retained(&r);
        } else {
            self.publish_cursors();
        }
        Ok(cursor)
    }
}

impl Handler<AdvanceCursor> for Queue {
    type Result = Result<(), WalError>;

    fn handle(&mut self, msg: AdvanceCursor, _: &mut Self::Context) -> Self::Result {
        let dir = self.writable_dir()?;
        if let Some(r) = dir.advance_cursor(&msg.name, msg.lsn, self.durable_end)? {
            self.retained(&r);
        }
        Ok(())
    }
}

impl Handler<RemoveCursor> for Queue {
    type Result = Result<(), WalError>;

    fn handle(&mut self, msg: RemoveCursor, _: &mut Self::Context) -> Self::Result {
        let dir = self.writable_dir()?;
        let r = dir.remove_cursor(&msg.0)?;
        self.retained(&r);
        Ok(())
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
