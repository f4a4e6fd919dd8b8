//! A log with an actix `System` of its own, for applications that are not actix ones: a
//! tokio application, a test suite that makes a fresh runtime per test, a plain thread.
//!
//! [`Wal::open_standalone`] starts a thread that runs an actix `System`, opens the log on
//! it (recovery, flusher, supervisor, queue), and hands back a [`Wal`] whose messages
//! travel to that thread over the actors' mailboxes: `Addr::send` is a channel, so the
//! handle works from any runtime, or none (`futures::executor::block_on`).
//!
//! The thread keeps a handle of its own, so the queue lives as long as the standalone
//! handles do, whoever else holds an `Addr<Queue>`. [`Wal::shutdown`] asks the thread to
//! shut the log down (flush, answer every waiter, release the lock, join the flusher),
//! then the thread stops its `System` and ends, and `shutdown` joins it. Dropping the last
//! handle does the same, blocking the dropping thread until the thread has ended, so that
//! a reopen right after it finds the directory unlocked.

use crate::config::WalConfig;
use crate::error::WalError;
use crate::wal::Wal;
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What the system thread answers when it has ended: the result of the log's shutdown.
type Done = Shared<oneshot::Receiver<Result<(), WalError>>>;

/// The system thread of a standalone log, shared by every clone of its [`Wal`]. Dropping
/// the last clone shuts the log down and joins the thread.
pub(crate) struct Standalone {
    /// Tells the thread to shut the log down (dropping it does too).
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Resolves when the thread has shut the log down and stopped its `System`.
    done: Done,
    /// The thread, joined by whoever stops it first.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standalone").finish_non_exhaustive()
    }
}

/// A lock that a panicking holder left behind is still usable: the data is an `Option`
/// that is only ever taken.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Standalone {
    /// Shuts the log down on its thread, waits for the thread to end, and joins it.
    /// Every clone may call it; all get the same result.
    pub(crate) async fn shutdown(&self) -> Result<(), WalError> {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        let result = self.done.clone().await;
        // The thread sends `done` as its last act, so this join waits microseconds.
        let joined = lock(&self.thread).take().map(JoinHandle::join);
        match (result, joined) {
            (_, Some(Err(_))) | (Err(_), _) => Err(WalError::Poisoned {
                reason: "the log's actix system thread panicked".into(),
            }),
            (Ok(result), _) => result,
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        if let Some(thread) = lock(&self.thread).take() {
            // Never join from the system thread itself (it would wait for itself).
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                tracing::error!("the log's actix system thread panicked");
            }
        }
    }
}

/// Starts the system thread, opens the log on it, and returns a handle once the log takes
/// appends (see [`Wal::open_standalone`]).
pub(crate) async fn open(dir: &Path, config: WalConfig) -> Result<Wal, WalError> {
    let dir: PathBuf = dir.to_path_buf();
    let (opened_tx, opened_rx) = oneshot::channel::<Result<Wal, WalError>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<Result<(), WalError>>();
    let thread_dir = dir.clone();
    let thread = std::thread::Builder::new()
        .name("actix-wal-system".into())
        .spawn(move || run(thread_dir, config, opened_tx, stop_rx, done_tx))
        .map_err(|e| WalError::io("spawn the log's system thread", &dir, e))?;
    let done = done_rx.shared();
    match opened_rx.await {
        Ok(Ok(inner)) => Ok(inner.with_standalone(Arc::new(Standalone {
            stop: Mutex::new(Some(stop_tx)),
            done,
            thread: Mutex::new(Some(thread)),
        }))),
        Ok(Err(e)) => {
            // The thread stops its System at once; wait for it, then join.
            let _ = done.await;
            let _ = thread.join();
            Err(e)
        }
        Err(oneshot::Canceled) => {
            let _ = done.await;
            let _ = thread.join();
            Err(WalError::Poisoned {
                reason: "the log's actix system thread panicked while opening the log".into(),
            })
        }
    }
}

/// The system thread: open the log, hand a handle out, wait to be told to stop (or for
/// every standalone handle to be gone), shut the log down, stop the System.
fn run(
    dir: PathBuf,
    config: WalConfig,
    opened: oneshot::Sender<Result<Wal, WalError>>,
    stop: oneshot::Receiver<()>,
    done: oneshot::Sender<Result<(), WalError>>,
) {
    let runner = actix::System::new();
    let result = match runner.block_on(Wal::open(&dir, config)) {
        Err(e) => {
            let _ = opened.send(Err(e));
            Ok(())
        }
        Ok(wal) => {
            // If the opener went away (its future was dropped), the log is shut down at
            // once: `stop` resolves as soon as its sender is dropped.
            let _ = opened.send(Ok(wal.clone()));
            runner.block_on(async move {
                let _ = stop.await;
                wal.shutdown().await
            })
        }
    };
    actix::System::current().stop();
    if let Err(e) = runner.run() {
        tracing::warn!(%e, "the log's actix system stopped with an error");
    }
    let _ = done.send(result);
}
