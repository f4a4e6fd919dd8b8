//! The `Flusher` actor: writes batches and fsyncs them on a thread of its own.
//!
//! It runs on a dedicated `Arbiter` (not a `SyncArbiter`: a `SyncArbiter` never respawns a
//! panicked thread and its address keeps looking alive). The queue owns the file offsets,
//! so the flusher only executes plans: writing a batch again writes the same bytes to the
//! same places. A panic in the write path is caught and reported as [`FlushFault::Panicked`];
//! if the thread dies anyway, [`DeathGuard`] tells the supervisor as the actor is dropped.

use crate::actors::supervisor::FlusherDied;
use crate::log::{Batch, BatchFailure, SegmentWriter};
use actix::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Write and fsync one batch. Sent by the queue.
#[derive(Debug)]
pub(crate) struct WriteBatch {
    /// The batch; the queue keeps its own reference to write it again if this fails.
    pub batch: Arc<Batch>,
}

impl Message for WriteBatch {
    type Result = Result<Duration, FlushFault>;
}

/// Why a flusher did not complete a batch.
#[derive(Debug, Clone)]
pub(crate) enum FlushFault {
    /// The write or fsync failed; see [`BatchFailure`].
    Failed(BatchFailure),
    /// The write path panicked; the flusher stops itself after reporting.
    Panicked(String),
    /// This flusher has been replaced (it was presumed dead) and wrote nothing.
    Stale,
}

/// Sent by the queue at shutdown, once everything is written, before it releases the
/// directory: the flusher joins its spare helper (whose raise of `META`'s newest-segment
/// LSN and directory `fsync` are then done), removes the prepared spare and prepares no
/// other, so that it does no I/O in the directory after the lock is released.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Settle;

/// A health check: answered with the flusher's generation. Sent by the supervisor after
/// a restart, before the queue is switched back to async.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub(crate) struct Health;

/// Tells the supervisor the flusher is gone when dropped: on a normal stop, on a panic
/// that unwinds the arbiter's thread, or when the arbiter is stopped.
#[derive(Debug)]
pub(crate) struct DeathGuard {
    generation: u64,
    supervisor: Option<Recipient<FlusherDied>>,
    /// The spare a flusher dropped fenced off left (see the flusher's `Drop`).
    leftover: Option<PathBuf>,
}

impl DeathGuard {
    /// A guard for flusher `generation`.
    pub fn new(generation: u64, supervisor: Recipient<FlusherDied>) -> DeathGuard {
        DeathGuard {
            generation,
            supervisor: Some(supervisor),
            leftover: None,
        }
    }
}

impl Drop for DeathGuard {
    fn drop(&mut self) {
        if let Some(s) = self.supervisor.take() {
            s.do_send(FlusherDied {
                generation: self.generation,
                reason: "flusher actor dropped (stopped, or its thread unwound)".into(),
                leftover: self.leftover.take(),
            });
        }
    }
}

/// The flusher actor.
#[derive(Debug)]
pub(crate) struct Flusher {
    writer: SegmentWriter,
    generation: u64,
    /// The generation the supervisor considers current. A flusher presumed dead (stalled)
    /// that wakes up checks it and writes nothing, so it cannot race the degraded path.
    current: Arc<AtomicU64>,
    _guard: DeathGuard,
}

impl Flusher {
    /// A flusher of `generation` writing through `writer`.
    pub fn new(
        mut writer: SegmentWriter,
        generation: u64,
        current: Arc<AtomicU64>,
        guard: DeathGuard,
    ) -> Flusher {
        writer.failpoints = true;
        // The next segment is prepared on a helper thread, off the commit path.
        writer.enable_spares(crate::log::spare::SpareMode::Thread);
        writer.fence = Some((current.clone(), generation));
        Flusher {
            writer,
            generation,
            current,
            _guard: guard,
        }
    }
}

impl Actor for Flusher {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(generation = self.generation, "flusher started");
    }
}

impl Handler<WriteBatch> for Flusher {
    type Result = Result<Duration, FlushFault>;

    fn handle(&mut self, msg: WriteBatch, ctx: &mut Self::Context) -> Self::Result {
        if self.current.load(Ordering::Acquire) != self.generation {
            return Err(FlushFault::Stale);
        }
        // Outside the caught region: a panic here kills the actor (the drop guard reports it).
        #[cfg(feature = "failpoints")]
        fail::fail_point!("flusher::handle", |_| Err(FlushFault::Stale));
        let started = Instant::now();
        let writer = &mut self.writer;
        let result = catch_unwind(AssertUnwindSafe(|| match writer.write_batch(&msg.batch) {
            Ok(()) => Ok(()),
            Err(BatchFailure::Fenced) => Err(FlushFault::Stale),
            Err(f) => Err(FlushFault::Failed(f)),
        }));
        match result {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(fault)) => Err(fault),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".into());
                tracing::warn!(generation = self.generation, panic = %text, "flusher panicked in its write path");
                self.writer.forget_files();
                // Its spare helper is joined and its spare removed before the queue hears
                // of the death (this reply): a dead flusher changes nothing in the
                // directory once the queue may release it (docs/architecture.md,
                // "A flusher's death and the directory"). Unless the join outlasted the
                // stall timeout and the flusher was fenced off: see `Drop`.
                self._guard.leftover = self.writer.close_spares_unless_fenced();
                ctx.stop();
                Err(FlushFault::Panicked(text))
            }
        }
    }
}

/// A flusher dead by a route that did not settle it (a panic outside the caught region, a
/// stall, its arbiter stopped) may be dropped after the queue released the directory,
/// another opener's now: it joins its spare helper and, found fenced off then, removes
/// nothing. Its [`DeathGuard`] (dropped next) hands the spare it left to the supervisor,
/// for the queue to remove if it still holds the directory (recovery does otherwise).
/// One still current removes its spare as [`Settle`] does.
impl Drop for Flusher {
    fn drop(&mut self) {
        self._guard.leftover = self.writer.close_spares_unless_fenced();
    }
}

impl Handler<Settle> for Flusher {
    type Result = ();

    fn handle(&mut self, _: Settle, _: &mut Self::Context) {
        tracing::debug!(generation = self.generation, "flusher settling its spares");
        self.writer.close_spares();
    }
}

impl Handler<Health> for Flusher {
    type Result = u64;

    fn handle(&mut self, _: Health, _: &mut Self::Context) -> u64 {
        self.generation
    }
}
