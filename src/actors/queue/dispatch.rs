//! Batches out and back: dispatch the next batch when it is due (to the flusher, or on a
//! blocking thread in degraded mode), and, when it completes, answer its waiters or hand
//! the failure to `failure.rs`.

use super::Queue;
use crate::actors::flusher::{FlushFault, WriteBatch};
use crate::error::WalError;
use crate::health::AlertKind;
use crate::log::{Batch, BatchFailure};
use crate::stats::WalMode;
use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

/// How a dispatched batch ended.
#[derive(Clone)]
pub(super) enum Done {
    Written(Duration),
    Failed(BatchFailure),
    /// The flusher of this generation is dead (panic, closed mailbox, stall).
    Dead(u64, String),
}

/// The completion of the batch in flight, taken by the item `dispatch` spawns or, first,
/// by a `ctx.wait` on the same batch (queue full, synchronous mode, a rewind's drain);
/// `on_done` ignores the second. Both are polled by the queue's own task, with its one
/// waker, so a `RefCell` shares the future: `futures::Shared` would add, per batch, an
/// `Arc` with a `Mutex` and a waker list, and route the flusher's reply through its own
/// waker before the queue's (issue 23, item 3: a lone committer pays all of it).
#[derive(Clone)]
pub(super) struct DoneFuture(Rc<RefCell<DoneState>>);

enum DoneState {
    Running(LocalBoxFuture<'static, Done>),
    Finished(Done),
}

impl DoneFuture {
    fn new(fut: LocalBoxFuture<'static, Done>) -> DoneFuture {
        DoneFuture(Rc::new(RefCell::new(DoneState::Running(fut))))
    }
}

impl Future for DoneFuture {
    type Output = Done;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Done> {
        let mut state = self.0.borrow_mut();
        let done = match &mut *state {
            DoneState::Finished(d) => return Poll::Ready(d.clone()),
            DoneState::Running(fut) => std::task::ready!(fut.as_mut().poll(cx)),
        };
        *state = DoneState::Finished(done.clone());
        Poll::Ready(done)
    }
}

pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) batch: Arc<Batch>,
    pub(super) done: DoneFuture,
}

