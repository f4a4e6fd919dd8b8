//! The intake: how the [`Wal`](crate::Wal) handle's `append`, `commit` and `append_batch`
//! reach the queue without an actix message each. A caller pushes its entry and a reply
//! sender into a shared list under a lock; the first push into an empty list sends the
//! queue one [`DrainIntake`] message, and the queue takes the whole list when it handles
//! it, as if each entry had been a message of its own (the same checks, the same replies).
//!
//! Why: an actix message costs an envelope, a mailbox node and a wake of the queue's task
//! per append; the intake costs a lock and a push, and one message per turn of the queue.
//!
//! Order: the list is cut into runs, one `DrainIntake` each, sent under the lock by the
//! run's first push, and the queue takes one run per `DrainIntake`. Before the handle sends
//! the queue a message of its own (`flush`, `set_mode`, an entry the intake refused, ...),
//! or hands out the queue's address ([`Wal::queue`](crate::Wal::queue)), it
//! [fences](Intake::fence) the list: later pushes start a new run, whose `DrainIntake`
//! follows that message in the mailbox. So a caller's appends and its messages are handled
//! in the order it sent them, as if every append had been a message. (An `Addr<Queue>`
//! kept and used later is not fenced: a caller that mixes it with the handle's appends
//! without awaiting the replies between them may see them reordered.) A run the queue
//! cannot finish (the queue is full: the entry waits as the stash) keeps the rest in
//! `backlog`, and the queue takes no message until it is finished (`ctx.wait`, as for a
//! stashed message).
//!
//! Bounds: the list holds at most `max_queue_entries` entries and `max_queue_bytes` bytes of
//! frames (one entry at least); a push beyond them is refused with the entry handed back,
//! and the caller sends it as a message instead, which waits for room in the mailbox.
//! When the queue is dropped (stopped, or its thread gone) the list is closed and every
//! entry still in it is dropped: its caller gets [`WalError::ShutDown`].

use super::entry::AppendEntry;
use super::waiters::{LsnResponse, Tx};
use super::Queue;
use crate::error::WalError;
use crate::lsn::Lsn;
use actix::prelude::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::oneshot;

/// Room for entries the intake's list and the queue's backlog keep once drained (a burst
/// of more is freed after it).
const KEPT_ITEMS: usize = 1024;

/// One entry waiting in the intake, with its caller's reply sender.
pub(super) struct Item {
    entry: AppendEntry,
    tx: Tx,
}

/// The list shared by the handles and the queue.
pub(crate) struct Intake {
    state: Mutex<State>,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct State {
    /// Entries in runs, oldest first; each run but the last is non-empty and its
    /// `DrainIntake` sent.
    runs: VecDeque<Run>,
    /// Entries in all runs.
    items: usize,
    /// Bytes of frames the entries add (what `max_queue_bytes` bounds).
    bytes: usize,
    /// The queue is gone: nothing is taken any more.
    closed: bool,
}

/// Entries a `DrainIntake` takes together.
#[derive(Default)]
struct Run {
    items: Vec<Item>,
    /// Bytes of frames its entries add.
    bytes: usize,
    /// Its `DrainIntake` is in the queue's mailbox.
    drain_sent: bool,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// What became of a push.
pub(crate) enum Pushed {
    /// Taken: the reply comes through this receiver (closed without one: the queue is
    /// gone).
    Taken(oneshot::Receiver<Result<Lsn, WalError>>),
    /// The intake is at its bounds: send the entry as a message instead.
    Full(AppendEntry),
    /// The queue is gone.
    Closed,
}

impl Intake {
    /// An empty intake bounded like the queue (`max_queue_entries`, `max_queue_bytes`).
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Arc<Intake> {
        Arc::new(Intake {
            state: Mutex::new(State::default()),
            max_entries: max_entries.max(1),
            max_bytes,
        })
    }

