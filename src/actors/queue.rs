//! The `Queue` actor: takes appends and commits, assigns LSNs in arrival order, encodes
//! frames once into the gathering batch, hands one batch at a time to the flusher while
//! the next gathers (double buffering), and answers each waiter when its LSN is durable.
//!
//! There is no timer on the durable path: a batch is dispatched as soon as the previous
//! one completes, so one committer waits about one fsync and many share it. `Buffered`
//! appends are answered at once and flushed within `flush_interval_ms`.
//!
//! The queue owns the file offsets (the [`Planner`]), so a batch can be written again at
//! the same places by whoever stands in for a dead flusher. When the flusher is dead the
//! queue is in degraded mode: it writes and fsyncs batches itself on a blocking thread.

use crate::actors::flusher::{FlushFault, Flusher, WriteBatch};
use crate::actors::supervisor::{FlusherDied, StopFlusher};
use crate::config::{WalConfig, WhenFull};
use crate::error::WalError;
use crate::health::{AlertKind, Alerts, GetHealth, Health};
use crate::log::batch::check_transaction;
use crate::log::{Batch, BatchFailure, LogDir, Planner, SegmentWriter};
use crate::lsn::Lsn;
use crate::messages::{
    Append, AppendOptions, Commit, Durability, DurabilityReply, Flush, GetStats, Notify, SetMode,
    Shutdown, TruncateBefore,
};
use crate::metrics::{mode_value, Metrics};
use crate::stats::{WalMode, WalStats};
use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

type Tx = OneshotSender<Result<Lsn, WalError>>;

/// A caller waiting for durability.
struct Waiter {
    /// LSN after the last one it covers: durable once `durable_end >= end`.
    end: u64,
    /// The value answered.
    reply: Lsn,
    /// When the message reached the queue (for the commit-latency histogram); `None` for
    /// waiters that are not durable appends.
    since: Option<Instant>,
    tx: Option<Tx>,
    notify: Option<Notify>,
}

impl Waiter {
    fn answer(self, result: Result<Lsn, WalError>) {
        if let Some(n) = self.notify {
            n.to.do_send(DurabilityReply {
                token: n.token,
                result: result.clone(),
            });
        }
        if let Some(tx) = self.tx {
            let _ = tx.send(result);
        }
    }
}

/// Reply slots shared between the handlers and [`LsnResponse`], which receives actix's
/// reply sender right after the handler returns (so a parked caller costs no future).
#[derive(Default)]
struct Replies {
    waiters: VecDeque<Waiter>,
    stash_tx: Option<Tx>,
}

/// The response type of `Append`, `Commit` and `Flush`: either an answer now, or a slot
/// to park actix's reply sender in until the LSN is durable.
pub struct LsnResponse(Resp);

enum Resp {
    Ready(Result<Lsn, WalError>),
    Park(Rc<RefCell<Replies>>),
    Stash(Rc<RefCell<Replies>>),
}

impl<M> MessageResponse<Queue, M> for LsnResponse
where
    M: Message<Result = Result<Lsn, WalError>>,
{
    fn handle(self, _ctx: &mut Context<Queue>, tx: Option<OneshotSender<M::Result>>) {
        match self.0 {
            Resp::Ready(r) => {
                if let Some(tx) = tx {
                    let _ = tx.send(r);
                }
            }
            Resp::Park(slots) => {
                if let Some(w) = slots.borrow_mut().waiters.back_mut() {
                    w.tx = tx;
                }
            }
            Resp::Stash(slots) => slots.borrow_mut().stash_tx = tx,
        }
    }
}

/// What a message asks to append.
enum Entry {
    Record(Vec<u8>),
    Txn(Vec<Vec<u8>>),
}

impl Entry {
    fn payload_bytes(&self) -> usize {
        match self {
            Entry::Record(p) => p.len(),
            Entry::Txn(e) => crate::format::frame::transaction_payload_len(e),
        }
    }

    fn count(&self) -> usize {
        match self {
            Entry::Record(_) => 1,
            Entry::Txn(e) => e.len(),
        }
    }
}

/// An append held while the queue is full (at most one: a full queue takes no messages).
struct Stashed {
    entry: Entry,
    options: AppendOptions,
}

/// How a dispatched batch ended.
#[derive(Clone)]
enum Done {
    Written(Duration),
    Failed(BatchFailure),
    /// The flusher of this generation is dead (panic, closed mailbox, stall).
    Dead(u64, String),
}

