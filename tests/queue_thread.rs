//! The log's thread belongs to the log: with `QueueThread::Own` an application actor that
//! holds up the `System` arbiter does not hold up commits (with the default `Caller` it
//! does, which is what `Own` is for);
//! `shutdown` joins the queue's thread, and dropping every handle stops it and releases
//! the directory, so the log reopens in the same process.

use actix::prelude::*;
use actix_wal::*;
use std::path::Path;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the blocker holds its thread at most. Generous: the test passes as soon as
/// the commit is answered, and fails (never hangs) if it waits for the blocker.
const BLOCK_AT_MOST: Duration = Duration::from_secs(10);

/// The tests run one at a time: one of them counts the process's arbiter threads.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Small segments: preallocating the default 64 MiB one is slow on some file systems.
fn cfg(queue_thread: QueueThread) -> WalConfig {
    WalConfig::default()
        .segment_size_bytes(1 << 20)
        .queue_thread(queue_thread)
}

/// An application actor whose handler blocks its thread until told to stop (or
/// `BLOCK_AT_MOST` passes), like a rehash of a big map or a slow computation.
struct Blocker;

impl Actor for Blocker {
    type Context = Context<Self>;
}

/// Block until `release` receives (or `at_most` passes); replies whether it was released.
#[derive(Message)]
#[rtype(result = "bool")]
struct Block {
    at_most: Duration,
    release: mpsc::Receiver<()>,
    blocking: mpsc::Sender<()>,
}

impl Handler<Block> for Blocker {
    type Result = bool;

    fn handle(&mut self, msg: Block, _: &mut Self::Context) -> bool {
        let _ = msg.blocking.send(());
        msg.release.recv_timeout(msg.at_most).is_ok()
    }
}

/// Blocks the System arbiter (where `Wal::open` ran) for `at_most` and commits from
/// another thread. Returns whether the commit was answered while the arbiter was blocked.
async fn commit_while_the_system_arbiter_is_blocked(
    dir: &Path,
    queue_thread: QueueThread,
    at_most: Duration,
) -> bool {
    let wal = Wal::open(dir, cfg(queue_thread)).await.unwrap();
    let (release_tx, release_rx) = mpsc::channel();
    let (blocking_tx, blocking_rx) = mpsc::channel();
    let committer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            // Once the blocker holds the System arbiter, commit; release it once answered.
            blocking_rx.recv().unwrap();
            let lsn = futures::executor::block_on(wal.append(b"through".to_vec()));
            let _ = release_tx.send(());
            lsn
        })
    };
    let released = Blocker
        .start()
        .send(Block {
            at_most,
            release: release_rx,
            blocking: blocking_tx,
        })
        .await
        .unwrap();
    let lsn = actix_rt::task::spawn_blocking(move || committer.join().unwrap())
        .await
        .unwrap();
    assert_eq!(lsn.unwrap(), Lsn(1), "the commit is answered in the end");
    wal.shutdown().await.unwrap();
    released
}

#[test]
fn a_blocked_system_arbiter_does_not_hold_up_commits_on_the_queues_own_thread() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let released = actix::System::new().block_on(commit_while_the_system_arbiter_is_blocked(
        d.path(),
        QueueThread::Own,
        BLOCK_AT_MOST,
    ));
    assert!(
        released,
        "the commit waited for the blocked System arbiter ({BLOCK_AT_MOST:?})"
    );
}

#[test]
fn on_the_callers_arbiter_a_blocked_handler_holds_up_commits() {
    let _serial = serial();
    // What `QueueThread::Caller` (the default) trades for its shorter path. However long
    // the block, the queue cannot answer while its thread is held, so one second will do.
    let d = tempfile::tempdir().unwrap();
    let at_most = Duration::from_secs(1);
    let released = actix::System::new().block_on(commit_while_the_system_arbiter_is_blocked(
        d.path(),
        QueueThread::Caller,
        at_most,
    ));
    assert!(!released, "the commit was answered by a blocked arbiter");
}

/// Threads of this process named as actix arbiters.
fn arbiter_threads() -> usize {
    threads()
        .iter()
        .filter(|(name, _)| name.starts_with("actix-rt|"))
        .count()
}

/// Every thread of this process: its name and its state line (for failure messages).
fn threads() -> Vec<(String, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let path = t.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            let state = status
                .lines()
                .find(|l| l.starts_with("State:"))
                .unwrap_or("")
                .to_owned();
            Some((name.trim_end().to_owned(), state))
        })
        .collect()
}

