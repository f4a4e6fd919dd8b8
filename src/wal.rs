//! `Wal`: the handle an application holds. `Wal::open` runs the `Recovery` actor, starts
//! the `Supervisor` (which starts the `Flusher` on its own arbiter) and the `Queue` (on an
//! arbiter of its own, or the caller's: `WalConfig::queue_thread`); the methods are thin wrappers over the queue's messages, for callers that are not actors.
//! Transaction actors can also send the messages to [`Wal::queue`] directly.

use crate::actors::queue::entry::AppendEntry;
use crate::actors::queue::{Intake, Pushed, Queue, QueueSetup};
use crate::actors::reader::Reads;
use crate::actors::recovery::{Recover, Recovery};
use crate::actors::supervisor::{RestartFlusher, SetQueue, StartFlusher, StopFlusher, Supervisor};
use crate::config::{QueueThread, WalConfig};
use crate::error::WalError;
use crate::health::{GetHealth, Health};
use crate::lsn::Lsn;
use crate::messages::{
    Flush, GetStats, RecoveryReport, Reset, SetMode, Shutdown, TruncateAfter, TruncateBefore,
    WaitDurable,
};
use crate::queue_thread::{self, JoinQueueThread, QueueKeeper};
use crate::standalone::Standalone;
use crate::stats::{CommitMode, WalStats};
use actix::prelude::*;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use tracing::Instrument;

/// A handle to an open log. Cheap to clone (one reference count); every clone talks to
/// the same actors.
///
/// [`Wal::open`] runs the actors on the caller's actix `System` (and must be called
/// inside one); [`Wal::open_standalone`] and [`Wal::open_blocking`] give the log a
/// `System` thread of its own, for callers that have none. Either handle can be used from
/// any thread or runtime.
#[derive(Clone, Debug)]
pub struct Wal {
    inner: Arc<Handles>,
}

/// What every clone of a [`Wal`] shares.
#[derive(Clone, Debug)]
struct Handles {
    queue: Addr<Queue>,
    supervisor: Addr<Supervisor>,
    report: Arc<RecoveryReport>,
    /// Reads by LSN (`actors/reader.rs`): in place or on the reader pool, never on the
    /// queue's thread.
    reads: Reads,
    /// The keeper of the queue's own arbiter (`QueueThread::Own`): told to join it at
    /// shutdown. `None` when the queue runs on the caller's arbiter.
    queue_keeper: Option<Addr<QueueKeeper>>,
    /// The log's own system thread, for a standalone log: stopped and joined by
    /// `shutdown` or when the last clone is dropped.
    standalone: Option<Arc<Standalone>>,
    /// The log's metadata file, for [`Wal::meta`] (written only through the queue).
    meta: Arc<crate::log::SharedMeta>,
    /// The queue's durable end and cuts, for subscriptions ([`Wal::subscribe`]).
    progress: crate::progress::ProgressRx,
    /// `WalConfig::compression`: with it on, [`Wal::append`], [`Wal::commit`] and
    /// [`Wal::append_batch`] compress on the caller's thread, not the queue's.
    compression: crate::config::Compression,
    /// Where [`Wal::append`], [`Wal::commit`] and [`Wal::append_batch`] put their entries
    /// for the queue (`actors/queue/intake.rs`): no actix message each.
    intake: Arc<Intake>,
    /// `WalConfig::replay_from` (0 when unset): [`Wal::replay`] starts there at the
    /// earliest, as `replay_to` does.
    replay_from: Lsn,
}

mod opened;
mod reads;

fn closed(_: MailboxError) -> WalError {
    WalError::ShutDown
}

impl Wal {
    /// Opens the log in `dir` (created if missing): recovery runs first (and replay, if
    /// `config.replay_to` is set), then the actors start. Returns once the log takes appends.
    ///
    /// It must be called on a thread that runs an actix `System` (`actix::System`,
    /// `#[actix::main]`, `#[actix::test]`, an actix-web server); anywhere else (plain
    /// tokio, no runtime) it fails with [`WalError::NoActixSystem`], which names
    /// [`Wal::open_standalone`], the open for those callers.
    pub async fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Wal, WalError> {
        // Without a System the first actor start below would panic inside tokio
        // (`spawn_local` outside a `LocalSet`), and the flusher's arbiter needs one too.
        if actix::System::try_current().is_none() {
            return Err(WalError::NoActixSystem);
        }
        let dir = dir.as_ref().to_path_buf();
        let span = tracing::debug_span!("open", dir = %dir.display());
        Wal::open_inner(dir, config).instrument(span).await
    }