type DoneFuture = Shared<LocalBoxFuture<'static, Done>>;

struct InFlight {
    id: u64,
    batch: Arc<Batch>,
    done: DoneFuture,
}

struct FlusherRef {
    addr: Addr<Flusher>,
    generation: u64,
}

/// The queue actor.
pub struct Queue {
    cfg: Arc<WalConfig>,
    dir: Option<LogDir>,
    planner: Planner,
    pending: VecDeque<Batch>,
    in_flight: Option<InFlight>,
    next_batch_id: u64,
    replies: Rc<RefCell<Replies>>,
    stash: Option<Stashed>,
    /// All LSNs below this are durable.
    durable_end: u64,
    /// LSNs below this must be flushed promptly (durable waiters, `flush_now`, `Flush`).
    urgent_end: u64,
    queued_bytes: usize,
    queued_entries: usize,
    requested_mode: WalMode,
    flusher: Option<FlusherRef>,
    /// The generation the supervisor holds current; cleared here as soon as a death is
    /// seen so a stalled flusher cannot write behind the degraded path.
    current_generation: Arc<AtomicU64>,
    /// The writer of degraded mode, used on a blocking thread.
    local_writer: Arc<Mutex<SegmentWriter>>,
    supervisor: Recipient<FlusherDied>,
    /// Told to stop the flusher if the queue stops without a `Shutdown` (every handle
    /// dropped), so the flusher thread and the supervisor go with it.
    stop_supervisor: Recipient<StopFlusher>,
    sync_failures_in_row: u32,
    poisoned: Option<WalError>,
    shutting_down: bool,
    shutdown_waiters: Vec<futures::channel::oneshot::Sender<Result<(), WalError>>>,
    timer: Option<SpawnHandle>,
    spare: Vec<Vec<u8>>,
    stats: WalStats,
    metrics: Metrics,
    alerts: Alerts,
    disk_bytes: u64,
    /// First LSN of the segment the last written batch ended in (the tail segment at
    /// open): the health check and shutdown make sure it still exists. `None` after a
    /// truncation removed it (a rollover raced the truncation), until the next batch.
    written_segment: Option<u64>,
    /// Set for one scheduler turn after a batch answered several waiters: the callers just
    /// answered send their next appends in that turn, and they join the next batch instead
    /// of trailing it (without this, closed-loop committers split into two cohorts that
    /// each wait two fsyncs).
    holding: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("planner", &self.planner)
            .finish_non_exhaustive()
    }
}

/// What the queue starts from.
pub(crate) struct QueueSetup {
    /// The configuration.
    pub cfg: Arc<WalConfig>,
    /// The locked log directory.
    pub dir: LogDir,
    /// Where appends continue.
    pub planner: Planner,
    /// The first flusher and its generation.
    pub flusher: (Addr<Flusher>, u64),
    /// The generation fence shared with the supervisor.
    pub current_generation: Arc<AtomicU64>,
    /// The supervisor, told of flusher deaths the queue sees.
    pub supervisor: Recipient<FlusherDied>,
    /// The supervisor again, to stop the flusher when the queue stops.
    pub stop_supervisor: Recipient<StopFlusher>,
}

impl Queue {
    /// A queue over a recovered log.
    pub(crate) fn new(setup: QueueSetup) -> Queue {
        let QueueSetup {
            cfg,
            dir,
            planner,
            flusher,
            current_generation,
            supervisor,
            stop_supervisor,
        } = setup;
        let local_writer = SegmentWriter::new(
            cfg.storage.clone(),
            dir.path(),
            cfg.segment_size_bytes,
            cfg.preallocate,
        );
        let durable_end = planner.next_lsn;
        Queue {
            dir: Some(dir),
            planner,
            pending: VecDeque::new(),
            in_flight: None,
            next_batch_id: 0,
            replies: Rc::default(),
            stash: None,
            durable_end,
            urgent_end: 0,
            queued_bytes: 0,
            queued_entries: 0,
            requested_mode: WalMode::Async,
            flusher: Some(FlusherRef {
                addr: flusher.0,
                generation: flusher.1,
            }),
            current_generation,
            local_writer: Arc::new(Mutex::new(local_writer)),
            supervisor,
            stop_supervisor,
            sync_failures_in_row: 0,
            poisoned: None,
            shutting_down: false,
            shutdown_waiters: Vec::new(),
            timer: None,
            spare: Vec::new(),
            stats: WalStats {
                flusher_healthy: true,
                ..WalStats::default()
            },
            metrics: Metrics::register(),
            alerts: Alerts::new(cfg.alert_to.clone()),
            disk_bytes: 0,
            written_segment: Some(planner.segment_first_lsn),
            holding: false,
            cfg,
        }
    }