#[test]
fn shutdown_joins_the_queues_thread_and_dropping_every_handle_stops_it() {
    let _serial = serial();
    actix::System::new().block_on(async {
        let d = tempfile::tempdir().unwrap();
        let before = arbiter_threads();

        let wal = Wal::open(d.path(), cfg(QueueThread::Own)).await.unwrap();
        let queue = wal.queue().clone();
        assert_eq!(wal.append(b"one".to_vec()).await.unwrap(), Lsn(1));
        // The flusher's and the queue's. A thread an arbiter has just spawned (the spare
        // helper) carries its creator's name until it first runs and names itself, so
        // the count may be one over for a moment (seen here under load, 4 runs in 30).
        let named_until = Instant::now() + Duration::from_secs(1);
        while cfg!(target_os = "linux") && arbiter_threads() != before + 2 {
            assert!(
                Instant::now() < named_until,
                "{} arbiter threads, {before} before the log: the flusher's and the queue's \
                 are two; threads: {:?}",
                arbiter_threads(),
                threads()
            );
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
        wal.shutdown().await.unwrap();
        // Joined, so both threads have run their last line; the kernel may still list one
        // for a moment (state R: `pthread_join` returns when the exiting thread's id is
        // cleared, before its task is removed; seen here in 2 runs of 30).
        let listed_until = Instant::now() + Duration::from_secs(1);
        while cfg!(target_os = "linux") && arbiter_threads() != before {
            assert!(
                Instant::now() < listed_until,
                "shutdown did not join both threads: {} arbiter threads, {before} before the log",
                arbiter_threads()
            );
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(matches!(
            wal.append(b"late".to_vec()).await,
            Err(WalError::ShutDown)
        ));
        assert!(queue.send(Append::new(b"late".to_vec())).await.is_err());
        drop((wal, queue));

        // Every handle dropped without shutdown: the queue stops on its thread, the
        // directory is released, and both threads end.
        let wal = Wal::open(d.path(), cfg(QueueThread::Own)).await.unwrap();
        assert_eq!(wal.append(b"two".to_vec()).await.unwrap(), Lsn(2));
        drop(wal);
        let deadline = Instant::now() + BLOCK_AT_MOST;
        let reopened = loop {
            match Wal::open(d.path(), cfg(QueueThread::Own)).await {
                Ok(w) => break w,
                Err(e) if Instant::now() > deadline => panic!("never released: {e}"),
                Err(_) => actix_rt::time::sleep(Duration::from_millis(10)).await,
            }
        };
        assert_eq!(reopened.recovery_report().next_lsn, Lsn(3));
        reopened.shutdown().await.unwrap();
        let deadline = Instant::now() + BLOCK_AT_MOST;
        while cfg!(target_os = "linux") && arbiter_threads() != before {
            assert!(Instant::now() < deadline, "a thread of the log never ended");
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// After `shutdown` every call on the handle is `ShutDown`, whichever thread the queue ran
/// on: with `Caller` the queue actor outlives the shutdown (its arbiter is the caller's),
/// and `stats`, `health` and `flush` were answered with figures of a log no longer open
/// (a first LSN of 0, a healthy flusher) where `Own` said `ShutDown`.
#[test]
fn after_shutdown_every_call_is_shut_down_whichever_thread_the_queue_ran_on() {
    let _serial = serial();
    actix::System::new().block_on(after_shutdown());
}

async fn after_shutdown() {
    for qt in [QueueThread::Caller, QueueThread::Own] {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open(d.path(), cfg(qt)).await.unwrap();
        wal.append(b"a".to_vec()).await.unwrap();
        wal.shutdown().await.unwrap();
        let shut = |what: &str, r: Result<(), WalError>| {
            assert!(matches!(r, Err(WalError::ShutDown)), "{qt:?} {what}: {r:?}");
        };
        shut("stats", wal.stats().await.map(drop));
        shut("health", wal.health().await.map(drop));
        shut("flush", wal.flush().await.map(drop));
        // What is durable stays so: answered after shutdown too, with either thread.
        assert_eq!(wal.wait_durable(Lsn(1)).await.unwrap(), Lsn(1), "{qt:?}");
        shut("wait_durable", wal.wait_durable(Lsn(2)).await.map(drop));
        shut("append", wal.append(b"b".to_vec()).await.map(drop));
        shut("read", wal.read(Lsn(1)).await.map(drop));
        // A second shutdown is not an error.
        wal.shutdown().await.unwrap();
    }
}
