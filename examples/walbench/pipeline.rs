//! actix-wal under load: transaction actors that commit one record after another through
//! the queue's address, the way an application's actors would, and the figures of a run.
//!
//! Each [`Committer`] is a real actor. It sends [`Append`] (or [`Commit`]) to
//! `Wal::queue()` and, when the reply comes back, sends the next one: a closed loop, one
//! commit outstanding per actor (or `pipeline` of them). Latencies go into a histogram
//! local to the actor's thread, so recording costs no lock and no message. (With
//! `via_wal`, through `Wal::append` instead.)

use crate::log_under_test::{clock, open, stats};
use crate::report::{new_histogram, CallerTime, Figures, Latency};
use crate::sys;
use actix::prelude::*;
use actix_wal::Queue;
use actix_wal::{Append, Commit, Durability, QueueThread, Wal, WalConfig};
use futures::channel::mpsc;
use futures::future::Either;
use futures::StreamExt;
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a run measures.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    /// Run for this long after the warm-up.
    Time(Duration),
    /// Stop once this many commits were issued (no warm-up: every commit counts).
    Commits(u64),
}

/// One actix-wal workload.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Transaction actors.
    pub actors: usize,
    /// Bytes per record.
    pub payload_bytes: usize,
    /// `Durable` (reply after fsync) or `Buffered` (reply once queued).
    pub durability: Durability,
    /// Send single-entry `Commit` messages instead of `Append`.
    pub commit_messages: bool,
    /// How long to measure.
    pub window: Window,
    /// Time run but not measured first (segment creation, first batches).
    pub warmup: Duration,
    /// Total commits per second to pace the actors to; `None` runs them flat out.
    pub rate: Option<f64>,
    /// Arbiters (threads) to place the actors on; 0 puts them on the System arbiter,
    /// beside the queue.
    pub arbiters: usize,
    /// Commits each actor keeps outstanding (1: one after another).
    pub pipeline: usize,
    /// The log's configuration.
    pub config: WalConfig,
    /// Tasks reading recent durable records (`Wal::read`) beside the committers, one read
    /// after another, all on one arbiter of their own (as docs/operations.md advises for
    /// an application's readers: reads served in place are CPU work on the reader's thread).
    pub readers: usize,
    /// Records to send in turn instead of `payload_bytes` of one repeated byte (the
    /// compression part: JSON-like records of varied sizes); `payload_bytes` is then
    /// their mean size, so MB/s counts their bytes.
    pub payloads: Option<Arc<Vec<Vec<u8>>>>,
    /// Append through `Wal::append` (the handle's method, which compresses on the
    /// caller's thread when the log compresses) instead of sending `Append` to the queue.
    pub via_wal: bool,
}

/// Shared by every actor of a run: when to record, when to stop.
#[derive(Debug)]
pub struct Control {
    /// Set after the warm-up: latencies and commits count from here.
    pub recording: AtomicBool,
    /// Set at the end of the window: no new commits are sent.
    pub stop: AtomicBool,
    /// Commits sent, when a commit limit applies (`u64::MAX` otherwise, never counted).
    issued: AtomicU64,
    limit: u64,
    /// The highest LSN acknowledged so far (durable, for durable commits): readers pick
    /// below it.
    pub acked: AtomicU64,
}

impl Control {
    /// Whether the actor should send no more.
    fn finished(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        self.limit != u64::MAX && self.issued.fetch_add(1, Ordering::Relaxed) >= self.limit
    }
}

/// What the actors of one thread measured. Thread-local because actors on one arbiter
/// share its thread: recording is a plain increment, and the totals are collected once.
#[derive(Debug, Default)]
pub struct Local {
    latency: Option<Histogram<u64>>,
    enqueue: Option<Histogram<u64>>,
    in_window: u64,
    errors: u64,
}

