//! Rewind (`TruncateAfter`) and reset (`Reset`) on the running log. Each takes no other
//! message from its arrival to its answer: it first drains the queue (everything queued
//! is written and fsynced, so nothing is in flight while files are cut or removed), then
//! runs the file protocol of `docs/format.md` (`log/rewind.rs`) on the queue's thread, as
//! a checkpoint does. Waiters whose records it removes are never answered with success:
//! while it drains, nothing at or past the cut is answered, and afterwards those waiters
//! get [`WalError::TruncatedAway`].

use super::Queue;
use crate::error::WalError;
use crate::log::rewind::RewindFailure;
use crate::lsn::Lsn;
use crate::messages::{Reset, TruncateAfter};
use actix::prelude::*;
use futures::channel::oneshot;

/// A rewind or reset waiting for the queue to drain.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// Keep records up to this LSN.
    After(u64),
    /// Continue at this LSN with no record.
    Reset(u64),
}

type Reply = oneshot::Sender<Result<(), WalError>>;

impl Queue {
    /// The refusals that change nothing, checked at arrival and again once drained (a
    /// failed write meanwhile gives LSNs out again).
    fn check(&self, job: Job) -> Result<(), WalError> {
        let dir = self.writable_dir()?;
        let next_lsn = self.planner.next_lsn;
        // A rewind never cuts below the checkpoint, even where cursors or the retention
        // policy keep records below it (the first LSN is then lower).
        let first_lsn = dir.meta().current().map_or(next_lsn, |m| m.checkpoint());
        match job {
            Job::After(x) if x >= next_lsn => Err(WalError::LsnNotAssigned {
                lsn: Lsn(x),
                next_lsn: Lsn(next_lsn),
            }),
            Job::After(x) if x.saturating_add(1) < first_lsn => Err(WalError::BelowFirstLsn {
                lsn: Lsn(x),
                first_lsn: Lsn(first_lsn),
            }),
            Job::After(x) => self.batch_split_at(x).map_or(Ok(()), Err),
            Job::Reset(n) if n == 0 || n > crate::format::meta::MAX_RESET_LSN => {
                Err(WalError::LsnOutOfRange { lsn: Lsn(n) })
            }
            // Below the next LSN even on an empty log: those LSNs were given out (their
            // records checkpointed or rewound away), and an LSN is never given out twice.
            Job::Reset(n) if n < next_lsn => Err(WalError::WouldReuseLsns {
                lsn: Lsn(n),
                next_lsn: Lsn(next_lsn),
            }),
            _ => Ok(()),
        }
    }

    /// [`WalError::SplitsBatch`] if a cut after `x` falls inside an append batch whose
    /// waiter is still parked (its first record at or below `x`, its last above).
    fn batch_split_at(&self, x: u64) -> Option<WalError> {
        let replies = self.replies.borrow();
        let w = replies
            .waiters
            .iter()
            .find(|w| w.batch && w.reply.0 <= x && w.end > x + 1)?;
        Some(WalError::SplitsBatch {
            lsn: Lsn(x),
            first_lsn: w.reply,
            last_lsn: Lsn(w.end - 1),
        })
    }

    fn start(&mut self, job: Job, ctx: &mut Context<Self>) -> ResponseFuture<Result<(), WalError>> {
        let (tx, rx) = oneshot::channel();
        match self.check(job) {
            Err(e) => {
                let _ = tx.send(Err(e));
            }
            Ok(()) => {
                self.answer_limit = match job {
                    Job::After(x) => x + 1,
                    Job::Reset(_) => self.durable_end,
                };
                tracing::debug!(
                    ?job,
                    next_lsn = self.planner.next_lsn,
                    "rewind: draining the queue"
                );
                self.drain_then(job, tx, ctx);
            }
        }
        Box::pin(async move { rx.await.unwrap_or(Err(WalError::ShutDown)) })
    }

