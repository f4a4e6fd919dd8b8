//! `WalLogStore`: openraft's `RaftLogStorage` on an actix-wal log. Entries are records
//! (index `i` at LSN `i + 1`); the vote, the committed and the last purged log id are one
//! small record in the log's metadata slot.

use crate::error::{storage, AdapterError};
use crate::reader::WalLogReader;
use actix_wal::format::codec;
use actix_wal::{AppendBatch, Durability, Lsn, Wal, WalConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AsyncRuntime, ErrorSubject, ErrorVerb, LogId, NodeId, RaftLogId};
use openraft::{RaftLogReader, RaftTypeConfig, StorageError, Vote};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;

/// What the metadata slot holds: everything openraft keeps besides the entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(bound = "")]
struct RaftMeta<NID: NodeId> {
    vote: Option<Vote<NID>>,
    committed: Option<LogId<NID>>,
    last_purged: Option<LogId<NID>>,
}

/// openraft's log storage on an actix-wal log. See the [crate] docs for the mapping.
pub struct WalLogStore<C: RaftTypeConfig> {
    reader: WalLogReader<C>,
    /// The slot's value: this store is its only writer, so the copy is never stale.
    meta: RaftMeta<C::NodeId>,
}

impl<C: RaftTypeConfig> WalLogStore<C> {
    /// Opens (or creates) the log in `dir` with [`Wal::open_standalone`], so it serves
    /// openraft's tokio tasks from the log's own actix thread.
    pub async fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Self, AdapterError> {
        WalLogStore::new(Wal::open_standalone(dir, config).await?).await
    }

    /// The store on an open log, which only this store writes. Finishes a purge that a crash
    /// cut short (the slot says purged, the records are still there).
    pub async fn new(wal: Wal) -> Result<Self, AdapterError> {
        let meta = wal.meta().map(|b| codec::decode(&b)).transpose()?;
        let store = WalLogStore {
            reader: WalLogReader::new(wal),
            meta: meta.unwrap_or_default(),
        };
        store.settle_purge().await?;
        Ok(store)
    }

    /// The log (for its stats, health and shutdown).
    pub fn wal(&self) -> &Wal {
        &self.reader.wal
    }

    /// Replaces the slot with `update` applied to it: durable before it returns.
    async fn update(
        &mut self,
        update: impl FnOnce(&mut RaftMeta<C::NodeId>),
    ) -> Result<(), AdapterError> {
        let mut meta = self.meta.clone();
        update(&mut meta);
        self.wal().set_meta(codec::encode(&meta)?).await?;
        self.meta = meta;
        Ok(())
    }

    /// Drops the records at or below the purged log id; past the end of the log, moves
    /// the log on (`reset`) so that the next append lands right after it.
    async fn settle_purge(&self) -> Result<(), AdapterError> {
        let Some(purged) = &self.meta.last_purged else {
            return Ok(());
        };
        let keep = Lsn(purged.index + 2);
        let stats = self.wal().stats().await?;
        if keep >= stats.next_lsn && stats.first_lsn != keep {
            self.wal().reset(keep).await?;
        } else if keep < stats.next_lsn && keep > stats.first_lsn {
            self.wal().truncate_before(keep).await?;
        }
        Ok(())
    }

    /// Enqueues `entries` and returns the LSN of the last (None for no entries). A fresh or
    /// emptied log (nothing purged) moves to where the first entry belongs.
    #[tracing::instrument(level = "debug", skip_all, fields(entries = entries.len()))]
    async fn enqueue(&mut self, entries: &[C::Entry]) -> Result<Option<Lsn>, AdapterError> {
        let Some(first) = entries.first() else {
            return Ok(None);
        };
        let index = first.get_log_id().index;
        let want = Lsn(index + 1);
        let stats = self.wal().stats().await?;
        if want != stats.next_lsn
            && stats.first_lsn == stats.next_lsn
            && self.meta.last_purged.is_none()
        {
            self.wal().reset(want).await?;
        } else if want != stats.next_lsn {
            return Err(AdapterError::NotNext {
                index,
                lsn: stats.next_lsn,
            });
        }
        for (i, entry) in entries.iter().enumerate() {
            if entry.get_log_id().index != index + i as u64 {
                return Err(AdapterError::NotNext {
                    index: entry.get_log_id().index,
                    lsn: Lsn(want.0 + i as u64),
                });
            }
        }
        let batch = AppendBatch::encode(entries)?.durability(Durability::Buffered);
        let lsn = self.wal().send(batch).await?;
        if lsn != want {
            return Err(AdapterError::NotNext { index, lsn });
        }
        Ok(Some(Lsn(lsn.0 + entries.len() as u64 - 1)))
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for WalLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.reader.try_get_log_entries(range).await
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for WalLogStore<C> {
    type LogReader = WalLogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last = self
            .reader
            .last()
            .await
            .map_err(storage(ErrorSubject::Logs, ErrorVerb::Read))?;
        let last_purged_log_id = self.meta.last_purged.clone();
        let last_log_id = last
            .map(|e| e.get_log_id().clone())
            .max(last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let saved = self.update(|m| m.vote = Some(vote.clone())).await;
        saved.map_err(storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.meta.vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let saved = self.update(|m| m.committed = committed).await;
        saved.map_err(storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.meta.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let last = self
            .enqueue(&entries)
            .await
            .map_err(storage(ErrorSubject::Logs, ErrorVerb::Write))?;
        let Some(last) = last else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let wal = self.wal().clone();
        // Detached: the callback reports the fsync (or its failure); openraft waits on it.
        let _ = C::AsyncRuntime::spawn(async move {
            let durable = wal.wait_durable(last).await;
            callback.log_io_completed(durable.map(drop).map_err(std::io::Error::other));
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        // Keeps the entries below `log_id.index`: LSNs up to and including `index`.
        let truncated = self.wal().truncate_after(Lsn(log_id.index)).await;
        truncated.map_err(|e| storage(ErrorSubject::Logs, ErrorVerb::Delete)(e.into()))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let purged = async {
            self.update(|m| m.last_purged = Some(log_id)).await?;
            self.settle_purge().await
        };
        purged
            .await
            .map_err(storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}

/// TEMPORARY until `Wal::truncate_after` and `Wal::reset` land on main (issue 11): the
/// inherent methods will shadow these, and this module goes.
mod rewind_shim {
    use actix_wal::{Lsn, Wal, WalError};
    pub(super) trait Rewind {
        async fn truncate_after(&self, lsn: Lsn) -> Result<(), WalError>;
        async fn reset(&self, lsn: Lsn) -> Result<(), WalError>;
    }
    impl Rewind for Wal {
        async fn truncate_after(&self, lsn: Lsn) -> Result<(), WalError> {
            Err(WalError::InvalidConfig(format!(
                "truncate_after({lsn}) not on main yet"
            )))
        }
        async fn reset(&self, lsn: Lsn) -> Result<(), WalError> {
            Err(WalError::InvalidConfig(format!(
                "reset({lsn}) not on main yet"
            )))
        }
    }
}
#[allow(unused_imports)]
use rewind_shim::Rewind as _;