    /// The state; a panic while it was held (none can happen: nothing in the critical
    /// sections panics) leaves it usable.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes `entry`, and tells `queue` to drain if it starts a run.
    pub(crate) fn push(&self, entry: AppendEntry, queue: &Addr<Queue>) -> Pushed {
        let bytes = entry.entry.frame_bytes();
        let mut s = self.state();
        if s.closed {
            return Pushed::Closed;
        }
        if s.items > 0
            && (s.items >= self.max_entries || s.bytes.saturating_add(bytes) > self.max_bytes)
        {
            return Pushed::Full(entry);
        }
        let (tx, rx) = oneshot::channel();
        s.items += 1;
        s.bytes = s.bytes.saturating_add(bytes);
        if s.runs.is_empty() {
            s.runs.push_back(Run::default());
        }
        let Some(run) = s.runs.back_mut() else {
            unreachable!("a run was pushed just above if there was none")
        };
        run.items.push(Item { entry, tx });
        run.bytes = run.bytes.saturating_add(bytes);
        if !run.drain_sent {
            // Under the lock: see the module's note on order. `do_send` ignores the
            // mailbox's capacity; there is one of these in it per run.
            run.drain_sent = true;
            queue.do_send(DrainIntake);
        }
        Pushed::Taken(rx)
    }

    /// Called before the handle sends the queue a message: entries pushed from now on
    /// start a new run, taken after that message.
    pub(crate) fn fence(&self) {
        let mut s = self.state();
        if s.runs.back().is_some_and(|r| !r.items.is_empty()) {
            s.runs.push_back(Run::default());
        }
    }

    /// Moves the oldest run's entries into `backlog`, in order.
    fn take_into(&self, backlog: &mut VecDeque<Item>) {
        let mut s = self.state();
        let (n, bytes) = match s.runs.len() {
            0 => return,
            1 => {
                // The only run: emptied in place, its list kept for the next pushes.
                let Some(run) = s.runs.front_mut() else {
                    return;
                };
                run.drain_sent = false;
                let n = run.items.len();
                backlog.extend(run.items.drain(..));
                // A burst's room is not kept for ever.
                run.items.shrink_to(KEPT_ITEMS);
                (n, std::mem::take(&mut run.bytes))
            }
            _ => {
                let Some(run) = s.runs.pop_front() else {
                    return;
                };
                let n = run.items.len();
                backlog.extend(run.items);
                (n, run.bytes)
            }
        };
        s.items = s.items.saturating_sub(n);
        s.bytes = s.bytes.saturating_sub(bytes);
    }

    /// Closes the intake and drops what it holds (their callers get `ShutDown`).
    fn close(&self) {
        let runs = {
            let mut s = self.state();
            s.closed = true;
            s.items = 0;
            s.bytes = 0;
            std::mem::take(&mut s.runs)
        };
        // Dropped after the lock: each reply sender dropped wakes its caller, whose
        // next push must not find the lock held.
        drop(runs);
    }
}

/// The queue's side: closes the intake when the queue is dropped, however it goes.
pub(super) struct IntakeEnd {
    pub(super) intake: Arc<Intake>,
    /// Items taken and not handled yet, in order (only while a stashed entry waits).
    pub(super) backlog: VecDeque<Item>,
}

impl IntakeEnd {
    pub(super) fn new(intake: Arc<Intake>) -> IntakeEnd {
        IntakeEnd {
            intake,
            backlog: VecDeque::new(),
        }
    }
}

impl Drop for IntakeEnd {
    fn drop(&mut self) {
        self.intake.close();
    }
}

/// Sent by the first push into an empty intake: take everything in it.
pub(crate) struct DrainIntake;

impl Message for DrainIntake {
    type Result = ();
}

impl Handler<DrainIntake> for Queue {
    type Result = ();

    fn handle(&mut self, _: DrainIntake, ctx: &mut Self::Context) {
        let end = &mut self.intake;
        end.intake.take_into(&mut end.backlog);
        self.drain_backlog(ctx);
    }
}

impl Queue {
    /// Submits the backlog's items in order, each as its message would be, until it is
    /// empty or one is stashed (the queue is full; [`Queue::admit_stash`] goes on).
    pub(super) fn drain_backlog(&mut self, ctx: &mut Context<Self>) {
        if self.intake.backlog.is_empty() {
            return;
        }
        // Only for a `tracing` subscriber that wants it (see `SegmentWriter::write_batch`).
        let _span = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            tracing::debug_span!("drain_intake", items = self.intake.backlog.len()).entered()
        });
        // One clock read for the lot: they reached the queue together.
        let now = Instant::now();
        while self.stash.is_none() {
            let Some(Item { entry, tx }) = self.intake.backlog.pop_front() else {
                break;
            };
            let arrived = self.arrived_at(&entry.options, now);
            let resp: LsnResponse = self.submit(entry.entry, true, entry.options, arrived, ctx);
            resp.deliver(Some(tx));
        }
        if self.intake.backlog.is_empty() {
            self.intake.backlog.shrink_to(KEPT_ITEMS);
        }
    }
}