impl Local {
    fn merge(&mut self, other: Local) {
        for (mine, theirs) in [
            (&mut self.latency, other.latency),
            (&mut self.enqueue, other.enqueue),
        ] {
            match (mine.as_mut(), theirs) {
                (Some(a), Some(b)) => {
                    // Same bounds on both sides: adding cannot fail.
                    let _ = a.add(&b);
                }
                (None, Some(b)) => *mine = Some(b),
                _ => {}
            }
        }
        self.in_window += other.in_window;
        self.errors += other.errors;
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

fn take_local() -> Local {
    LOCAL.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// A transaction actor: commits one record, waits for the durable reply, commits the next.
struct Committer {
    queue: Addr<Queue>,
    payload: Vec<u8>,
    /// Records sent in turn instead of `payload` (see [`Spec::payloads`]), and the turn.
    payloads: Option<(Arc<Vec<Vec<u8>>>, usize)>,
    /// Appends go through this handle's `append` ([`Spec::via_wal`]).
    wal: Option<Wal>,
    durability: Durability,
    commit_messages: bool,
    control: Arc<Control>,
    /// Pacing: one commit per `interval` when the run has a rate.
    interval: Option<Duration>,
    next_at: Instant,
    /// Slots still running (`pipeline` at start); the actor stops when the last retires.
    live_slots: usize,
    /// Told when this actor stops, so the run knows when all are done.
    done: mpsc::UnboundedSender<()>,
}

impl Actor for Committer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for _ in 0..self.live_slots {
            self.next_turn(ctx);
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.done.unbounded_send(());
    }
}

impl Committer {
    /// Sends the slot's next commit now, or when the pacing says.
    fn next_turn(&mut self, ctx: &mut Context<Self>) {
        let Some(interval) = self.interval else {
            return self.send_one(ctx);
        };
        let now = Instant::now();
        // Catch up at most one interval after falling behind, not in a burst.
        let at = self.next_at.max(now.checked_sub(interval).unwrap_or(now));
        self.next_at = at + interval;
        if at > now {
            ctx.run_later(at - now, |act, ctx| act.send_one(ctx));
        } else {
            self.send_one(ctx);
        }
    }

    fn send_one(&mut self, ctx: &mut Context<Self>) {
        if self.control.finished() {
            self.live_slots -= 1;
            if self.live_slots == 0 {
                ctx.stop();
            }
            return;
        }
        let started = Instant::now();
        // The API takes the payload by value: one allocation per commit, on the caller.
        let payload = match &mut self.payloads {
            Some((pool, turn)) => {
                *turn = (*turn + 1) % pool.len();
                pool[*turn].clone()
            }
            None => self.payload.clone(),
        };
        let request = if let Some(wal) = self.wal.clone() {
            Either::Right(Box::pin(async move {
                Ok::<_, MailboxError>(wal.append(payload).await)
            }))
        } else if self.commit_messages {
            Either::Left(Either::Left(
                self.queue
                    .send(Commit::new(vec![payload]).durability(self.durability)),
            ))
        } else {
            Either::Left(Either::Right(
                self.queue
                    .send(Append::new(payload).durability(self.durability)),
            ))
        };
        let buffered = self.durability == Durability::Buffered;
        // Only the buffered figure uses it: a clock read per commit is not free at 1 M/s.
        let enqueued = if buffered {
            started.elapsed()
        } else {
            Duration::ZERO
        };
        let control = self.control.clone();
        ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
            let took = started.elapsed();
            let ok = matches!(res, Ok(Ok(_)));
            if let Ok(Ok(lsn)) = &res {
                control.acked.fetch_max(lsn.0, Ordering::Relaxed);
            }
            if control.recording.load(Ordering::Relaxed) {
                LOCAL.with(|l| {
                    let mut l = l.borrow_mut();
                    let h = l.latency.get_or_insert_with(new_histogram);
                    let _ = h.record((took.as_nanos() as u64).max(1));
                    if buffered {
                        let e = l.enqueue.get_or_insert_with(new_histogram);
                        let _ = e.record((enqueued.as_nanos() as u64).max(1));
                    }
                    if !ok {
                        l.errors += 1;
                    } else if !control.stop.load(Ordering::Relaxed) {
                        l.in_window += 1;
                    }
                });
            }
            act.next_turn(ctx);
        }));
    }
}