    /// Opens the log in `dir` like [`Wal::open`], but needs no actix `System`: the actors
    /// run on an actix `System` on a thread of the log's own, so this can be awaited from
    /// any async runtime (a tokio application, a test that makes a fresh runtime per test)
    /// and the handle works from any runtime or thread.
    ///
    /// [`Wal::shutdown`] shuts the log down, stops that `System` and joins its thread.
    /// The log lives as long as its standalone handles: dropping the last one does the
    /// same as `shutdown` (an `Addr<Queue>` taken from [`Wal::queue`], a subscription, a
    /// [`crate::Cursor`] and a [`crate::Replay`] do not keep it open), and blocks the
    /// dropping thread until the log's thread has ended, so a reopen right after finds
    /// the directory unlocked. Prefer `shutdown().await` in async code.
    pub async fn open_standalone(
        dir: impl AsRef<Path>,
        config: WalConfig,
    ) -> Result<Wal, WalError> {
        crate::standalone::open(dir.as_ref(), config).await
    }

    /// [`Wal::open_standalone`] for plain threads: blocks until the log takes appends.
    /// Call it outside any async runtime (inside one, await `open_standalone` instead);
    /// the other methods are async and can be driven with `futures::executor::block_on`.
    pub fn open_blocking(dir: impl AsRef<Path>, config: WalConfig) -> Result<Wal, WalError> {
        futures::executor::block_on(crate::standalone::open(dir.as_ref(), config))
    }

    /// This handle, owning the standalone system thread it runs on.
    /// (The system thread keeps a clone without it, so it gets handles of its own.)
    pub(crate) fn with_standalone(self, standalone: Arc<Standalone>) -> Wal {
        let mut handles = Handles::clone(&self.inner);
        handles.standalone = Some(standalone);
        Wal {
            inner: Arc::new(handles),
        }
    }

    /// The queue's durable end and cuts, for subscriptions.
    pub(crate) fn progress(&self) -> &crate::progress::ProgressRx {
        &self.inner.progress
    }

    /// `WalConfig::replay_from` (0 when unset).
    pub(crate) fn replay_from(&self) -> Lsn {
        self.inner.replay_from
    }

    /// A handle that does not keep a standalone log open (for what follows the log, such
    /// as a [`crate::Subscription`], which ends when the log shuts down): once the
    /// application's last handle goes, its calls are [`WalError::ShutDown`].
    pub(crate) fn detached(&self) -> Wal {
        if self.inner.standalone.is_none() {
            return self.clone();
        }
        let mut handles = Handles::clone(&self.inner);
        handles.standalone = None;
        Wal {
            inner: Arc::new(handles),
        }
    }

    async fn open_inner(dir: std::path::PathBuf, mut config: WalConfig) -> Result<Wal, WalError> {
        config.validate()?;
        // Every part of the log (recovery, the flusher, the queue, the readers) creates
        // files with the modes `group_read` asks for.
        config.storage = config.log_storage();
        let started = std::time::Instant::now();
        let cfg = Arc::new(config);
        let recovery = Recovery::new(
            dir.clone(),
            cfg.log_options(),
            cfg.replay_to.clone(),
            cfg.replay_chunk_records,
            cfg.max_queue_bytes,
        )
        .starting(cfg.first_lsn, cfg.replay_from)
        .start();
        let recovered = recovery.send(Recover).await.map_err(closed)??;
        drop(recovery);
        let (progress_tx, progress) = crate::progress::channel(recovered.index.durable_end());
        let index = Arc::new(RwLock::new(recovered.index));
        // With `QueueThread::Caller` the queue starts on this thread's arbiter below: reads
        // from this thread go to the pool, so they never run on the queue's thread.
        let queue_thread =
            (cfg.queue_thread == QueueThread::Caller).then(|| std::thread::current().id());
        let reads = Reads::start(
            cfg.storage.clone(),
            dir.clone(),
            index.clone(),
            cfg.max_record_bytes,
            queue_thread,
        );
        let current = Arc::new(AtomicU64::new(0));
        let supervisor = Supervisor::new(cfg.clone(), dir.clone(), current.clone())
            .with_meta(recovered.dir.meta().clone())
            .start();
        let flusher = supervisor.send(StartFlusher).await.map_err(closed)?;
        let meta = recovered.dir.meta().clone();
        let queue_thread = cfg.queue_thread;
        let compression = cfg.compression;
        let replay_from = cfg.replay_from.unwrap_or(Lsn(0));
        let intake = Intake::new(cfg.max_queue_entries, cfg.max_queue_bytes);
        let storage = cfg.storage.clone();
        let segments_before = opened::segment_paths(&storage, &dir);
        let setup = QueueSetup {
            cfg,
            dir: recovered.dir,
            planner: recovered.planner,
            flusher,
            current_generation: current,
            supervisor: supervisor.clone().recipient(),
            stop_supervisor: supervisor.clone().recipient(),
            index,
            progress: progress_tx,
            intake: intake.clone(),
        };
        let (queue, queue_keeper) = match queue_thread {
            QueueThread::Own => {
                let (queue, keeper) = queue_thread::start(setup, supervisor.clone());
                (queue, Some(keeper))
            }
            QueueThread::Caller => (Queue::new(setup).start(), None),
        };
        supervisor
            .send(SetQueue(queue.clone()))
            .await
            .map_err(closed)?;
        let mut report = recovered.report;
        opened::amend_report(&mut report, &queue, &storage, &dir, segments_before).await?;
        tracing::debug!(
            next_lsn = %report.next_lsn,
            records = report.records,
            duration_ms = started.elapsed().as_millis() as u64,
            "log open"
        );
        Ok(Wal {
            inner: Arc::new(Handles {
                queue,
                supervisor,
                report: Arc::new(report),
                reads,
                queue_keeper,
                standalone: None,
                meta,
                progress,
                compression,
                intake,
                replay_from,
            }),
        })
    }