impl Queue {
    /// Dispatches the next batch if none is in flight and it is due; otherwise makes sure
    /// the buffered-flush timer runs.
    pub(super) fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() || self.poisoned.is_some() || self.holding {
            return;
        }
        let Some(front) = self.pending.front() else {
            return;
        };
        let due = self.urgent_end > front.first_lsn
            || front.slot.is_some()
            || self.pending.len() > 1
            || self.shutting_down
            || self.requested_mode == WalMode::Sync
            || front.bytes() * 2 >= self.cfg.max_batch_bytes;
        if !due {
            if self.timer.is_none() {
                let after = Duration::from_millis(self.cfg.flush_interval_ms);
                self.timer = Some(ctx.run_later(after, |act, ctx| {
                    act.timer = None;
                    act.urgent_end = act.urgent_end.max(act.planner.next_lsn);
                    act.kick(ctx);
                }));
            }
            return;
        }
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.rewrite_front_if_due();
        let Some(front) = self.pending.front() else {
            return;
        };
        // A new segment is created through the directory's path: it must still name the
        // directory this log locked, or the segment lands elsewhere (or beside a second
        // writer).
        if front.chunks.iter().any(|c| c.creates_segment) {
            if let Some(e) = self.dir_lost("create segment") {
                // Stopped on the next turn, not here: this may run inside the handler of
                // an append whose reply sender arrives only after the handler returns.
                ctx.spawn(ActorFutureExt::map(
                    fut::ready(()),
                    move |(), act: &mut Self, ctx| {
                        if act.poisoned.is_none() {
                            act.stop_with(e);
                        }
                        act.after_progress(ctx);
                    },
                ));
                return;
            }
        }
        let Some(batch) = self.pending.pop_front() else {
            return;
        };
        self.dispatch(Arc::new(batch), ctx);
    }

    pub(super) fn dispatch(&mut self, batch: Arc<Batch>, ctx: &mut Context<Self>) {
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        let fut: LocalBoxFuture<'static, Done> = match &self.flusher {
            Some(f) => {
                let generation = f.generation;
                let stall = Duration::from_millis(self.cfg.flusher_stall_timeout_ms);
                // Sent now, not at the future's first poll: the flusher starts on the batch
                // while the queue finishes its turn, and the request needs no clone of the
                // address (an actix `Addr` clone allocates twice).
                let sent = f.addr.send(WriteBatch {
                    batch: batch.clone(),
                });
                async move {
                    match actix_rt::time::timeout(stall, sent).await {
                        Ok(Ok(Ok(took))) => Done::Written(took),
                        Ok(Ok(Err(FlushFault::Failed(f)))) => Done::Failed(f),
                        Ok(Ok(Err(FlushFault::Panicked(p)))) => {
                            Done::Dead(generation, format!("flusher panicked: {p}"))
                        }
                        Ok(Ok(Err(FlushFault::Stale))) => {
                            Done::Dead(generation, "flusher was replaced".into())
                        }
                        Ok(Err(e)) => Done::Dead(generation, format!("flusher mailbox: {e}")),
                        Err(_) => Done::Dead(
                            generation,
                            format!("flusher stalled: no reply within {} ms", stall.as_millis()),
                        ),
                    }
                }
                .boxed_local()
            }
            None => {
                let writer = self.local_writer.clone();
                let b = batch.clone();
                async move {
                    let job = move || {
                        let started = Instant::now();
                        let mut w = match writer.lock() {
                            Ok(w) => w,
                            Err(poisoned) => poisoned.into_inner(),
                        };
                        w.write_batch(&b).map(|()| started.elapsed())
                    };
                    match actix_rt::task::spawn_blocking(job).await {
                        Ok(Ok(took)) => Done::Written(took),
                        Ok(Err(f)) => Done::Failed(f),
                        Err(e) => Done::Failed(BatchFailure::Sync(WalError::io(
                            "degraded write",
                            std::path::PathBuf::new(),
                            std::io::Error::other(format!("blocking writer failed: {e}")),
                        ))),
                    }
                }
                .boxed_local()
            }
        };
        let done = DoneFuture::new(fut);
        tracing::debug!(
            id,
            first_lsn = batch.first_lsn,
            end_lsn = batch.end_lsn,
            bytes = batch.bytes(),
            degraded = self.flusher.is_none(),
            "dispatch batch"
        );
        self.publish_queue();
        self.in_flight = Some(InFlight {
            id,
            batch,
            done: done.clone(),
        });
        let item = done
            .into_actor(self)
            .map(move |d, act, ctx| act.on_done(id, d, ctx));
        if self.requested_mode == WalMode::Sync {
            // Synchronous mode: take no other message until this one is durable.
            ctx.wait(item);
        } else {
            ctx.spawn(item);
        }
    }

    /// Stops taking messages until the batch in flight completes (queue full). Returns
    /// false when there is nothing in flight to wait for.
    pub(super) fn wait_in_flight(&mut self, ctx: &mut Context<Self>) -> bool {
        self.holding = false;
        if self.in_flight.is_none() {
            self.kick_now(ctx);
        }
        self.take_no_message_until_in_flight_done(ctx)
    }

    /// Takes no other message until the batch in flight, if any, completes (`ctx.wait`).
    /// Returns false when nothing is in flight.
    pub(super) fn take_no_message_until_in_flight_done(&mut self, ctx: &mut Context<Self>) -> bool {
        match &self.in_flight {
            Some(f) => {
                let id = f.id;
                ctx.wait(
                    f.done
                        .clone()
                        .into_actor(self)
                        .map(move |d, act, ctx| act.on_done(id, d, ctx)),
                );
                true
            }
            None => false,
        }
    }

    pub(super) fn kick_now(&mut self, ctx: &mut Context<Self>) {
        self.urgent_end = self.urgent_end.max(self.planner.next_lsn);
        self.kick(ctx);
    }

    pub(super) fn on_done(&mut self, id: u64, done: Done, ctx: &mut Context<Self>) {
        if self.in_flight.as_ref().map(|f| f.id) != Some(id) {
            return; // already handled (a wait and a spawned item share one completion)
        }
        let Some(InFlight { batch, .. }) = self.in_flight.take() else {
            return;
        };
        if self.poisoned.is_some() {
            // Stopped while this batch was in flight (a health check found the directory
            // gone): its waiters were answered with the error already.
            if let Done::Dead(generation, reason) = done {
                self.flusher_dead(generation, reason);
            }
            self.after_progress(ctx);
            return;
        }
        match done {
            Done::Written(took) => {
                let answered = self.on_written(batch, took);
                // The hold lets the callers just answered join the next batch; when that
                // batch is already closed (a later one gathers), holding only idles the disk.
                if answered > 1
                    && self.pending.len() <= 1
                    && self.requested_mode == WalMode::Async
                    && !self.shutting_down
                {
                    self.holding = true;
                    ctx.spawn(
                        actix_rt::task::yield_now()
                            .into_actor(self)
                            .map(|_, act, ctx| {
                                act.holding = false;
                                act.after_progress(ctx);
                            }),
                    );
                }
            }
            Done::Failed(BatchFailure::Write(e)) => self.on_write_failed(&batch, e),
            Done::Failed(BatchFailure::Sync(e)) => self.on_sync_failed(&batch, e),
            Done::Failed(f @ BatchFailure::Unrepaired { .. }) => self.poison(f.to_string()),
            Done::Failed(BatchFailure::Removed(e)) => self.stop_with(e),
            Done::Failed(BatchFailure::Fenced) => {
                let generation = self.flusher.as_ref().map_or(0, |f| f.generation);
                self.flusher_dead(generation, "flusher was fenced off".into());
                self.requeue(&batch);
            }
            Done::Dead(generation, reason) => {
                self.flusher_dead(generation, reason);
                // Written again, by the degraded path, at the offsets the queue owns.
                self.requeue(&batch);
            }
        }
        self.after_progress(ctx);
    }

    pub(super) fn requeue(&mut self, batch: &Arc<Batch>) {
        self.pending.push_front(Batch::clone(batch));
        self.urgent_end = self.urgent_end.max(batch.end_lsn);
    }

    /// Completes a written batch; returns how many durable waiters it answered.
    pub(super) fn on_written(&mut self, batch: Arc<Batch>, took: Duration) -> usize {
        self.sync_failures_in_row = 0;
        self.disk_has_room();
        self.durable_end = batch.end_lsn;
        if let Some(dir) = &self.dir {
            dir.set_durable_end(batch.end_lsn);
        }
        self.index_written(&batch);
        self.written_segment = batch
            .chunks
            .last()
            .map(|c| c.segment_first_lsn)
            .or(self.written_segment);
        self.queued_bytes -= batch.bytes();
        self.queued_entries -= batch.records;
        self.stats.flushes += 1;
        self.stats.entries_written += batch.records as u64;
        self.stats.bytes_written += batch.bytes() as u64;
        self.stats.last_flush_us = took.as_micros() as u64;
        self.stats.flush_us_total += self.stats.last_flush_us;
        if batch.chunks.iter().any(|c| c.creates_segment) {
            self.stats.rollover_flushes += 1;
            self.stats.rollover_flush_us_total += self.stats.last_flush_us;
        }
        let m = &self.metrics;
        m.flushes.increment(1);
        m.entries_written.increment(batch.records as u64);
        m.bytes_written.increment(batch.bytes() as u64);
        m.flush_duration.record(took.as_secs_f64());
        m.batch_entries.record(batch.records as f64);
        self.slots_written(&batch);
        let answered = self.answer_durable(batch.end_lsn);
        let flush_ms = took.as_secs_f64() * 1000.0;
        let limit = self.cfg.alert_flush_ms as f64;
        self.alerts
            .update(AlertKind::FlushLatency, flush_ms > limit, flush_ms, limit);
        for chunk in batch.chunks.iter().filter(|c| c.creates_segment) {
            self.count_new_segment(chunk.segment_first_lsn);
        }
        if let Ok(b) = Arc::try_unwrap(batch) {
            if self.spare.len() < 2 {
                self.spare.push((b.buf, b.frames));
            }
        }
        answered
    }

    /// Answers the waiters whose LSNs are all below `end` (durable), but none past the
    /// limit a rewind in progress set; returns how many durable appends it answered.
    pub(super) fn answer_durable(&mut self, end: u64) -> usize {
        let end = end.min(self.answer_limit);
        let now = Instant::now();
        let mut answered = 0;
        let mut replies = self.replies.borrow_mut();
        while replies.waiters.front().is_some_and(|w| w.end <= end) {
            if let Some(w) = replies.waiters.pop_front() {
                if let Some(since) = w.since {
                    self.metrics
                        .commit_duration
                        .record(now.duration_since(since).as_secs_f64());
                    answered += 1;
                }
                let r = Ok(w.reply);
                w.answer(r);
            }
        }
        answered
    }

    pub(super) fn after_progress(&mut self, ctx: &mut Context<Self>) {
        self.publish_queue();
        self.kick(ctx);
        self.admit_stash(ctx);
        self.finish_shutdown_if_idle(ctx);
    }
}
