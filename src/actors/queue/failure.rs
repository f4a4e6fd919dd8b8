//! When things go wrong: a failed write (cut back, its callers fail), a failed fsync
//! (never fsynced again: the batch is rewritten to a fresh segment, or the log is
//! poisoned), files or the directory removed under the log, and the flusher's death and
//! return, told by the supervisor (`EnterDegraded`, `AttachFlusher`, internal messages).

use super::{FlusherRef, Queue};
use crate::actors::flusher::Flusher;
use crate::actors::supervisor::FlusherDied;
use crate::error::WalError;
use crate::health::AlertKind;
use crate::log::Batch;
use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// From the supervisor: a healthy flusher to hand batches to (the log leaves degraded mode).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct AttachFlusher {
    /// The flusher.
    pub addr: Addr<Flusher>,
    /// Its generation.
    pub generation: u64,
    /// Restarts so far.
    pub restarts: u64,
}

/// From the supervisor: flusher `generation` is dead; write batches locally.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct EnterDegraded {
    /// The dead flusher's generation.
    pub generation: u64,
    /// Why it is considered dead.
    pub reason: String,
}

/// From the supervisor: a spare a dead flusher made and left (it was fenced off, the
/// directory perhaps released). Removed here only while the queue holds the directory:
/// on the queue's thread, where the directory is released, so never after that.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct RemoveLeftover(pub std::path::PathBuf);

impl Handler<RemoveLeftover> for Queue {
    type Result = ();

    fn handle(&mut self, msg: RemoveLeftover, _: &mut Self::Context) {
        let Some(dir) = &self.dir else {
            return; // released: recovery removes it at the next open
        };
        match dir.storage().remove(&msg.0) {
            Ok(()) => tracing::debug!(path = %msg.0.display(), "a dead flusher's spare removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %msg.0.display(), error = %e, "removing a dead flusher's spare failed; recovery removes it")
            }
        }
    }
}

impl Queue {
    /// A write failed and was cut back: that batch and every batch queued behind it (their
    /// LSNs follow it) fail; the log continues where that batch began.
    pub(super) fn on_write_failed(&mut self, batch: &Arc<Batch>, error: WalError) {
        tracing::warn!(%error, first_lsn = batch.first_lsn, "batch write failed; failing its callers");
        self.note_disk_full(&error);
        self.stats.write_failures += 1;
        self.metrics.write_failures.increment(1);
        self.fail_from(batch.first_lsn, &error);
        self.fail_slots(&error);
        self.pending.clear();
        self.queued_bytes = 0;
        self.queued_entries = 0;
        self.planner = batch.start;
        if batch.rewrite && batch.start.segment_first_lsn < batch.first_lsn {
            // The log would go on where the batch began, in the segment whose fsync failed
            // (cut back there): a file never fsynced again with anything new in it. The
            // next batch is a rewrite too, into a fresh segment named by its first LSN.
            self.rewrite_next = true;
        }
        if batch.rewrite && batch.start.segment_first_lsn == batch.first_lsn {
            // The rewrite removed the segment the batch began in (named by its first LSN)
            // and its cut-back created it again empty: the log goes on at its start, not
            // where the batch began in it (past slot frames, which take no LSN; they were
            // folded into `META` before the removal).
            self.planner.offset = crate::format::SEGMENT_HEADER_BYTES as u64;
        }
        self.urgent_end = 0;
        self.index_cut(batch.first_lsn);
    }

    /// After a failed rewrite ([`Self::on_write_failed`]), the batch about to be
    /// dispatched is planned into a fresh segment named by its first LSN (and the batches
    /// after it behind it), as [`Self::on_sync_failed`] plans a rewrite.
    pub(super) fn rewrite_front_if_due(&mut self) {
        if !self.rewrite_next {
            return;
        }
        let Some(front) = self.pending.pop_front() else {
            return;
        };
        self.rewrite_next = false;
        let (rewrite, mut after) = front.as_rewrite();
        for b in self.pending.iter_mut() {
            b.replan(&mut after);
        }
        self.planner = after;
        self.pending.push_front(rewrite);
    }

    /// An fsync failed: never fsync that file again. Write the batch, from our own copy,
    /// into a fresh segment named by its first LSN; only then acknowledge.
    pub(super) fn on_sync_failed(&mut self, batch: &Arc<Batch>, error: WalError) {
        self.note_disk_full(&error);
        self.stats.sync_failures += 1;
        self.metrics.sync_failures.increment(1);
        self.sync_failures_in_row += 1;
        tracing::warn!(%error, first_lsn = batch.first_lsn, attempt = self.sync_failures_in_row, "fsync failed; rewriting the batch to a fresh segment");
        if self.sync_failures_in_row > self.cfg.max_sync_retries {
            self.poison(format!(
                "fsync failed {} times in a row: {error}",
                self.sync_failures_in_row
            ));
            return;
        }
        let (rewrite, mut after) = batch.as_rewrite();
        for b in self.pending.iter_mut() {
            b.replan(&mut after);
        }
        self.planner = after;
        self.pending.push_front(rewrite);
        self.urgent_end = self.urgent_end.max(batch.end_lsn);
    }

    /// A write or fsync failed: if for a full disk, fires the `DiskFull` alert (once) and
    /// makes the log unhealthy until a batch is written again ([`Self::disk_has_room`]).
    /// Before the callers are failed, so that the alert is sent ahead of their replies.
    fn note_disk_full(&mut self, error: &WalError) {
        if matches!(error, WalError::DiskFull { .. }) {
            self.disk_full_failures += 1;
            let n = self.disk_full_failures as f64;
            self.alerts.update(AlertKind::DiskFull, true, n, 1.0);
        }
    }