    /// What recovery found and did at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The queue actor, for transaction actors that send [`Append`](crate::Append) or
    /// [`Commit`](crate::Commit) themselves.
    ///
    /// Its messages keep their order with this handle's appends ([`Wal::append`],
    /// [`Wal::commit`], [`Wal::append_batch`]) when sent on the address as it is returned
    /// (`wal.queue().send(..)`): appends started before the call come first, those started
    /// after it later. An address kept and used later is not ordered against the handle's
    /// appends started meanwhile unless their replies are awaited between them.
    pub fn queue(&self) -> &Addr<Queue> {
        self.mailbox()
    }

    /// The queue's address for a message of the handle's own, with the appends started
    /// before it fenced off (`actors/queue/intake.rs`): they are handled before it.
    fn mailbox(&self) -> &Addr<Queue> {
        self.inner.intake.fence();
        &self.inner.queue
    }

    /// Appends a record durably (or as the config's default durability says). Resolves to
    /// its LSN once it is fsynced.
    ///
    /// With `WalConfig::compression` on, the payload is compressed here, on the caller's
    /// thread (an `Append` sent to [`Wal::queue`] is compressed on the queue's).
    ///
    /// As with a `send()`, do not wrap it in a timeout: an append whose future is dropped
    /// after its first poll may or may not be in the log (it is usually written, its reply
    /// lost; when the queue's intake is full it went as a message, which actix may drop).
    pub async fn append(&self, payload: impl Into<Vec<u8>>) -> Result<Lsn, WalError> {
        let compression = &self.inner.compression;
        self.submit(AppendEntry::record(payload.into(), compression))
            .await
    }

    /// Commits a transaction (all entries or none after a crash). Resolves to the LSN of
    /// its first entry once it is fsynced.
    /// Compressed on the caller's thread, as [`Wal::append`] says.
    pub async fn commit(&self, entries: Vec<Vec<u8>>) -> Result<Lsn, WalError> {
        self.submit(AppendEntry::txn(entries, &self.inner.compression))
            .await
    }

    /// Appends many records durably (or as the config's default durability says), each in
    /// a frame of its own, with consecutive LSNs. Resolves to the first LSN once the last
    /// is fsynced. Not atomic (see [`AppendBatch`](crate::AppendBatch)).
    /// Compressed on the caller's thread, as [`Wal::append`] says.
    pub async fn append_batch(&self, records: Vec<Vec<u8>>) -> Result<Lsn, WalError> {
        self.submit(AppendEntry::records(records, &self.inner.compression))
            .await
    }

    /// Puts an entry into the queue's intake (`actors/queue/intake.rs`), or sends it as a
    /// message when the intake is at its bounds; answered as its message would be.
    async fn submit(&self, entry: AppendEntry) -> Result<Lsn, WalError> {
        match self.inner.intake.push(entry, &self.inner.queue) {
            Pushed::Taken(reply) => reply.await.unwrap_or(Err(WalError::ShutDown)),
            // Boxed: the rare path would otherwise size every append's future (576
            // bytes with it inline, moved at each spawn or box of the caller's).
            Pushed::Full(entry) => Box::pin(self.send(entry)).await,
            Pushed::Closed => Err(WalError::ShutDown),
        }
    }