    fn refusal(&self) -> Option<WalError> {
        if let Some(p) = &self.poisoned {
            return Some(p.clone());
        }
        if self.shutting_down {
            return Some(WalError::ShutDown);
        }
        None
    }

    fn has_room(&self, frame_bytes: usize, count: usize) -> bool {
        let empty = self.queued_entries == 0;
        empty
            || (self.queued_bytes + frame_bytes <= self.cfg.max_queue_bytes
                && self.queued_entries + count <= self.cfg.max_queue_entries)
    }

    /// Takes an append or commit: refuse, stash (queue full), or admit it.
    fn submit(
        &mut self,
        entry: Entry,
        options: AppendOptions,
        ctx: &mut Context<Self>,
    ) -> LsnResponse {
        if let Some(e) = self.refusal() {
            return LsnResponse(Resp::Ready(Err(e)));
        }
        let payload = entry.payload_bytes() as u64;
        if payload > self.cfg.max_record_bytes {
            return LsnResponse(Resp::Ready(Err(WalError::RecordTooLarge {
                size_bytes: payload,
                max_bytes: self.cfg.max_record_bytes,
            })));
        }
        if let Entry::Txn(e) = &entry {
            if let Err(err) = check_transaction(e.len()) {
                return LsnResponse(Resp::Ready(Err(err)));
            }
        }
        let frame = crate::format::FRAME_HEADER_BYTES + payload as usize;
        if !self.has_room(frame, entry.count()) {
            if self.cfg.when_full == WhenFull::Fail {
                // Start draining so that room comes back.
                self.kick_now(ctx);
                return LsnResponse(Resp::Ready(Err(WalError::QueueFull {
                    entries: self.queued_entries,
                    bytes: self.queued_bytes,
                })));
            }
            if self.wait_in_flight(ctx) {
                self.stash = Some(Stashed { entry, options });
                self.stats.blocked_appends = 1;
                return LsnResponse(Resp::Stash(self.replies.clone()));
            }
            // Nothing in flight to wait for (cannot happen while anything is queued):
            // admit over the limit rather than wait forever.
        }
        match self.admit(entry, &options, ctx) {
            Ok(Some(lsn)) => LsnResponse(Resp::Ready(Ok(lsn))),
            Ok(None) => LsnResponse(Resp::Park(self.replies.clone())),
            Err(e) => LsnResponse(Resp::Ready(Err(e))),
        }
    }

    /// Encodes an entry into the gathering batch. Returns `Some(lsn)` for a buffered
    /// append (answer now), `None` when a durable waiter was parked (its sender is filled
    /// in by [`LsnResponse`]).
    fn admit(
        &mut self,
        entry: Entry,
        options: &AppendOptions,
        ctx: &mut Context<Self>,
    ) -> Result<Option<Lsn>, WalError> {
        let frame = crate::format::FRAME_HEADER_BYTES + entry.payload_bytes();
        let needs_new = match self.pending.back() {
            None => true,
            Some(b) => {
                b.bytes() + frame > self.cfg.max_batch_bytes || self.requested_mode == WalMode::Sync
            }
        };
        if needs_new {
            let buf = self.spare.pop().unwrap_or_default();
            self.pending
                .push_back(Batch::with_buffer(&self.planner, buf));
        }
        let Some(batch) = self.pending.back_mut() else {
            unreachable!("a batch was pushed just above if none was gathering")
        };
        let lsn = match &entry {
            Entry::Record(p) => batch.push_record(&mut self.planner, p)?,
            Entry::Txn(e) => batch.push_transaction(&mut self.planner, e)?,
        };
        tracing::trace!(lsn = lsn.0, bytes = frame, "queued");
        self.queued_bytes += frame;
        self.queued_entries += entry.count();
        self.stats.peak_queue_bytes = self.stats.peak_queue_bytes.max(self.queued_bytes);
        if self.queued_entries > self.cfg.alert_queue_depth {
            // Fires at the append that crosses; a no-op while the alert is active.
            let limit = self.cfg.alert_queue_depth;
            self.alerts.update(
                AlertKind::QueueDepth,
                true,
                self.queued_entries as f64,
                limit as f64,
            );
        }
        let end = self.planner.next_lsn;
        let durable = options.durability.unwrap_or(self.cfg.durability) == Durability::Durable;
        if durable || options.flush_now {
            self.urgent_end = end;
        }
        // A message that names no recipient of its own is notified at the config's
        // `notify_to`, if set, with its (first) LSN as the token.
        let notify = match &options.notify {
            Some(n) => Some(n.clone()),
            None => self.cfg.notify_to.as_ref().map(|to| Notify {
                to: to.clone(),
                token: lsn.0,
            }),
        };
        // A durable caller waits here for its reply; a buffered one is answered now, but a
        // notification still follows durability.
        if durable || notify.is_some() {
            self.replies.borrow_mut().waiters.push_back(Waiter {
                end,
                reply: lsn,
                since: durable.then(Instant::now),
                tx: None,
                notify,
            });
        }
        let result = (!durable).then_some(lsn);
        self.kick(ctx);
        Ok(result)
    }

