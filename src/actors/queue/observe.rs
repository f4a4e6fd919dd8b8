//! What the queue shows: its gauges and alerts (`metrics`), `GetStats` and `GetHealth`.

use super::Queue;
use crate::health::{AlertKind, GetHealth, Health};
use crate::lsn::Lsn;
use crate::messages::GetStats;
use crate::metrics::mode_value;
use actix::prelude::*;
use std::time::Instant;

impl Queue {
    /// Sums the sizes of every segment file and spare (at open, after a truncation or a
    /// rewind): a listing, then an `open` and `fstat` per file.
    pub(super) fn refresh_disk_bytes(&mut self) {
        let Some(dir) = &self.dir else {
            return;
        };
        let Ok((segments, temps)) = dir.list() else {
            return;
        };
        let storage = dir.storage();
        self.spare_bytes = sum_sizes(storage.as_ref(), &temps);
        let sizes: Vec<(u64, u64)> = segments
            .iter()
            .filter_map(|s| {
                let size = storage.open(&s.path, false).and_then(|f| f.size_bytes());
                size.ok().map(|b| (s.first_lsn, b))
            })
            .collect();
        self.disk_bytes = sizes.iter().map(|(_, b)| b).sum();
        self.counted_tail = sizes.last().copied();
        self.segment_sizes = sizes
            .iter()
            .map(|&(first_lsn, size_bytes)| crate::log::SegmentUse {
                first_lsn,
                size_bytes,
                age_secs: 0,
            })
            .collect();
        self.publish_disk_bytes();
    }

    /// After a batch created the segment starting at `first_lsn`: sizes it and the segment
    /// counted last (the one the log left, which may have grown), and nothing else. A full
    /// [`Queue::refresh_disk_bytes`] here would open every segment at every rollover, on
    /// the commit path: milliseconds with thousands of segments.
    pub(super) fn count_new_segment(&mut self, first_lsn: u64) {
        let Some(dir) = &self.dir else {
            return;
        };
        // The spare, if one was prepared, is now the new segment, counted below.
        self.spare_bytes = 0;
        let size = |lsn: u64| segment_bytes(dir, lsn);
        if let Some((lsn, counted)) = self.counted_tail {
            if lsn != first_lsn {
                // Gone (a truncation raced the rollover) counts as no bytes.
                let now = size(lsn).unwrap_or(0);
                self.disk_bytes = (self.disk_bytes + now).saturating_sub(counted);
            } else {
                self.disk_bytes = self.disk_bytes.saturating_sub(counted);
            }
        }
        let new = size(first_lsn).unwrap_or(0);
        self.disk_bytes += new;
        if let Some((lsn, _)) = self.counted_tail {
            let now = size(lsn).unwrap_or(0);
            if let Some(s) = self.segment_sizes.iter_mut().find(|s| s.first_lsn == lsn) {
                s.size_bytes = now;
            }
        }
        self.segment_sizes.retain(|s| s.first_lsn < first_lsn);
        self.segment_sizes.push(crate::log::SegmentUse {
            first_lsn,
            size_bytes: new,
            age_secs: 0,
        });
        self.counted_tail = Some((first_lsn, new));
        self.publish_disk_bytes();
        if self
            .dir
            .as_ref()
            .and_then(|d| d.meta().current())
            .is_some_and(|m| !m.cursors.is_empty())
        {
            self.publish_cursors();
        }
    }

    /// Sizes the spares (`.wal.tmp` files) and the segment being written again: at a
    /// health check.
    fn recount_growing(&mut self) {
        let Some(dir) = &self.dir else {
            return;
        };
        if let Ok((_, temps)) = dir.list() {
            self.spare_bytes = sum_sizes(dir.storage().as_ref(), &temps);
        }
        // The segment being written grows with each batch when it was not preallocated:
        // sized again here, not per batch.
        if let Some((lsn, counted)) = self.counted_tail {
            if let Some(now) = segment_bytes(dir, lsn) {
                self.disk_bytes = (self.disk_bytes + now).saturating_sub(counted);
                self.counted_tail = Some((lsn, now));
                if let Some(s) = self.segment_sizes.iter_mut().find(|s| s.first_lsn == lsn) {
                    s.size_bytes = now;
                }
            }
        }
        self.publish_disk_bytes();
    }

    /// Bytes of the log's files on disk: segments and spares.
    fn total_disk_bytes(&self) -> u64 {
        self.disk_bytes + self.spare_bytes
    }