    /// Sends a queue message whose reply is a `Result<R, WalError>` — [`Append`](crate::Append),
    /// [`Commit`](crate::Commit), [`AppendBatch`](crate::AppendBatch), [`Flush`], [`WaitDurable`] (`R` = [`Lsn`]), [`SetMode`], [`Shutdown`] (`R` = `()`),
    /// [`TruncateBefore`] (`R` = `usize`) — and flattens the reply: a stopped queue is
    /// [`WalError::ShutDown`]. [`GetStats`] and [`GetHealth`](crate::GetHealth), whose
    /// replies are not results, go through [`Wal::stats`] and [`Wal::health`].
    pub async fn send<M, R>(&self, msg: M) -> Result<R, WalError>
    where
        M: Message<Result = Result<R, WalError>> + Send + 'static,
        R: Send + 'static,
        Queue: Handler<M>,
    {
        self.open_or_shut_down()?;
        self.mailbox().send(msg).await.map_err(closed)?
    }

    /// `ShutDown` once the log has shut down (whichever thread its queue ran on: with
    /// `QueueThread::Caller` the queue actor outlives the shutdown and would still answer
    /// figures of a log no longer open).
    fn open_or_shut_down(&self) -> Result<(), WalError> {
        match self.progress().rx.borrow().closed {
            true => Err(WalError::ShutDown),
            false => Ok(()),
        }
    }

    /// Makes everything appended so far durable; resolves to the highest durable LSN.
    pub async fn flush(&self) -> Result<Lsn, WalError> {
        self.send(Flush).await
    }

    /// Resolves with `lsn` once every record up to and including it is durable (at once if
    /// it already is), or with the error that prevented it; [`WalError::LsnNotAssigned`]
    /// for an LSN the log has not given out (at or past the next LSN, 0, or below where
    /// the log started). See [`WaitDurable`].
    ///
    /// After [`Wal::shutdown`], an LSN that was durable is still answered at once (what is
    /// durable stays so), whichever thread the queue ran on; any other is
    /// [`WalError::ShutDown`].
    pub async fn wait_durable(&self, lsn: Lsn) -> Result<Lsn, WalError> {
        let shut = {
            let p = self.progress().rx.borrow();
            p.closed.then_some(p.durable_end)
        };
        match shut {
            Some(end) if lsn.0 >= 1 && lsn.0 < end => Ok(lsn),
            Some(_) => Err(WalError::ShutDown),
            None => self.send(WaitDurable(lsn)).await,
        }
    }

    /// The log's figures.
    pub async fn stats(&self) -> Result<WalStats, WalError> {
        self.open_or_shut_down()?;
        self.mailbox().send(GetStats).await.map_err(closed)
    }

    /// How the log is: mode, flusher, poison, queue depth, active alerts.
    pub async fn health(&self) -> Result<Health, WalError> {
        self.open_or_shut_down()?;
        self.mailbox().send(GetHealth).await.map_err(closed)
    }

    /// Switches between `CommitMode::Async` and `CommitMode::Sync` at run time (the log
    /// enters and leaves `WalMode::Degraded` by itself).
    pub async fn set_mode(&self, mode: CommitMode) -> Result<(), WalError> {
        self.mailbox().send(SetMode(mode)).await.map_err(closed)?
    }

    /// Removes whole segments whose records all lie below `lsn` (a checkpoint). Returns the
    /// number of segments removed. If a removal fails (`PermissionDenied`, an I/O error)
    /// once the new checkpoint is durable in `META`, that error is returned, and the
    /// checkpoint stands all the same: reads begin at the new first LSN, and the next
    /// retention run removes the segments left.
    pub async fn truncate_before(&self, lsn: Lsn) -> Result<usize, WalError> {
        self.mailbox()
            .send(TruncateBefore(lsn))
            .await
            .map_err(closed)?
    }