    /// Dispatches the next batch if none is in flight and it is due; otherwise makes sure
    /// the buffered-flush timer runs.
    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() || self.poisoned.is_some() || self.holding {
            return;
        }
        let Some(front) = self.pending.front() else {
            return;
        };
        let due = self.urgent_end > front.first_lsn
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

    fn dispatch(&mut self, batch: Arc<Batch>, ctx: &mut Context<Self>) {
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        let fut: LocalBoxFuture<'static, Done> = match &self.flusher {
            Some(f) => {
                let addr = f.addr.clone();
                let generation = f.generation;
                let stall = Duration::from_millis(self.cfg.flusher_stall_timeout_ms);
                let msg = WriteBatch {
                    batch: batch.clone(),
                };
                async move {
                    match actix_rt::time::timeout(stall, addr.send(msg)).await {
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
        let done = fut.shared();
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
    fn wait_in_flight(&mut self, ctx: &mut Context<Self>) -> bool {
        self.holding = false;
        if self.in_flight.is_none() {
            self.kick_now(ctx);
        }
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

    fn kick_now(&mut self, ctx: &mut Context<Self>) {
        self.urgent_end = self.urgent_end.max(self.planner.next_lsn);
        self.kick(ctx);
    }

    fn on_done(&mut self, id: u64, done: Done, ctx: &mut Context<Self>) {
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
                if answered > 1 && self.requested_mode == WalMode::Async && !self.shutting_down {
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

    fn requeue(&mut self, batch: &Arc<Batch>) {
        self.pending.push_front(Batch::clone(batch));
        self.urgent_end = self.urgent_end.max(batch.end_lsn);
    }

    /// Completes a written batch; returns how many durable waiters it answered.
    fn on_written(&mut self, batch: Arc<Batch>, took: Duration) -> usize {
        self.sync_failures_in_row = 0;
        self.durable_end = batch.end_lsn;
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
        let m = &self.metrics;
        m.flushes.increment(1);
        m.entries_written.increment(batch.records as u64);
        m.bytes_written.increment(batch.bytes() as u64);
        m.flush_duration.record(took.as_secs_f64());
        m.batch_entries.record(batch.records as f64);
        let now = Instant::now();
        let mut answered = 0;
        let mut replies = self.replies.borrow_mut();
        while replies
            .waiters
            .front()
            .is_some_and(|w| w.end <= batch.end_lsn)
        {
            if let Some(w) = replies.waiters.pop_front() {
                if let Some(since) = w.since {
                    m.commit_duration
                        .record(now.duration_since(since).as_secs_f64());
                    answered += 1;
                }
                let r = Ok(w.reply);
                w.answer(r);
            }
        }
        drop(replies);
        let flush_ms = took.as_secs_f64() * 1000.0;
        let limit = self.cfg.alert_flush_ms as f64;
        self.alerts
            .update(AlertKind::FlushLatency, flush_ms > limit, flush_ms, limit);
        if batch.chunks.iter().any(|c| c.creates_segment) {
            self.refresh_disk_bytes();
        }
        if let Ok(b) = Arc::try_unwrap(batch) {
            if self.spare.len() < 2 {
                self.spare.push(b.buf);
            }
        }
        answered
    }

    /// Sums the sizes of the segment files (at open, after a rollover or a truncation).
    fn refresh_disk_bytes(&mut self) {
        let Some(dir) = &self.dir else {
            return;
        };
        let Ok((segments, _)) = dir.list() else {
            return;
        };
        let storage = dir.storage();
        self.disk_bytes = segments
            .iter()
            .filter_map(|s| {
                storage
                    .open(&s.path, false)
                    .and_then(|f| f.size_bytes())
                    .ok()
            })
            .sum();
        self.metrics.disk_bytes.set(self.disk_bytes as f64);
        let limit = self.cfg.alert_wal_bytes;
        self.alerts.update(
            AlertKind::WalSize,
            self.disk_bytes > limit,
            self.disk_bytes as f64,
            limit as f64,
        );
    }

    /// Publishes the queue gauges and evaluates the queue-depth alert (once per batch
    /// event, not per append).
    fn publish_queue(&mut self) {
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

    fn publish_mode(&mut self) {
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

    /// A write failed and was cut back: that batch and every batch queued behind it (their
    /// LSNs follow it) fail; the log continues where that batch began.
    fn on_write_failed(&mut self, batch: &Arc<Batch>, error: WalError) {
        tracing::warn!(%error, first_lsn = batch.first_lsn, "batch write failed; failing its callers");
        self.stats.write_failures += 1;
        self.metrics.write_failures.increment(1);
        self.fail_from(batch.first_lsn, &error);
        self.pending.clear();
        self.queued_bytes = 0;
        self.queued_entries = 0;
        self.planner = batch.start;
        self.urgent_end = 0;
    }

    /// An fsync failed: never fsync that file again. Write the batch, from our own copy,
    /// into a fresh segment named by its first LSN; only then acknowledge.
    fn on_sync_failed(&mut self, batch: &Arc<Batch>, error: WalError) {
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

    fn poison(&mut self, reason: String) {
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
    fn stop_with(&mut self, err: WalError) {
        tracing::error!(error = %err, "log stopped; reopen it to run recovery");
        self.stats.poisoned = true;
        self.metrics.poisoned.set(1.0);
        self.fail_from(0, &err);
        self.pending.clear();
        self.queued_bytes = 0;
        self.queued_entries = 0;
        self.poisoned = Some(err);
    }

    /// Checks that the locked directory is still the one the log's path names (see
    /// [`LogDir::verify`]); on failure stops the log. True while all is well.
    fn verify_dir(&mut self, op: &'static str) -> bool {
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
    fn dir_lost(&self, op: &'static str) -> Option<WalError> {
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
    fn verify_files(&mut self, op: &'static str) {
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
    fn fail_from(&mut self, from: u64, error: &WalError) {
        let mut replies = self.replies.borrow_mut();
        while replies.waiters.back().is_some_and(|w| w.end > from) {
            if let Some(w) = replies.waiters.pop_back() {
                w.answer(Err(error.clone()));
            }
        }
    }

    fn flusher_dead(&mut self, generation: u64, reason: String) {
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
        self.supervisor.do_send(FlusherDied { generation, reason });
    }

    fn after_progress(&mut self, ctx: &mut Context<Self>) {
        self.publish_queue();
        self.kick(ctx);
        self.admit_stash(ctx);
        self.finish_shutdown_if_idle();
    }

    /// Admits the append held while the queue was full, once there is room.
    fn admit_stash(&mut self, ctx: &mut Context<Self>) {
        let Some(stashed) = self.stash.take() else {
            return;
        };
        let tx = self.replies.borrow_mut().stash_tx.take();
        if let Some(e) = self.refusal() {
            if let Some(tx) = tx {
                let _ = tx.send(Err(e));
            }
            self.stats.blocked_appends = 0;
            return;
        }
        let frame = crate::format::FRAME_HEADER_BYTES + stashed.entry.payload_bytes();
        if !self.has_room(frame, stashed.entry.count()) && self.wait_in_flight(ctx) {
            self.stash = Some(stashed);
            self.replies.borrow_mut().stash_tx = tx;
            return;
        }
        self.stats.blocked_appends = 0;
        match self.admit(stashed.entry, &stashed.options, ctx) {
            Ok(Some(lsn)) => {
                if let Some(tx) = tx {
                    let _ = tx.send(Ok(lsn));
                }
            }
            Ok(None) => {
                if let Some(w) = self.replies.borrow_mut().waiters.back_mut() {
                    w.tx = tx;
                }
            }
            Err(e) => {
                if let Some(tx) = tx {
                    let _ = tx.send(Err(e));
                }
            }
        }
    }

    fn idle(&self) -> bool {
        self.in_flight.is_none()
            && (self.pending.is_empty() || self.poisoned.is_some())
            && self.stash.is_none()
    }

    fn finish_shutdown_if_idle(&mut self) {
        if !self.shutting_down || !self.idle() || self.dir.is_none() {
            return;
        }
        self.verify_files("shutdown");
        let result = match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        };
        // Release the lock file: the log can be opened again at once.
        self.dir = None;
        self.flusher = None;
        tracing::debug!(durable_lsn = self.durable_end - 1, "queue shut down");
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }

    fn mode(&self) -> WalMode {
        if self.flusher.is_none() && !self.shutting_down {
            WalMode::Degraded
        } else {
            self.requested_mode
        }
    }
}

impl Actor for Queue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.refresh_disk_bytes();
        self.publish_queue();
        self.publish_mode();
        // The mailbox bounds how many `send()`s wait here; a full queue stops taking
        // messages, so senders wait in their own futures, not in our memory.
        ctx.set_mailbox_capacity(1024);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Every handle is gone (or the log was shut down): the directory lock goes with
        // `self.dir`; the flusher and the supervisor go too.
        if self.dir.is_some() {
            tracing::debug!("every handle dropped without shutdown: stopping the log");
        }
        self.stop_supervisor.do_send(StopFlusher);
    }
}

impl Handler<Append> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> LsnResponse {
        self.submit(Entry::Record(msg.payload), msg.options, ctx)
    }
}

impl Handler<Commit> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, msg: Commit, ctx: &mut Self::Context) -> LsnResponse {
        self.submit(Entry::Txn(msg.entries), msg.options, ctx)
    }
}

impl Handler<Flush> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> LsnResponse {
        if let Some(p) = &self.poisoned {
            return LsnResponse(Resp::Ready(Err(p.clone())));
        }
        let end = self.planner.next_lsn;
        if self.durable_end >= end {
            return LsnResponse(Resp::Ready(Ok(Lsn(end - 1))));
        }
        self.replies.borrow_mut().waiters.push_back(Waiter {
            end,
            reply: Lsn(end - 1),
            since: None,
            tx: None,
            notify: None,
        });
        self.kick_now(ctx);
        LsnResponse(Resp::Park(self.replies.clone()))
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
        MessageResult(s)
    }
}

impl Handler<SetMode> for Queue {
    type Result = Result<(), WalError>;

    fn handle(&mut self, msg: SetMode, ctx: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.refusal() {
            return Err(e);
        }
        if msg.0 == WalMode::Degraded {
            return Err(WalError::ModeNotSettable { requested: msg.0 });
        }
        tracing::debug!(mode = ?msg.0, "mode switched");
        self.requested_mode = msg.0;
        self.publish_mode();
        if msg.0 == WalMode::Sync {
            // Everything gathered so far goes out before the next message is taken.
            self.kick_now(ctx);
            if let Some(f) = &self.in_flight {
                let id = f.id;
                ctx.wait(
                    f.done
                        .clone()
                        .into_actor(self)
                        .map(move |d, act, ctx| act.on_done(id, d, ctx)),
                );
            }
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
            self.finish_shutdown_if_idle();
        }
        Box::pin(async move { rx.await.unwrap_or(Err(WalError::ShutDown)) })
    }
}

impl Handler<TruncateBefore> for Queue {
    type Result = Result<usize, WalError>;

    fn handle(&mut self, msg: TruncateBefore, _: &mut Self::Context) -> Self::Result {
        let Some(dir) = &self.dir else {
            return Err(WalError::ShutDown);
        };
        // Only records already durable may be checkpointed away.
        let below = Lsn(msg.0 .0.min(self.durable_end));
        let removed = dir.truncate_before(below)?;
        if let Some(first_lsn) = self.written_segment {
            let written = dir.path().join(crate::log::segment_name(first_lsn));
            if removed.contains(&written) {
                self.written_segment = None;
            }
        }
        let removed = removed.len();
        self.refresh_disk_bytes();
        Ok(removed)
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

impl Handler<GetHealth> for Queue {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        self.verify_files("health check");
        MessageResult(Health {
            healthy: self.poisoned.is_none() && !self.shutting_down,
            mode: self.mode(),
            flusher_healthy: self.flusher.is_some(),
            poisoned: self.poisoned.is_some(),
            queue_depth: self.queued_entries,
            last_flush_ms: self.stats.last_flush_us as f64 / 1000.0,
            disk_bytes: self.disk_bytes,
            active_alerts: self.alerts.active(),
        })
    }
}