    /// Writes out everything queued, taking no other message meanwhile, then runs `job`.
    fn drain_then(&mut self, job: Job, tx: Reply, ctx: &mut Context<Self>) {
        if self.poisoned.is_none() && !self.idle() {
            self.holding = false;
            self.kick_now(ctx);
            if let Some(f) = &self.in_flight {
                let id = f.id;
                let done = f.done.clone().into_actor(self);
                ctx.wait(done.map(move |d, act, ctx| {
                    act.on_done(id, d, ctx);
                    act.drain_then(job, tx, ctx);
                }));
            } else {
                // Nothing could be dispatched this turn (a stashed append waits for room,
                // or a stop is on its way): look again on the next one.
                let turn = actix_rt::task::yield_now().into_actor(self);
                ctx.wait(turn.map(move |(), act, ctx| {
                    act.after_progress(ctx);
                    act.drain_then(job, tx, ctx);
                }));
            }
            return;
        }
        let result = self.check(job).and_then(|()| self.run(job));
        self.answer_limit = u64::MAX;
        match &result {
            // Removed records were never answered; the rest are durable.
            Ok(()) => self.fail_removed(),
            Err(_) => {
                self.answer_durable(self.durable_end);
            }
        }
        self.after_progress(ctx);
        let _ = tx.send(result);
    }

    /// The file protocol, with the queue drained (everything written is durable).
    fn run(&mut self, job: Job) -> Result<(), WalError> {
        let Some(dir) = &self.dir else {
            return Err(WalError::ShutDown);
        };
        let opts = self.cfg.log_options().recovery_options();
        let span = tracing::debug_span!("rewind", ?job);
        let _enter = span.enter();
        // The read index forgets what goes as soon as it is decided, before any file
        // changes: a read racing the rewind gets `NotFound`, never a cut short read.
        let outcome = match job {
            Job::After(x) if x + 1 == self.planner.next_lsn => return Ok(()),
            Job::After(x) => {
                let hint = self.index_hint(x + 1);
                let mut decided = || self.index_cut(x + 1);
                dir.truncate_after(x, hint, &opts, &mut decided)
                    .map(|cut| (cut.segment_first_lsn, cut.offset, x + 1))
            }
            Job::Reset(n) => {
                let caught_up = self.planner.next_lsn;
                let mut decided = || self.index_reset(n);
                dir.reset(n, caught_up, &opts, &mut decided)
                    .map(|()| (n, crate::format::SEGMENT_HEADER_BYTES as u64, n))
            }
        };
        match outcome {
            Ok((segment_first_lsn, offset, next_lsn)) => {
                if next_lsn > self.planner.next_lsn {
                    // A reset past the next LSN skipped LSNs it never gave out.
                    self.assigned_from = next_lsn;
                }
                self.planner.segment_first_lsn = segment_first_lsn;
                self.planner.offset = offset;
                self.planner.next_lsn = next_lsn;
                self.planner.files_epoch += 1;
                if let Some(dir) = &self.dir {
                    self.plain_segment = super::entry::plain_segment(&self.cfg, dir, &self.planner);
                }
                self.durable_end = next_lsn;
                if let Some(dir) = &self.dir {
                    dir.set_durable_end(next_lsn);
                }
                self.urgent_end = self.urgent_end.min(next_lsn);
                self.written_segment = Some(segment_first_lsn);
                match job {
                    Job::After(_) => self.index_cut_at(next_lsn, segment_first_lsn, offset),
                    Job::Reset(_) => self.index_reset(next_lsn),
                }
                self.refresh_disk_bytes();
                self.publish_cursors();
                Ok(())
            }
            Err(RewindFailure::Unchanged(e)) => Err(e),
            Err(RewindFailure::InDoubt(e)) => {
                self.poison(format!(
                    "{job:?} failed midway ({e}); the reopen completes it"
                ));
                Err(self.poisoned.clone().unwrap_or(e))
            }
        }
    }

    /// Fails every waiter still parked: the drain answered all those within the limit,
    /// so each one left covers a record that is gone.
    fn fail_removed(&mut self) {
        let mut replies = self.replies.borrow_mut();
        while let Some(w) = replies.waiters.pop_back() {
            {
                let lsn = w.reply;
                w.answer(Err(WalError::TruncatedAway { lsn }));
            }
        }
    }
}

impl Handler<TruncateAfter> for Queue {
    type Result = ResponseFuture<Result<(), WalError>>;

    fn handle(&mut self, msg: TruncateAfter, ctx: &mut Self::Context) -> Self::Result {
        self.start(Job::After(msg.0 .0), ctx)
    }
}

impl Handler<Reset> for Queue {
    type Result = ResponseFuture<Result<(), WalError>>;

    fn handle(&mut self, msg: Reset, ctx: &mut Self::Context) -> Self::Result {
        self.start(Job::Reset(msg.0 .0), ctx)
    }
}
