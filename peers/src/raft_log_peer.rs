//! raft-log (databend's meta-service log) used as databend uses it: one `RaftLog` behind a
//! `std::sync::Mutex`; a committer takes the lock, appends its entry and asks for a synced
//! flush with a callback (`flush(true, Some(callback))`), lets go, and waits for the
//! callback outside the lock. raft-log's flush worker batches the requests queued meanwhile
//! (up to `flush_batch_max_items`, waiting up to `flush_batch_wait` for more) into one
//! write and one `sync_data`, then calls each request's callback.

use crate::run::{run_threads, Figures, Timing};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::{Config, RaftLog, Types};
use std::io;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The types raft-log is instantiated with: log ids `(term, index)`, byte payloads, and a
/// channel per flush for its callback (as raft-log's own blocking flush does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchTypes;

impl Types for BenchTypes {
    type LogId = (u64, u64);
    type LogPayload = Vec<u8>;
    type Vote = (u64, u64);
    type Callback = SyncSender<Result<(), io::Error>>;
    type UserData = String;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.len() as u64
    }
}

/// The log and the index of its next entry, under one lock (the lock databend holds).
struct Locked {
    log: RaftLog<BenchTypes>,
    next_index: u64,
}

/// `threads` committers of `payload` bytes on a raft-log in `dir`. `batch_wait`: the flush
/// worker's `flush_batch_wait` (`None`: raft-log's default, 1 ms).
pub fn run(
    dir: &Path,
    threads: usize,
    payload: usize,
    batch_wait: Option<Duration>,
    timing: Timing,
) -> io::Result<Figures> {
    let mut config = Config::new(dir.display());
    config.wal.flush_batch_wait = batch_wait;
    let wait = config.wal.flush_batch_wait();
    let log = RaftLog::<BenchTypes>::open(Arc::new(config))?;
    let shared = Arc::new(Mutex::new(Locked { log, next_index: 1 }));
    let mut syncs = Vec::with_capacity(2);
    let totals = run_threads(
        threads,
        timing,
        |_| {
            let shared = shared.clone();
            let record = vec![0xA5u8; payload];
            move || {
                let (tx, rx) = sync_channel(1);
                {
                    let mut l = shared
                        .lock()
                        .map_err(|_| io::Error::other("raft-log lock poisoned"))?;
                    let index = l.next_index;
                    l.log.append([((1, index), record.clone())])?;
                    l.next_index += 1;
                    l.log.flush(true, Some(tx))?;
                }
                rx.recv()
                    .map_err(|_| io::Error::other("raft-log dropped the callback"))?
            }
        },
        || {
            if let Ok(l) = shared.lock() {
                syncs.push(l.log.stat().flush_metrics.sync_batch_count);
            }
        },
    )?;
    let fsyncs = match syncs[..] {
        [a, b] => Some(b.saturating_sub(a)),
        _ => None,
    };
    let note = if batch_wait.is_some() {
        format!("{threads} threads, batch wait {} us", wait.as_micros())
    } else {
        format!("{threads} threads, defaults ({} us)", wait.as_micros())
    };
    Ok(totals.figures("raft-log", note, threads, payload, fsyncs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run's commits are in the log: reopened, it ends at or past the last one counted
    /// (the warm-up's commits come before them).
    #[test]
    fn commits_are_in_the_log_when_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let timing = Timing {
            warmup: Duration::from_millis(50),
            window: Duration::from_millis(300),
        };
        for wait in [None, Some(Duration::from_micros(100))] {
            let sub = dir.path().join(format!("{wait:?}"));
            std::fs::create_dir_all(&sub).unwrap();
            let f = run(&sub, 4, 256, wait, timing).unwrap();
            assert!(f.commits > 0, "{f:?}");
            assert_eq!(f.errors, 0);
            assert!(f.fsyncs.is_some_and(|n| n > 0), "{f:?}");
            let log = RaftLog::<BenchTypes>::open(Arc::new(Config::new(sub.display()))).unwrap();
            let last = log.log_state().last().map_or(0, |id| id.1);
            assert!(
                last >= f.commits,
                "last index {last}, {} commits",
                f.commits
            );
        }
    }
}
