//! `Wal`: the handle an application holds. `Wal::open` runs the `Recovery` actor, starts
//! the `Supervisor` (which starts the `Flusher` on its own arbiter) and the `Queue` (on an
//! arbiter of its own, or the caller's: `WalConfig::queue_thread`); the methods are thin wrappers over the queue's messages, for callers that are not actors.
//! Transaction actors can also send the messages to [`Wal::queue`] directly.

use crate::actors::queue::{
    Append, Commit, Flush, GetStats, Queue, QueueSetup, SetMode, Shutdown, TruncateBefore,
};
use crate::actors::recovery::{Recover, Recovery, RecoveryReport};
use crate::actors::supervisor::{RestartFlusher, SetQueue, StartFlusher, StopFlusher, Supervisor};
use crate::config::{QueueThread, WalConfig};
use crate::error::WalError;
use crate::health::{GetHealth, Health};
use crate::lsn::Lsn;
use crate::queue_thread::{self, JoinQueueThread, QueueKeeper};
use crate::standalone::Standalone;
use crate::stats::{WalMode, WalStats};
use actix::prelude::*;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tracing::Instrument;

/// A handle to an open log. Cheap to clone; every clone talks to the same actors.
///
/// [`Wal::open`] runs the actors on the caller's actix `System` (and must be called
/// inside one); [`Wal::open_standalone`] and [`Wal::open_blocking`] give the log a
/// `System` thread of its own, for callers that have none. Either handle can be used from
/// any thread or runtime.
#[derive(Clone, Debug)]
pub struct Wal {
    queue: Addr<Queue>,
    supervisor: Addr<Supervisor>,
    report: Arc<RecoveryReport>,
    /// The keeper of the queue's own arbiter (`QueueThread::Own`): told to join it at
    /// shutdown. `None` when the queue runs on the caller's arbiter.
    queue_keeper: Option<Addr<QueueKeeper>>,
    /// The log's own system thread, for a standalone log: stopped and joined by
    /// `shutdown` or when the last clone is dropped.
    standalone: Option<Arc<Standalone>>,
}

fn closed(_: MailboxError) -> WalError {
    WalError::ShutDown
}

impl Wal {
    /// Opens the log in `dir` (created if missing): recovery runs first (and replay, if
    /// `config.replay_to` is set), then the actors start. Returns once the log takes appends.
    pub async fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Wal, WalError> {
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
    /// same as `shutdown` (an `Addr<Queue>` taken from [`Wal::queue`] does not keep it
    /// open), and blocks the dropping thread until the log's thread has ended, so a reopen
    /// right after finds the directory unlocked. Prefer `shutdown().await` in async code.
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
    pub(crate) fn with_standalone(mut self, standalone: Arc<Standalone>) -> Wal {
        self.standalone = Some(standalone);
        self
    }

    async fn open_inner(dir: std::path::PathBuf, config: WalConfig) -> Result<Wal, WalError> {
        config.validate()?;
        let started = std::time::Instant::now();
        let cfg = Arc::new(config);
        let recovery = Recovery::new(
            dir.clone(),
            cfg.log_options(),
            cfg.replay_to.clone(),
            cfg.replay_chunk_records,
            cfg.max_queue_bytes,
        )
        .start();
        let recovered = recovery.send(Recover).await.map_err(closed)??;
        drop(recovery);
        let current = Arc::new(AtomicU64::new(0));
        let supervisor = Supervisor::new(cfg.clone(), dir.clone(), current.clone()).start();
        let flusher = supervisor.send(StartFlusher).await.map_err(closed)?;
        let queue_thread = cfg.queue_thread;
        let setup = QueueSetup {
            cfg,
            dir: recovered.dir,
            planner: recovered.planner,
            flusher,
            current_generation: current,
            supervisor: supervisor.clone().recipient(),
            stop_supervisor: supervisor.clone().recipient(),
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
        tracing::debug!(
            next_lsn = %recovered.report.next_lsn,
            records = recovered.report.records,
            duration_ms = started.elapsed().as_millis() as u64,
            "log open"
        );
        Ok(Wal {
            queue,
            supervisor,
            report: Arc::new(recovered.report),
            queue_keeper,
            standalone: None,
        })
    }

    /// What recovery found and did at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The queue actor, for transaction actors that send [`Append`] or [`Commit`] themselves.
    pub fn queue(&self) -> &Addr<Queue> {
        &self.queue
    }

    /// Appends a record durably (or as the config's default durability says). Resolves to
    /// its LSN once it is fsynced.
    pub async fn append(&self, payload: impl Into<Vec<u8>>) -> Result<Lsn, WalError> {
        self.send(Append::new(payload)).await
    }

    /// Commits a transaction (all entries or none after a crash). Resolves to the LSN of
    /// its first entry once it is fsynced.
    pub async fn commit(&self, entries: Vec<Vec<u8>>) -> Result<Lsn, WalError> {
        self.send(Commit::new(entries)).await
    }

    /// Sends any of the queue's messages and maps a stopped queue to [`WalError::ShutDown`].
    pub async fn send<M>(&self, msg: M) -> Result<Lsn, WalError>
    where
        M: Message<Result = Result<Lsn, WalError>> + Send + 'static,
        Queue: Handler<M>,
    {
        self.queue.send(msg).await.map_err(closed)?
    }

    /// Makes everything appended so far durable; resolves to the highest durable LSN.
    pub async fn flush(&self) -> Result<Lsn, WalError> {
        self.send(Flush).await
    }

    /// The log's figures.
    pub async fn stats(&self) -> Result<WalStats, WalError> {
        self.queue.send(GetStats).await.map_err(closed)
    }

    /// How the log is: mode, flusher, poison, queue depth, active alerts.
    pub async fn health(&self) -> Result<Health, WalError> {
        self.queue.send(GetHealth).await.map_err(closed)
    }

    /// Switches between `WalMode::Async` and `WalMode::Sync` at run time.
    pub async fn set_mode(&self, mode: WalMode) -> Result<(), WalError> {
        self.queue.send(SetMode(mode)).await.map_err(closed)?
    }

    /// Removes whole segments whose records all lie below `lsn` (a checkpoint). Returns the
    /// number of segments removed.
    pub async fn truncate_before(&self, lsn: Lsn) -> Result<usize, WalError> {
        self.queue.send(TruncateBefore(lsn)).await.map_err(closed)?
    }

    /// Asks the supervisor to try a flusher restart now (after it gave up).
    pub async fn restart_flusher(&self) -> Result<(), WalError> {
        self.supervisor.send(RestartFlusher).await.map_err(closed)
    }

    /// Stops taking appends, writes and fsyncs everything queued, answers every waiter,
    /// releases the directory lock, stops the flusher and joins its thread, and the
    /// queue's own thread if it has one. Later appends get [`WalError::ShutDown`] (a
    /// `send` to an `Addr<Queue>` kept from [`Wal::queue`] gets `MailboxError::Closed`
    /// once the queue's own thread is gone). Returns the poisoning error if the log was
    /// poisoned. For a standalone log, also stops its `System` and joins its thread.
    pub async fn shutdown(&self) -> Result<(), WalError> {
        if let Some(standalone) = &self.standalone {
            return standalone.shutdown().await;
        }
        let span = tracing::debug_span!("shutdown");
        async {
            let started = std::time::Instant::now();
            let result = match self.queue.send(Shutdown).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            };
            let _ = self.supervisor.send(StopFlusher).await;
            if let Some(keeper) = &self.queue_keeper {
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
