//! `MemLog`: the Raft log in memory, written the way openraft's `memstore` example is (a
//! `BTreeMap` of entries, the vote and the purged id beside it, the flush callback called
//! at once). `--store mem`: the baseline `raft_bench` puts actix-wal beside. It keeps
//! nothing across a restart, so a node restarted on it rejoins empty.

use crate::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogId, RaftLogReader, StorageError, Vote};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

/// The in-memory log. Cheap to clone: clones share the log (the store and its readers).
#[derive(Debug, Clone, Default)]
pub struct MemLog {
    /// A std lock: never held across an `.await`.
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last purged log id.
    last_purged: Option<LogId<NodeId>>,
    /// Entries by index.
    log: BTreeMap<u64, Entry<TypeConfig>>,
    /// The last committed log id openraft saved.
    committed: Option<LogId<NodeId>>,
    /// The vote openraft saved.
    vote: Option<Vote<NodeId>>,
}

impl MemLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Poisoned only by a panic while held, and nothing held here panics.
        self.inner.lock().expect("memory log lock poisoned")
    }
}

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .lock()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner.log.values().next_back().map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        {
            let mut inner = self.lock();
            for entry in entries {
                inner.log.insert(entry.get_log_id().index, entry);
            }
        }
        // Nothing to flush: "durable" at once.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        let kept = inner.log.split_off(&(log_id.index + 1));
        inner.log = kept;
        inner.last_purged = Some(log_id);
        Ok(())
    }
}
