//! The log's life from the caller's side: `SetMode` (async or synchronous group commit),
//! `TruncateBefore` (checkpoint), and `Shutdown` (drain, answer everyone,
//! settle the flusher, release the directory).

use super::Queue;
use crate::actors::flusher::Settle;
use crate::error::WalError;
use crate::lsn::Lsn;
use crate::messages::{SetMode, Shutdown, TruncateBefore};
use crate::stats::CommitMode;
use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Queue {
    pub(super) fn idle(&self) -> bool {
        self.in_flight.is_none()
            && (self.pending.is_empty() || self.poisoned.is_some())
            && self.stash.is_none()
            && self.intake.backlog.is_empty()
    }

    pub(super) fn finish_shutdown_if_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.shutting_down || !self.idle() || self.dir.is_none() {
            return;
        }
        if !self.settle_flusher(ctx) {
            return;
        }
        self.verify_files("shutdown");
        let result = match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        };
        self.index_close();
        // Release the lock file: the log can be opened again at once.
        self.dir = None;
        self.flusher = None;
        tracing::debug!(durable_lsn = self.durable_end - 1, "queue shut down");
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }

    /// Asks a live flusher to settle (see [`Settle`]) before the directory is released;
    /// true once it has (or there is no live flusher, or it did not answer within
    /// `flusher_stall_timeout_ms`: a stalled flusher is fenced off by the supervisor).
    fn settle_flusher(&mut self, ctx: &mut Context<Self>) -> bool {
        match self.settle {
            ShutdownSettle::Done => return true,
            ShutdownSettle::Waiting => return false,
            ShutdownSettle::NotAsked => {}
        }
        let live = self
            .flusher
            .as_ref()
            .filter(|f| f.generation == self.current_generation.load(Ordering::Acquire));
        let Some(f) = live else {
            self.settle = ShutdownSettle::Done;
            return true;
        };
        self.settle = ShutdownSettle::Waiting;
        let timeout = Duration::from_millis(self.cfg.flusher_stall_timeout_ms);
        let settled = actix_rt::time::timeout(timeout, f.addr.send(Settle));
        ctx.spawn(settled.into_actor(self).map(|res, act, ctx| {
            if !matches!(res, Ok(Ok(()))) {
                tracing::warn!("the flusher did not settle its spares before shutdown");
            }
            act.settle = ShutdownSettle::Done;
            act.finish_shutdown_if_idle(ctx);
        }));
        false
    }
}

/// Where a shutdown is in settling the flusher (see [`Queue::settle_flusher`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShutdownSettle {
    /// Not asked yet.
    NotAsked,
    /// Asked; the queue waits for its answer.
    Waiting,
    /// Settled, or nothing to settle.
    Done,
}

impl Handler<SetMode> for Queue {
    type Result = Result<(), WalError>;

    fn handle(&mut self, msg: SetMode, ctx: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.refusal() {
            return Err(e);
        }
        tracing::debug!(mode = ?msg.0, "mode switched");
        self.requested_mode = msg.0.into();
        self.publish_mode();
        if msg.0 == CommitMode::Sync {
            // Everything gathered so far goes out before the next message is taken.
            self.kick_now(ctx);
            self.take_no_message_until_in_flight_done(ctx);
        }
        Ok(())
    }
}

impl Handler<Shutdown> for Queue {
    type Result = ResponseFuture<Result<(), WalError>>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = futures::channel::oneshot::channel();
        if self.dir.is_none() {
            let _ = tx.send(Ok(()));
        } else {
            tracing::debug!(
                next_lsn = self.planner.next_lsn,
                "shutdown: flushing the queue"
            );
            self.shutting_down = true;
            self.shutdown_waiters.push(tx);
            self.kick_now(ctx);
            self.finish_shutdown_if_idle(ctx);
        }
        Box::pin(async move { rx.await.unwrap_or(Err(WalError::ShutDown)) })
    }
}

impl Handler<TruncateBefore> for Queue {
    type Result = Result<usize, WalError>;

    fn handle(&mut self, msg: TruncateBefore, _: &mut Self::Context) -> Self::Result {
        // A poisoned log changes nothing until it is reopened: a rewind it stopped in may
        // have left its intent in `META`, and a first LSN moved past that intent's cut (or
        // the segment it cuts removed) would leave the reopen nothing to complete it in.
        let dir = self.writable_dir()?;
        // Only records already durable may be checkpointed away.
        let below = Lsn(msg.0 .0.min(self.durable_end));
        // The checkpoint, then whatever the cursors and the retention policy no longer
        // hold (`log/retention.rs`; without either, everything below `below`).
        let r = dir.retain_with(|m| m.checkpoint_lsn = m.checkpoint().max(below.0))?;
        Ok(self.retained(r)?.removed.len())
    }
}
