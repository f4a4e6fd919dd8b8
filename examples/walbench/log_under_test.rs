//! The log under test: opened with its threads found (for their CPU time), and the clocks
//! and stats a run reads at its start and end.

use crate::sys::{self, Tid};
use actix_wal::{Wal, WalConfig, WalStats};
use std::path::Path;
use std::time::Instant;

/// CPU and clock at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub at: Instant,
    pub flusher_ns: u64,
    pub queue_ns: u64,
    pub process_ns: u64,
}

pub fn clock(threads: &LogThreads) -> Clock {
    Clock {
        at: Instant::now(),
        flusher_ns: threads.flusher.and_then(sys::thread_cpu_ns).unwrap_or(0),
        queue_ns: sys::thread_cpu_ns(threads.queue).unwrap_or(0),
        process_ns: sys::process_cpu_ns().unwrap_or(0),
    }
}

/// The log's stats, and when they were taken.
pub async fn stats(wal: &Wal) -> Result<(Instant, WalStats), String> {
    let s = wal.stats().await.map_err(|e| format!("stats: {e}"))?;
    Ok((Instant::now(), s))
}

/// The log's threads, for their CPU time.
#[derive(Debug, Clone, Copy)]
pub struct LogThreads {
    /// The flusher's arbiter, if it was found.
    pub flusher: Option<Tid>,
    /// The queue's: its own arbiter (`QueueThread::Own`), or the System arbiter (the main
    /// thread) where it runs beside the transaction actors placed there.
    pub queue: Tid,
}

/// Opens the log and returns it with its threads: the arbiter threads that appeared while
/// it opened, the flusher's first (it is started first; thread ids grow).
pub async fn open(dir: &Path, config: WalConfig) -> Result<(Wal, LogThreads), String> {
    let before = sys::threads_named("actix-rt");
    let wal = Wal::open(dir, config)
        .await
        .map_err(|e| format!("open {}: {e}", dir.display()))?;
    let new: Vec<Tid> = sys::threads_named("actix-rt")
        .into_iter()
        .filter(|t| !before.contains(t))
        .collect();
    Ok((
        wal,
        LogThreads {
            flusher: new.first().copied(),
            queue: new.get(1).copied().unwrap_or_else(std::process::id),
        },
    ))
}
