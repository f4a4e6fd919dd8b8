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
//!
//! The queue's rooms: `waiters.rs` (callers waiting for durability and their parked
//! replies), `admit.rs` (appends and commits in), `intake.rs` (the handles' appends, taken a
//! turn's worth at a time), `dispatch.rs` (batches out and back),
//! `failure.rs` (failed writes and fsyncs, removed files, the flusher's death and return),
//! `observe.rs` (metrics, stats, health), `lifecycle.rs` (mode, checkpoint, shutdown),
//! `slots.rs` (the metadata slot's values, as slot frames),
//! `cursors.rs` (named cursors and retention runs) and `rewind.rs` (rewind and reset).

mod admit;
mod cursors;
mod dispatch;
pub(crate) mod entry;
mod failure;
mod intake;
mod lifecycle;
mod observe;
mod reads;
mod rewind;
mod slots;
mod waiters;

pub(crate) use failure::{AttachFlusher, EnterDegraded, RemoveLeftover};
pub(crate) use intake::{Intake, Pushed};

use crate::actors::flusher::Flusher;
use crate::actors::supervisor::{FlusherDied, StopFlusher};
use crate::config::WalConfig;
use crate::error::WalError;
use crate::health::Alerts;
use crate::log::{Batch, LogDir, Planner, SegmentWriter, SharedIndex};
use crate::metrics::Metrics;
use crate::stats::{WalMode, WalStats};
use actix::prelude::*;
use admit::Stashed;
use dispatch::InFlight;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use waiters::Replies;