    /// Rewind: durably removes every record with an LSN above `lsn`; the next append gets
    /// `lsn + 1`. Waits until every record up to `lsn` is durable; appends not answered yet
    /// whose records lie above it fail with [`WalError::TruncatedAway`]. `lsn` + 1 equal
    /// to the first LSN empties the log. Refused, changing nothing: `lsn` + 1 below the
    /// first LSN ([`WalError::BelowFirstLsn`]), `lsn` at or past the next LSN
    /// ([`WalError::LsnNotAssigned`]), `lsn` + 1 inside a transaction
    /// ([`WalError::SplitsTransaction`]) or inside an append batch not yet answered
    /// ([`WalError::SplitsBatch`]). Crash-safe: after a crash, recovery yields the log
    /// before or after the rewind, and after once it answered. See [`TruncateAfter`].
    pub async fn truncate_after(&self, lsn: Lsn) -> Result<(), WalError> {
        self.send(TruncateAfter(lsn)).await
    }

    /// Removes every record; the log's first LSN and the next append's LSN become
    /// `next_lsn` (a Raft follower installing a snapshot). The metadata slot stays.
    /// Appends not answered yet fail with [`WalError::TruncatedAway`]. Refused, changing
    /// nothing, when `next_lsn` is below the next LSN, also on an empty log (an LSN is
    /// never given out twice: [`WalError::WouldReuseLsns`]) or outside `1..=2^63-1` ([`WalError::LsnOutOfRange`]).
    /// Crash-safe like [`Wal::truncate_after`]. See [`Reset`].
    pub async fn reset(&self, next_lsn: Lsn) -> Result<(), WalError> {
        self.send(Reset(next_lsn)).await
    }

    /// Replaces the application's metadata slot (a Raft vote, a checkpoint's position):
    /// durable before it answers, all or nothing, never removed by truncation, found again
    /// at open in [`RecoveryReport::meta`]. The log's first value is written into `META`
    /// (which then turns format version 3: builds before this one refuse the log); later
    /// ones go into the log as a slot frame with the appends gathering, at the cost of a
    /// share of their `fdatasync` (docs/format.md, "Slot frames"). More than
    /// `WalConfig::max_meta_bytes` is [`WalError::MetaTooLarge`] and changes nothing. A
    /// failure while writing it ([`WalError::Io`], [`WalError::Poisoned`] raised by this
    /// call) leaves the outcome unknown: the old value or the new one, whole, after the
    /// next open.
    pub async fn set_meta(&self, bytes: impl Into<Vec<u8>>) -> Result<(), WalError> {
        self.mailbox()
            .send(crate::messages::SetMeta(bytes.into()))
            .await
            .map_err(closed)?
    }

    /// The metadata slot's current value: the last one made durable by
    /// [`Wal::set_meta`] (or found at open); `None` if it was never set.
    pub fn meta(&self) -> Option<Vec<u8>> {
        self.inner.meta.current().and_then(|m| m.slot.clone())
    }

    /// Asks the supervisor to try a flusher restart now (after it gave up).
    pub async fn restart_flusher(&self) -> Result<(), WalError> {
        self.inner
            .supervisor
            .send(RestartFlusher)
            .await
            .map_err(closed)
    }

    /// Stops taking appends, writes and fsyncs everything queued, answers every waiter,
    /// lets the flusher finish its last I/O in the directory, releases the directory
    /// lock, stops the flusher and joins its thread, and the
    /// queue's own thread if it has one. Later calls on the handle get
    /// [`WalError::ShutDown`], whichever thread the queue ran on (a `send` to an
    /// `Addr<Queue>` kept from [`Wal::queue`] gets `MailboxError::Closed` once the queue's
    /// own thread is gone). Returns the poisoning error if the log was
    /// poisoned. For a standalone log, also stops its `System` and joins its thread.
    /// A log whose queue is already gone (shut down before, or its `System` stopped)
    /// returns `Ok` again: nothing is left queued (each append it held was answered, or
    /// failed with an error: none is acknowledged unwritten).
    pub async fn shutdown(&self) -> Result<(), WalError> {
        if let Some(standalone) = &self.inner.standalone {
            return standalone.shutdown().await;
        }
        let span = tracing::debug_span!("shutdown");
        async {
            let started = std::time::Instant::now();
            let result = match self.mailbox().send(Shutdown).await {
                Ok(r) => r,
                // The queue is gone: shut down before (or its System stopped), every
                // message in its mailbox answered or dropped with its sender's error.
                Err(_) => Ok(()),
            };
            let _ = self
                .inner
                .supervisor
                .send(StopFlusher { release: None })
                .await;
            if let Some(keeper) = &self.inner.queue_keeper {
                let _ = keeper.send(JoinQueueThread).await;
            }
            tracing::debug!(
                duration_ms = started.elapsed().as_millis() as u64,
                ok = result.is_ok(),
                "log shut down"
            );
            result
        }
        .instrument(span)
        .await
    }
}