    /// Publishes the bytes on disk and evaluates the log-size alert.
    fn publish_disk_bytes(&mut self) {
        let total = self.total_disk_bytes();
        self.metrics.disk_bytes.set(total as f64);
        let limit = self.cfg.alert_wal_bytes;
        self.alerts.update(
            AlertKind::WalSize,
            total > limit,
            total as f64,
            limit as f64,
        );
    }

    /// Publishes the queue gauges and evaluates the queue-depth alert (once per batch
    /// event, not per append).
    pub(super) fn publish_queue(&mut self) {
        self.metrics.queue_depth.set(self.queued_entries as f64);
        self.metrics.queue_bytes.set(self.queued_bytes as f64);
        let limit = self.cfg.alert_queue_depth;
        self.alerts.update(
            AlertKind::QueueDepth,
            self.queued_entries > limit,
            self.queued_entries as f64,
            limit as f64,
        );
    }

    pub(super) fn publish_mode(&mut self) {
        let mode = self.mode();
        self.metrics.mode.set(mode_value(mode));
        let healthy = self.flusher.is_some();
        self.metrics
            .flusher_healthy
            .set(if healthy { 1.0 } else { 0.0 });
        self.alerts.update(
            AlertKind::FlusherUnhealthy,
            !healthy && !self.shutting_down,
            if healthy { 1.0 } else { 0.0 },
            1.0,
        );
    }
}

impl Handler<GetStats> for Queue {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let mut s = self.stats.clone();
        s.mode = self.mode();
        s.requested_mode = self.requested_mode;
        s.next_lsn = Lsn(self.planner.next_lsn);
        s.durable_lsn = Lsn(self.durable_end - 1);
        s.queue_depth = self.queued_entries;
        s.queue_bytes = self.queued_bytes;
        if let Some(m) = self.dir.as_ref().and_then(|d| d.meta().current()) {
            s.first_lsn = Lsn(m.first_lsn);
            s.checkpoint_lsn = Lsn(m.checkpoint());
        }
        MessageResult(s)
    }
}

impl Handler<GetHealth> for Queue {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        self.verify_files("health check");
        self.recount_growing();
        self.publish_cursors();
        let meta = self.dir.as_ref().and_then(|d| d.meta().current());
        MessageResult(Health {
            first_lsn: Lsn(meta.as_ref().map_or(0, |m| m.first_lsn)),
            checkpoint_lsn: Lsn(meta.as_ref().map_or(0, |m| m.checkpoint())),
            retained_bytes: self.retained_bytes(),
            cursors: self.current_cursors(),
            healthy: self.poisoned.is_none() && !self.shutting_down && self.disk_full_failures == 0,
            mode: self.mode(),
            flusher_healthy: self.flusher.is_some(),
            poisoned: self.poisoned.is_some(),
            queue_depth: self.queued_entries,
            last_flush_ms: self.stats.last_flush_us as f64 / 1000.0,
            disk_bytes: self.total_disk_bytes(),
            active_alerts: self.alerts.active(),
        })
    }
}

impl Queue {
    /// A message reaches the handler: the clock is read once, for
    /// [`crate::metrics::ENQUEUE_WAIT`] (the time since the message was built, one sample
    /// per stamped message) and for the commit latency, which counts from here.
    pub(super) fn arrived(&self, options: &crate::messages::AppendOptions) -> Instant {
        self.arrived_at(options, Instant::now())
    }

    /// [`Self::arrived`] with the clock read already (`now`), for entries taken together
    /// from the intake (`intake.rs`): one sample each still.
    pub(super) fn arrived_at(
        &self,
        options: &crate::messages::AppendOptions,
        now: Instant,
    ) -> Instant {
        if let Some(built) = options.built_at {
            self.metrics
                .enqueue_wait
                .record(now.saturating_duration_since(built).as_secs_f64());
        }
        now
    }
}

/// The size of the segment starting at `lsn` (`None`: gone, or not readable).
fn segment_bytes(dir: &crate::log::LogDir, lsn: u64) -> Option<u64> {
    let path = dir.path().join(crate::log::segment_name(lsn));
    dir.storage()
        .open(&path, false)
        .and_then(|f| f.size_bytes())
        .ok()
}

/// The summed sizes of `files` (one gone meanwhile counts as no bytes).
fn sum_sizes(storage: &dyn crate::storage::Storage, files: &[std::path::PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|p| storage.open(p, false).and_then(|f| f.size_bytes()).ok())
        .sum()
}