/// Runs one workload on a fresh log in `dir` and returns its figures.
pub async fn run(spec: &Spec, dir: &Path) -> Result<Figures, String> {
    drop(take_local());
    let mut config = spec.config.clone();
    if spec.via_wal {
        // `Wal::append` takes the config's durability.
        config.durability = spec.durability;
    }
    let (wal, flusher) = open(dir, config).await?;
    let arbiters: Vec<Arbiter> = (0..spec.arbiters).map(|_| Arbiter::new()).collect();
    let limit = match spec.window {
        Window::Commits(m) => m,
        Window::Time(_) => u64::MAX,
    };
    let control = Arc::new(Control {
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        limit,
        acked: AtomicU64::new(0),
    });
    let interval = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.actors as f64 / r.max(1.0)));
    let (done_tx, mut done_rx) = mpsc::unbounded();
    let begin = Instant::now();
    let warmup = match spec.window {
        Window::Time(_) => spec.warmup,
        Window::Commits(_) => Duration::ZERO,
    };
    if warmup.is_zero() {
        control.recording.store(true, Ordering::Relaxed);
    }
    let (s0_at, s0) = stats(&wal).await?;
    let c0 = clock(&flusher);
    for i in 0..spec.actors {
        let queue = wal.queue().clone();
        let control = control.clone();
        let done = done_tx.clone();
        let payload = vec![0xA5u8; spec.payload_bytes];
        // Each actor starts at its own place in the pool.
        let payloads = spec.payloads.clone().filter(|p| !p.is_empty()).map(|p| {
            let at = i * 7919 % p.len();
            (p, at)
        });
        let (durability, commit_messages, pipeline) =
            (spec.durability, spec.commit_messages, spec.pipeline.max(1));
        // Spread the paced actors' first commits over one interval.
        let next_at =
            begin + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / spec.actors as u32);
        let wal_handle = spec.via_wal.then(|| wal.clone());
        let make = move |_: &mut Context<Committer>| Committer {
            queue,
            payload,
            payloads,
            wal: wal_handle,
            durability,
            commit_messages,
            control,
            interval,
            next_at,
            live_slots: pipeline,
            done,
        };
        if arbiters.is_empty() {
            Committer::create(make);
        } else {
            Committer::start_in_arbiter(&arbiters[i % arbiters.len()].handle(), make);
        }
    }
    drop(done_tx);
    let readers_arbiter = (spec.readers > 0).then(Arbiter::new);
    let (read_tx, read_rx) = mpsc::unbounded();
    if let Some(arbiter) = &readers_arbiter {
        for r in 0..spec.readers as u64 {
            let (wal, control, tx) = (wal.clone(), control.clone(), read_tx.clone());
            arbiter.spawn(async move {
                let _ = tx.unbounded_send(crate::reads::read_loop(wal, control, r).await);
            });
        }
    }
    drop(read_tx);
    let (t0, c0, s0_at, s0) = if warmup.is_zero() {
        (begin, c0, s0_at, s0)
    } else {
        actix_rt::time::sleep(warmup).await;
        control.recording.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        let c0 = clock(&flusher);
        let (at, s) = stats(&wal).await?;
        (t0, c0, at, s)
    };
    let mut stopped = 0;
    let (t1, c1, s1_at, s1) = match spec.window {
        Window::Time(d) => {
            actix_rt::time::sleep(d).await;
            let c1 = clock(&flusher);
            control.stop.store(true, Ordering::Relaxed);
            let t1 = Instant::now();
            let (at, s) = stats(&wal).await?;
            (t1, c1, at, s)
        }
        Window::Commits(_) => {
            while stopped < spec.actors && done_rx.next().await.is_some() {
                stopped += 1;
            }
            let t1 = Instant::now();
            let c1 = clock(&flusher);
            let (at, s) = stats(&wal).await?;
            (t1, c1, at, s)
        }
    };
    while stopped < spec.actors && done_rx.next().await.is_some() {
        stopped += 1;
    }
    control.stop.store(true, Ordering::Relaxed);
    let (mut reads, mut read_errors) = (0u64, 0u64);
    for (n, e) in read_rx.collect::<Vec<_>>().await {
        reads += n;
        read_errors += e;
    }
    if let Some(a) = readers_arbiter {
        a.stop();
        let _ = a.join();
    }
    let mut local = take_local();
    let (tx, rx) = mpsc::unbounded();
    for a in &arbiters {
        let tx = tx.clone();
        a.spawn(async move {
            let _ = tx.unbounded_send(take_local());
        });
    }
    drop(tx);
    for l in rx.collect::<Vec<_>>().await {
        local.merge(l);
    }
    let last = wal.stats().await.map_err(|e| format!("stats: {e}"))?;
    wal.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    for a in arbiters {
        a.stop();
        let _ = a.join();
    }

    let seconds = (t1 - t0).as_secs_f64();
    let stat_secs = (s1_at - s0_at).as_secs_f64().max(1e-9);
    let cpu_secs = (c1.at - c0.at).as_secs_f64().max(1e-9);
    let share = |a: u64, b: u64| Some(b.saturating_sub(a) as f64 / 1e9 / cpu_secs);
    let flushes = s1.flushes - s0.flushes;
    // A rollover batch's mean flush time over an ordinary batch's, in the window.
    let rollovers = s1.rollover_flushes - s0.rollover_flushes;
    let rollover_us = s1.rollover_flush_us_total - s0.rollover_flush_us_total;
    let ordinary_us = (s1.flush_us_total - s0.flush_us_total).saturating_sub(rollover_us);
    let rollover_note = match (rollovers, flushes.saturating_sub(rollovers)) {
        (0, _) | (_, 0) => String::new(),
        (r, o) => format!(
            ", {r} rollover batches: {:.2}x an ordinary batch's flush",
            (rollover_us as f64 / r as f64) / (ordinary_us as f64 / o as f64).max(1e-9)
        ),
    };
    let commits = local.in_window;
    Ok(Figures {
        system: "actix-wal".into(),
        note: format!(
            "{}{}{}{}{}{}{}",
            if spec.durability == Durability::Buffered {
                "buffered"
            } else {
                "durable"
            },
            if spec.commit_messages { ", Commit" } else { "" },
            if spec.via_wal { ", Wal::append" } else { "" },
            match spec.rate {
                Some(r) => format!(", paced {}/s", crate::report::thousands(r)),
                None => String::new(),
            },
            if spec.config.queue_thread == QueueThread::default() {
                String::new()
            } else {
                format!(", queue: {:?}", spec.config.queue_thread)
            },
            if spec.readers > 0 {
                format!(
                    ", {} readers: {}/s reads{}",
                    spec.readers,
                    crate::report::thousands(reads as f64 / seconds),
                    if read_errors > 0 {
                        format!(" ({read_errors} failed)")
                    } else {
                        String::new()
                    }
                )
            } else {
                String::new()
            },
            rollover_note
        ),
        committers: spec.actors,
        payload_bytes: spec.payload_bytes,
        seconds,
        commits,
        commits_per_s: commits as f64 / seconds,
        mb_per_s: (commits * spec.payload_bytes as u64) as f64 / seconds / 1e6,
        disk_mb_per_s: (s1.bytes_written - s0.bytes_written) as f64 / stat_secs / 1e6,
        latency: local.latency.as_ref().map(Latency::of).unwrap_or_default(),
        fsyncs_per_s: Some(flushes as f64 / stat_secs),
        mean_batch: (flushes > 0)
            .then(|| (s1.entries_written - s0.entries_written) as f64 / flushes as f64),
        flusher_cpu: flusher
            .flusher
            .and_then(|_| share(c0.flusher_ns, c1.flusher_ns)),
        queue_thread_cpu: share(c0.queue_ns, c1.queue_ns),
        process_cpu: share(c0.process_ns, c1.process_ns),
        cpu_us_per_commit: None,
        peak_queue_bytes: Some(last.peak_queue_bytes as u64),
        peak_rss_bytes: sys::peak_rss_bytes(),
        caller: local.enqueue.as_ref().map(|h| CallerTime {
            what: "caller time in send()".into(),
            latency: Latency::of(h),
        }),
        errors: local.errors,
    })
}