    /// A batch was written: the disk has room again, if it had none.
    pub(super) fn disk_has_room(&mut self) {
        if self.disk_full_failures > 0 {
            self.disk_full_failures = 0;
            self.alerts.update(AlertKind::DiskFull, false, 0.0, 1.0);
        }
    }

    pub(super) fn poison(&mut self, reason: String) {
        let err = WalError::Poisoned { reason };
        if let Some(dir) = &self.dir {
            dir.mark_poisoned(&err.to_string());
        }
        self.stop_with(err);
    }

    /// Stops the log with `err`: every waiter and every later message gets it, nothing
    /// more is written, and health turns unhealthy. Used for poisoning and for files
    /// removed behind the log's back ([`WalError::FileRemoved`], which leaves no
    /// `POISONED` marker: the page cache is not in doubt, and the directory's path may now
    /// name another directory).
    pub(super) fn stop_with(&mut self, err: WalError) {
        tracing::error!(error = %err, "log stopped; reopen it to run recovery");
        self.stats.poisoned = true;
        self.metrics.poisoned.set(1.0);
        self.fail_from(0, &err);
        self.fail_slots(&err);
        self.pending.clear();
        self.queued_bytes = 0;
        self.queued_entries = 0;
        self.poisoned = Some(err);
    }

    /// Checks that the locked directory is still the one the log's path names (see
    /// [`LogDir::verify`]); on failure stops the log. True while all is well.
    pub(super) fn verify_dir(&mut self, op: &'static str) -> bool {
        if self.poisoned.is_some() {
            return false;
        }
        match self.dir_lost(op) {
            None => true,
            Some(e) => {
                self.stop_with(e);
                false
            }
        }
    }

    /// The error that must stop the log if the directory is no longer the one locked
    /// ([`WalError::FileRemoved`]) or a second opener holds a recreated `LOCK`
    /// ([`WalError::Locked`]). A check that merely failed (an I/O error from `stat`) is
    /// logged and stops nothing: the writes themselves report a disk that fails.
    pub(super) fn dir_lost(&self, op: &'static str) -> Option<WalError> {
        match self.dir.as_ref()?.verify(op) {
            Ok(()) => None,
            Err(e @ (WalError::FileRemoved { .. } | WalError::Locked { .. })) => Some(e),
            Err(e) => {
                tracing::warn!(error = %e, op, "could not check the log directory's lock");
                None
            }
        }
    }

    /// In the health check and at shutdown: the directory is still the one locked, and
    /// the segment the last batch went to still exists (records acknowledged into it went
    /// with it otherwise, and neither health nor shutdown may say all is well).
    pub(super) fn verify_files(&mut self, op: &'static str) {
        if !self.verify_dir(op) {
            return;
        }
        let (Some(dir), Some(first_lsn)) = (&self.dir, self.written_segment) else {
            return;
        };
        let path = dir.path().join(crate::log::segment_name(first_lsn));
        match dir.storage().open(&path, false) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.stop_with(WalError::FileRemoved { op, path })
            }
            // Anything else is for recovery at the next open to judge.
            _ => {}
        }
    }

    /// Answers `error` to every waiter whose message covers LSNs at or after `from`.
    pub(super) fn fail_from(&mut self, from: u64, error: &WalError) {
        let mut replies = self.replies.borrow_mut();
        while replies.waiters.back().is_some_and(|w| w.end > from) {
            if let Some(w) = replies.waiters.pop_back() {
                w.answer(Err(error.clone()));
            }
        }
    }

    pub(super) fn flusher_dead(&mut self, generation: u64, reason: String) {
        let _ = self.current_generation.compare_exchange(
            generation,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if self
            .flusher
            .as_ref()
            .is_some_and(|f| f.generation == generation)
        {
            self.flusher = None;
            self.stats.flusher_deaths += 1;
            self.stats.flusher_healthy = false;
            self.publish_mode();
            tracing::warn!(generation, %reason, "flusher dead: degraded mode (the queue writes and fsyncs itself)");
        }
        self.supervisor.do_send(FlusherDied {
            generation,
            reason,
            leftover: None,
        });
    }
}

impl Handler<AttachFlusher> for Queue {
    type Result = ();

    fn handle(&mut self, msg: AttachFlusher, ctx: &mut Self::Context) {
        if msg.restarts > self.stats.flusher_restarts {
            self.metrics
                .flusher_restarts
                .increment(msg.restarts - self.stats.flusher_restarts);
        }
        self.stats.flusher_restarts = msg.restarts;
        if self.shutting_down && self.dir.is_none() {
            return;
        }
        tracing::info!(
            generation = msg.generation,
            "flusher restarted: back to async mode"
        );
        self.flusher = Some(FlusherRef {
            addr: msg.addr,
            generation: msg.generation,
        });
        self.stats.flusher_healthy = true;
        self.publish_mode();
        self.kick(ctx);
    }
}

impl Handler<EnterDegraded> for Queue {
    type Result = ();

    fn handle(&mut self, msg: EnterDegraded, _: &mut Self::Context) {
        if self
            .flusher
            .as_ref()
            .is_some_and(|f| f.generation == msg.generation)
        {
            self.flusher = None;
            self.stats.flusher_deaths += 1;
            self.stats.flusher_healthy = false;
            self.publish_mode();
            tracing::warn!(generation = msg.generation, reason = %msg.reason, "flusher dead: degraded mode");
        }
    }
}
