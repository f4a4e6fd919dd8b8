//! The `Supervisor` actor: starts the flusher on its own arbiter, learns of its death by
//! every route actix offers, switches the queue to degraded mode, and restarts the flusher
//! with bounded backoff, giving up (the log stays degraded, still correct) after
//! `max_flusher_restarts` deaths within `restart_window_ms`.
//!
//! Routes to a death: the flusher's [`crate::actors::flusher::DeathGuard`] (dropped with
//! the actor, also on panic and when its arbiter stops); the queue, which reports a send
//! answered `MailboxError::Closed`, a caught panic, or a batch not completed within
//! `flusher_stall_timeout_ms`; and a failed health check after a restart. actix's own
//! `Supervised` restarts only actors that stop, not ones that panic, hence this actor.

use crate::actors::flusher::{DeathGuard, Flusher, Health, Settle};
use crate::actors::queue::{AttachFlusher, EnterDegraded, Queue, RemoveLeftover};
use crate::config::WalConfig;
use crate::log::{LogDir, SegmentWriter};
use actix::prelude::*;
use actix::WeakAddr;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A flusher of this generation is dead (or presumed so).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct FlusherDied {
    /// The flusher's generation.
    pub generation: u64,
    /// Why.
    pub reason: String,
    /// A spare the dead flusher left in the directory (it was fenced off when dropped),
    /// passed on to the queue to remove while it holds the directory.
    pub leftover: Option<PathBuf>,
}

/// Start the first flusher (at open). Replies with its address and generation.
#[derive(Debug, Message)]
#[rtype(result = "(Addr<Flusher>, u64)")]
pub(crate) struct StartFlusher;

/// Tell the supervisor which queue to switch.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct SetQueue(pub Addr<Queue>);

/// Stop the flusher and join its thread (at shutdown), then stop the supervisor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct StopFlusher {
    /// The log directory, released (its lock dropped) only once the flusher's thread is
    /// joined: sent by a queue that stops without a `Shutdown` (every handle dropped), so
    /// that the flusher's last I/O (its spare helper) is over before another opener may
    /// own the directory. `None` from `Wal::shutdown`: the queue released it already.
    pub release: Option<LogDir>,
}

/// Try restarting a flusher now, even after the supervisor gave up.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct RestartFlusher;

/// The supervisor actor.
pub(crate) struct Supervisor {
    cfg: Arc<WalConfig>,
    dir: PathBuf,
    generation: u64,
    /// The generation allowed to write; 0 while none is.
    current: Arc<AtomicU64>,
    arbiter: Option<Arbiter>,
    flusher: Option<Addr<Flusher>>,
    /// Weak: the queue lives as long as the application holds a `Wal` handle, not longer.
    queue: Option<WeakAddr<Queue>>,
    /// Deaths within the restart window.
    deaths: VecDeque<Instant>,
    restarts: u64,
    restart_scheduled: bool,
    gave_up: bool,
    stopping: bool,
    /// The log's metadata file: each flusher's writer raises its newest-segment LSN.
    meta: Option<Arc<crate::log::SharedMeta>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor for the log in `dir`; `current` is the generation fence it shares
    /// with the queue and the flushers.
    pub fn new(cfg: Arc<WalConfig>, dir: PathBuf, current: Arc<AtomicU64>) -> Supervisor {
        Supervisor {
            cfg,
            dir,
            generation: 0,
            current,
            arbiter: None,
            flusher: None,
            queue: None,
            deaths: VecDeque::new(),
            restarts: 0,
            restart_scheduled: false,
            gave_up: false,
            stopping: false,
            meta: None,
        }
    }

    /// Gives every flusher's writer the log's metadata file (see
    /// [`SegmentWriter::meta`]).
    pub fn with_meta(mut self, meta: Arc<crate::log::SharedMeta>) -> Supervisor {
        self.meta = Some(meta);
        self
    }

    /// Starts a flusher of a new generation on a fresh arbiter (a thread of its own).
    fn spawn_flusher(&mut self, ctx: &mut Context<Self>) -> (Addr<Flusher>, u64) {
        self.generation += 1;
        let generation = self.generation;
        self.current.store(generation, Ordering::Release);
        let arbiter = Arbiter::new();
        let mut writer = SegmentWriter::new(
            self.cfg.storage.clone(),
            &self.dir,
            self.cfg.segment_size_bytes,
            self.cfg.preallocate,
        );
        writer.meta = self.meta.clone();
        writer.segment_flags = self.cfg.segment_flags();
        let guard = DeathGuard::new(generation, ctx.address().recipient());
        let current = self.current.clone();
        let addr = Flusher::start_in_arbiter(&arbiter.handle(), move |_| {
            Flusher::new(writer, generation, current, guard)
        });
        self.retire_arbiter();
        self.arbiter = Some(arbiter);
        self.flusher = Some(addr.clone());
        (addr, generation)
    }