pub(super) struct FlusherRef {
    pub(super) addr: Addr<Flusher>,
    pub(super) generation: u64,
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
    /// The handles' entries (`intake.rs`), and those taken but not handled yet.
    intake: intake::IntakeEnd,
    /// All LSNs below this are durable.
    durable_end: u64,
    /// The LSN this log started from as far as this process knows: its first LSN at open,
    /// or the LSN of the last reset that skipped LSNs (one past the next LSN). Every LSN
    /// from here to the next LSN was given out; of those below it the log keeps no record
    /// (a reset skips LSNs, `WalConfig::first_lsn` starts a new log past 1), so
    /// `WaitDurable` answers them `LsnNotAssigned`. A checkpoint does not move it: what it
    /// removed was durable.
    assigned_from: u64,
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
    /// A rewrite failed after writing where its batch had begun, in the segment whose
    /// fsync failed: the next batch goes to a fresh segment too (`failure.rs`).
    rewrite_next: bool,
    /// Batch writes (and fsyncs) that failed for a full disk since the last batch written:
    /// while above 0 the `DiskFull` alert is active and the log unhealthy (`failure.rs`).
    disk_full_failures: u64,
    poisoned: Option<WalError>,
    shutting_down: bool,
    shutdown_waiters: Vec<futures::channel::oneshot::Sender<Result<(), WalError>>>,
    /// Whether a shutdown has settled the flusher's spares yet (`lifecycle.rs`).
    settle: lifecycle::ShutdownSettle,
    timer: Option<SpawnHandle>,
    /// Buffers of written batches (their frames and frame marks), reused by new ones.
    spare: Vec<(Vec<u8>, Vec<crate::log::batch::FrameMark>)>,
    stats: WalStats,
    metrics: Metrics,
    alerts: Alerts,
    /// Bytes of the segment files on disk (the `actix_wal_disk_bytes` gauge and the
    /// `alert_wal_bytes` alert).
    disk_bytes: u64,
    /// The newest segment counted in `disk_bytes`, by first LSN, and the size it was
    /// counted at: a rollover re-sizes only it and counts the new one (`observe.rs`).
    counted_tail: Option<(u64, u64)>,
    /// Every segment's size as last counted (a listing at open, after a retention run or
    /// a rewind; the new segment added at a rollover), in LSN order: the cursors' lag in
    /// bytes and the bytes retained below the checkpoint, without a listing per question.
    segment_sizes: Vec<crate::log::SegmentUse>,
    /// The cursors found invalidated (the `CursorInvalidated` alert sent for each), with
    /// the bytes each held when it was (0 when not known: found so at open). At most
    /// `max_cursors` entries: only listed cursors are kept.
    invalidated_cursors: std::collections::BTreeMap<String, u64>,
    /// Bytes of the `.wal.tmp` files beside the segments: the prepared spare (a whole
    /// preallocated segment) and any file a rewrite is building. Counted at open, after a
    /// truncation or a rewind and at each health check (the spare is prepared on the
    /// flusher's helper thread, so the queue cannot tell when it appears); zero after a
    /// rollover, whose spare became the new segment.
    spare_bytes: u64,
    /// First LSN of the segment the last written batch ended in (the tail segment at
    /// open): the health check and shutdown make sure it still exists. `None` after a
    /// truncation removed it (a rollover raced the truncation), until the next batch.
    written_segment: Option<u64>,
    /// Set for one scheduler turn after a batch answered several waiters: the callers just
    /// answered send their next appends in that turn, and they join the next batch instead
    /// of trailing it (without this, closed-loop committers split into two cohorts that
    /// each wait two fsyncs).
    holding: bool,
    /// The read index, shared with the reader pool: updated here when a batch is
    /// durable, a write is cut back or a checkpoint removes segments (`reads.rs`).
    index: SharedIndex,
    /// The durable end and cuts, for subscribers (`progress.rs`).
    progress: crate::progress::ProgressTx,
    /// A segment with frames whose header lacks `COMPRESSED` (the tail at open, or where
    /// a rewind went back to), by first LSN: no compressed frame goes into it; the first
    /// one starts a new segment (`entry.rs`). `None` when the log does not compress or
    /// there is none.
    plain_segment: Option<u64>,
    /// Set by `admit` for an entry with compressed frames while the planner may be in
    /// `plain_segment`; taken by `encode` before its first frame.
    roll_next: bool,
    /// While a rewind or reset drains the queue: waiters covering LSNs at or past this
    /// are not answered, even when durable (they are answered or failed once it is
    /// done). `u64::MAX` otherwise.
    answer_limit: u64,
    /// The generation the next slot value gets (`slots.rs`).
    next_slot_gen: u64,
    /// `set_meta` callers whose slot frames are not durable yet, in generation order.
    slot_waiters: VecDeque<slots::SlotWaiter>,
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
    /// The read index recovery built, shared with the reader pool.
    pub index: SharedIndex,
    /// Where the queue publishes its durable end and cuts for subscribers.
    pub progress: crate::progress::ProgressTx,
    /// Where the handles put their appends (`intake.rs`).
    pub intake: Arc<Intake>,
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
            index,
            progress,
            intake,
        } = setup;
        let mut dir = dir;
        dir.set_retention_policy(cfg.retention_policy());
        let mut local_writer = SegmentWriter::new(
            cfg.storage.clone(),
            dir.path(),
            cfg.segment_size_bytes,
            cfg.preallocate,
        );
        local_writer.meta = Some(dir.meta().clone());
        local_writer.segment_flags = cfg.segment_flags();
        let durable_end = planner.next_lsn;
        let plain_segment = entry::plain_segment(&cfg, &dir, &planner);
        // Recovery has read `META`; a log without one starts at its next LSN. LSN 0 is
        // never given out.
        let assigned_from = dir
            .meta()
            .current()
            .map_or(planner.next_lsn, |m| m.first_lsn.min(planner.next_lsn))
            .max(1);
        dir.set_durable_end(durable_end);
        let next_slot_gen = dir.meta().slot_gen() + 1;
        Queue {
            dir: Some(dir),
            planner,
            pending: VecDeque::new(),
            in_flight: None,
            next_batch_id: 0,
            replies: Rc::default(),
            stash: None,
            intake: intake::IntakeEnd::new(intake),
            durable_end,
            assigned_from,
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
            rewrite_next: false,
            disk_full_failures: 0,
            poisoned: None,
            shutting_down: false,
            shutdown_waiters: Vec::new(),
            settle: lifecycle::ShutdownSettle::NotAsked,
            timer: None,
            spare: Vec::new(),
            stats: WalStats {
                flusher_healthy: true,
                ..WalStats::default()
            },
            metrics: Metrics::register(),
            alerts: Alerts::new(cfg.alert_to.clone()),
            disk_bytes: 0,
            counted_tail: None,
            segment_sizes: Vec::new(),
            invalidated_cursors: Default::default(),
            spare_bytes: 0,
            written_segment: Some(planner.segment_first_lsn),
            holding: false,
            index,
            progress,
            plain_segment,
            roll_next: false,
            answer_limit: u64::MAX,
            next_slot_gen,
            slot_waiters: VecDeque::new(),
            cfg,
        }
    }

    /// The log directory, for a change to the log: refused as [`Self::refusal`] says, or
    /// with `ShutDown` once the directory is released.
    fn writable_dir(&self) -> Result<&crate::log::LogDir, WalError> {
        if let Some(e) = self.refusal() {
            return Err(e);
        }
        self.dir.as_ref().ok_or(WalError::ShutDown)
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
        // Segments wholly below the first LSN left by a run that stopped between `META`
        // and its removals (a crash, a removal refused) go now, not at the next checkpoint.
        self.run_retention();
        self.publish_cursors();
        if self.cfg.retention_secs > 0 {
            // Age is the one reason to remove a segment that no message brings: a timer.
            let every = std::time::Duration::from_millis(self.cfg.retention_check_interval_ms);
            ctx.run_interval(every, |act, _| act.run_retention());
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Every handle is gone (or the log was shut down): the flusher and the supervisor
        // go too. The directory (and its lock), if still held, goes to the supervisor,
        // which drops it once the flusher's thread is joined.
        if self.dir.is_some() {
            tracing::debug!("every handle dropped without shutdown: stopping the log");
        }
        self.stop_supervisor.do_send(StopFlusher {
            release: self.dir.take(),
        });
    }
}