    /// Stops the current arbiter and joins its thread in the background (a stalled thread
    /// is joined whenever it wakes).
    fn retire_arbiter(&mut self) {
        if let Some(old) = self.arbiter.take() {
            old.stop();
            actix_rt::task::spawn_blocking(move || {
                let _ = old.join();
            });
        }
        self.flusher = None;
    }

    fn backoff(&self) -> Duration {
        let n = self.deaths.len().saturating_sub(1).min(20) as u32;
        let ms = self
            .cfg
            .restart_backoff_initial_ms
            .saturating_mul(1u64 << n);
        Duration::from_millis(ms.min(self.cfg.restart_backoff_max_ms))
    }

    fn schedule_restart(&mut self, ctx: &mut Context<Self>) {
        if self.restart_scheduled || self.stopping {
            return;
        }
        let window = Duration::from_millis(self.cfg.restart_window_ms);
        while self.deaths.front().is_some_and(|t| t.elapsed() > window) {
            self.deaths.pop_front();
        }
        if self.deaths.len() > self.cfg.max_flusher_restarts as usize {
            if !self.gave_up {
                tracing::error!(deaths = self.deaths.len(), window_ms = self.cfg.restart_window_ms, "flusher keeps dying: giving up restarts; the log stays in degraded mode (correct, slower)");
            }
            self.gave_up = true;
            return;
        }
        self.restart_scheduled = true;
        let delay = self.backoff();
        tracing::debug!(
            delay_ms = delay.as_millis() as u64,
            "restarting the flusher after backoff"
        );
        ctx.run_later(delay, |act, ctx| {
            act.restart_scheduled = false;
            act.restart(ctx);
        });
    }

    fn restart(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let (addr, generation) = self.spawn_flusher(ctx);
        let timeout = Duration::from_millis(self.cfg.flusher_stall_timeout_ms);
        let check = actix_rt::time::timeout(timeout, addr.send(Health));
        ctx.spawn(check.into_actor(self).map(move |res, act, ctx| {
            if act.generation != generation || act.stopping {
                return;
            }
            match res {
                Ok(Ok(g)) if g == generation => {
                    act.restarts += 1;
                    act.gave_up = false;
                    if let Some(q) = act.queue.as_ref().and_then(WeakAddr::upgrade) {
                        q.do_send(AttachFlusher {
                            addr,
                            generation,
                            restarts: act.restarts,
                        });
                    }
                }
                _ => act.on_death(generation, "health check failed after restart".into(), ctx),
            }
        }));
    }

    fn on_death(&mut self, generation: u64, reason: String, ctx: &mut Context<Self>) {
        if generation != self.generation || self.stopping || self.flusher.is_none() {
            return; // an old generation, or already handled
        }
        tracing::warn!(generation, %reason, "flusher died");
        let _ = self
            .current
            .compare_exchange(generation, 0, Ordering::AcqRel, Ordering::Acquire);
        self.deaths.push_back(Instant::now());
        if let Some(q) = self.queue.as_ref().and_then(WeakAddr::upgrade) {
            q.do_send(EnterDegraded { generation, reason });
        }
        self.retire_arbiter();
        self.schedule_restart(ctx);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<StartFlusher> for Supervisor {
    type Result = MessageResult<StartFlusher>;

    fn handle(&mut self, _: StartFlusher, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.spawn_flusher(ctx))
    }
}

impl Handler<SetQueue> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SetQueue, _: &mut Self::Context) {
        self.queue = Some(msg.0.downgrade());
    }
}

impl Handler<FlusherDied> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: FlusherDied, ctx: &mut Self::Context) {
        if let Some(path) = msg.leftover {
            if let Some(q) = self.queue.as_ref().and_then(WeakAddr::upgrade) {
                q.do_send(RemoveLeftover(path));
            }
        }
        self.on_death(msg.generation, msg.reason, ctx);
    }
}

impl Handler<RestartFlusher> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: RestartFlusher, ctx: &mut Self::Context) {
        if self.flusher.is_none() && !self.restart_scheduled && !self.stopping {
            self.deaths.clear();
            self.gave_up = false;
            self.restart(ctx);
        }
    }
}

impl Handler<StopFlusher> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopFlusher, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        self.queue = None;
        let arbiter = self.arbiter.take();
        // A queue that stopped without a `Shutdown` did not settle the flusher: it does so
        // here, while the lock is still held, before the fence goes up (a flusher dropped
        // fenced off leaves its spare for recovery, see the flusher's `Drop`).
        let unsettled = self.flusher.take().filter(|_| msg.release.is_some());
        let timeout = Duration::from_millis(self.cfg.flusher_stall_timeout_ms);
        let current = self.current.clone();
        Box::pin(
            async move {
                if let Some(f) = unsettled {
                    let _ = actix_rt::time::timeout(timeout, f.send(Settle)).await;
                }
                current.store(0, Ordering::Release);
                crate::actors::stop_and_join(arbiter).await
            }
            .into_actor(self)
            .map(move |_, _, ctx| {
                drop(msg.release);
                ctx.stop()
            }),
        )
    }
}
