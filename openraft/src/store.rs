//! `WalLogStore`: openraft's `RaftLogStorage` on an actix-wal log. Entries are records
//! (index `i` at LSN `i + 1`); the vote, the committed and the last purged log id are one
//! small record in the log's metadata slot.

use crate::error::{storage, AdapterError, RaftResult};
use crate::reader::WalLogReader;
use actix_wal::format::codec;
use actix_wal::format::meta::MAX_RESET_LSN as LAST_LSN;
use actix_wal::format::FRAME_HEADER_BYTES;
use actix_wal::{AppendBatch, Durability, Lsn, SetMeta, Wal, WalConfig, WalError};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::ErrorSubject::{Logs, Vote as VoteSubject};
use openraft::ErrorVerb::{Delete, Read, Write};
use openraft::{AsyncRuntime, LogId, NodeId, RaftLogId, RaftLogReader, RaftTypeConfig, Vote};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// The slot's value (this store is its only writer), except that `committed` may be
    /// ahead of the slot on disk (see `save_committed`).
    meta: RaftMeta<C::NodeId>,
    /// When `save_committed` last sent the slot to the log (`None`: never).
    committed_sent_at: Option<std::time::Instant>,
    /// The log's next LSN after this store's last append, while nothing else moved it
    /// (`None`: ask the log): spares each append a round trip to the log's thread.
    next_lsn: Option<Lsn>,
    /// Set by an append's callback task when its write failed (the log gave its LSNs
    /// back): `next_lsn` is stale then, and the next append asks the log.
    write_failed: Arc<AtomicBool>,
}

/// `save_committed` writes the slot at most this often (a slot frame per commit slowed
/// `raft_bench`'s writes/s to 0.47x-0.81x; the committed log id is a hint).
pub const COMMITTED_WRITE_INTERVAL_MS: u64 = 100;

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
        let reader = WalLogReader::new(wal);
        let store = WalLogStore {
            reader,
            meta: meta.unwrap_or_default(),
            committed_sent_at: None,
            next_lsn: None,
            write_failed: Arc::new(AtomicBool::new(false)),
        };
        store.settle_purge().await?;
        Ok(store)
    }

    /// Keeps at most `max_bytes` of the entries appended last in memory for replication
    /// to read (default [`RECENT_MAX_BYTES`](crate::RECENT_MAX_BYTES); 0 keeps none, and
    /// every read waits for the log's `fsync` and reads the log).
    pub fn with_recent_bytes(self, max_bytes: usize) -> Self {
        self.reader.recent.set_max_bytes(max_bytes);
        self
    }

    /// The log (for its stats, health and shutdown).
    pub fn wal(&self) -> &Wal {
        &self.reader.wal
    }

    /// Replaces the slot with `change` applied to it: durable before it returns.
    async fn update(
        &mut self,
        change: impl FnOnce(&mut RaftMeta<C::NodeId>),
    ) -> Result<(), AdapterError> {
        let mut meta = self.meta.clone();
        change(&mut meta);
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
        // A cut until this returns: the store's readers read again a read it overlaps.
        let _cut = self.reader.cuts.begin();
        let (keep, stats) = (
            Lsn(purged.index.saturating_add(2)),
            self.wal().stats().await?,
        );
        self.reader.recent.purge_to(purged.index);
        if keep >= stats.next_lsn && stats.first_lsn != keep {
            self.reader.recent.clear();
            self.wal().reset(keep).await?;
        } else if keep < stats.next_lsn && keep > stats.first_lsn {
            // The log checkpoints only durable records: entries appended and not yet
            // durable (a caller that did not wait for the callback) are waited for.
            self.wal().wait_durable(Lsn(keep.0 - 1)).await?;
            self.wal().truncate_before(keep).await?;
        }
        Ok(())
    }

    /// Enqueues `entries` and returns the LSN of the last (None for none). A fresh or
    /// emptied log (nothing purged) first moves to where the first entry belongs.
    #[tracing::instrument(level = "debug", skip_all, fields(entries = entries.len()))]
    async fn enqueue(&mut self, entries: &[C::Entry]) -> Result<Option<Lsn>, AdapterError> {
        // Entries at or below the purge point are purged already (openraft sends none; its
        // suite does, as a map-backed store keeps them): they are left out.
        let purged = self.meta.last_purged.as_ref().map(|p| p.index);
        let entries: Vec<&C::Entry> = entries
            .iter()
            .filter(|e| Some(e.get_log_id().index) > purged)
            .collect();
        let Some(first) = entries.first().map(|e| e.get_log_id().index) else {
            return Ok(None);
        };
        // The log's next LSN: known since the last append, or asked (`take`: an error
        // below leaves it unknown; so does a write that failed since, which gave its LSNs
        // back). `next`: where the entries go (a fresh log moves).
        if self.write_failed.swap(false, Ordering::AcqRel) {
            self.next_lsn = None;
        }
        let (log_next, fresh) = match self.next_lsn.take() {
            Some(n) => (n, false),
            None => {
                let stats = self.wal().stats().await?;
                let fresh = stats.first_lsn == stats.next_lsn && purged.is_none();
                (stats.next_lsn, fresh)
            }
        };
        let next = if fresh {
            Lsn(first.saturating_add(1))
        } else {
            log_next
        };
        // Consecutive from the log's next LSN: no hole, no overwrite.
        for (i, index) in entries.iter().map(|e| e.get_log_id().index).enumerate() {
            let lsn = Lsn(next.0 + i as u64);
            if index.checked_add(1) != Some(lsn.0) {
                return Err(AdapterError::NotNext { index, lsn });
            }
        }
        if next != log_next {
            let _cut = self.reader.cuts.begin();
            self.reader.recent.clear();
            self.wal().reset(next).await?;
        }
        let batch = AppendBatch::encode(entries.iter().copied())?.durability(Durability::Buffered);
        let records = batch.records.clone();
        let sent = match self.wal().send(batch).await {
            // More than the log's queue takes at once, each entry within the record bound
            // (a leader that sends large batches): in parts, one after another.
            Err(WalError::BatchTooLarge {
                max_records,
                max_bytes,
                ..
            }) => self.send_in_parts(&records, max_records, max_bytes).await,
            sent => sent,
        };
        match sent {
            Ok(lsn) if lsn == next => {}
            Ok(lsn) => {
                // Placed elsewhere than checked (the log moved since it was asked, a
                // write failing meanwhile): taken back before the refusal, so that no
                // entry stays at the place of another.
                let _cut = self.reader.cuts.begin();
                self.reader.recent.clear();
                self.wal().truncate_after(Lsn(lsn.0 - 1)).await?;
                return Err(AdapterError::NotNext { index: first, lsn });
            }
            Err(e) => {
                self.reader.recent.clear();
                return Err(e.into());
            }
        }
        self.reader.recent.push(first, &records);
        self.next_lsn = Some(Lsn(next.0 + entries.len() as u64));
        Ok(Some(Lsn(next.0 + entries.len() as u64 - 1)))
    }
}

impl<C: RaftTypeConfig> WalLogStore<C> {
    /// Sends `records` as consecutive `AppendBatch`es of at most `max_records` records and
    /// `max_bytes` bytes of frames each (the queue's bounds); the first LSN given out, or
    /// the first of a part that did not follow on from the part before (the caller takes it
    /// back as a misplaced append).
    async fn send_in_parts(
        &self,
        records: &[Vec<u8>],
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Lsn, WalError> {
        let (mut first, mut expected) = (None, None);
        let mut rest = records;
        while !rest.is_empty() {
            let (mut n, mut bytes) = (0, 0);
            for r in rest {
                let frame = FRAME_HEADER_BYTES + r.len();
                if n > 0 && (n == max_records || bytes + frame > max_bytes) {
                    break;
                }
                n += 1;
                bytes += frame;
            }
            let (part, later) = rest.split_at(n);
            let part = AppendBatch::new(part.to_vec()).durability(Durability::Buffered);
            let lsn = self.wal().send(part).await?;
            if expected.is_some_and(|e| e != lsn) {
                return Ok(lsn);
            }
            first.get_or_insert(lsn);
            expected = Some(Lsn(lsn.0 + n as u64));
            rest = later;
        }
        first.ok_or(WalError::EmptyBatch)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for WalLogStore<C> {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> RaftResult<Vec<C::Entry>, C>
    where
        RB: RangeBounds<u64> + Clone + Debug + Send,
    {
        self.reader.try_get_log_entries(range).await
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for WalLogStore<C> {
    type LogReader = WalLogReader<C>;

    async fn get_log_state(&mut self) -> RaftResult<LogState<C>, C> {
        let last = self.reader.last().await.map_err(storage(Logs, Read))?;
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

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> RaftResult<(), C> {
        let saved = self.update(|m| m.vote = Some(vote.clone())).await;
        saved.map_err(storage(VoteSubject, Write))
    }

    async fn read_vote(&mut self) -> RaftResult<Option<Vote<C::NodeId>>, C> {
        Ok(self.meta.vote.clone())
    }

    /// Written into the log's metadata slot without waiting, at most every
    /// [`COMMITTED_WRITE_INTERVAL_MS`]: the value goes to the log's queue at once
    /// (`do_send`, in order before any later slot write of this store) and becomes durable
    /// with the next group commit (a slot frame, docs/format.md "Slot frames"), at the
    /// latest with the next append's `fsync`. openraft 0.9 calls this in its core loop at
    /// every commit; awaiting the `fsync` there would hold the loop up. The committed log
    /// id is a hint (openraft re-applies from it after a restart), so one older by up to
    /// the interval costs re-applying a few entries. A write of it that fails is reported
    /// to no one (`do_send` takes no answer, and the batch that failed may hold nothing
    /// else): the next write of the slot (the next call after the interval, a vote, a
    /// purge) carries the current value again. An answer awaited here would not keep the
    /// order of slot writes that `do_send` keeps (a later vote could land first).
    ///
    /// A node that led comes back as the leader of the same term with this id under
    /// openraft's read barrier: an application serving `ensure_linearizable` reads must
    /// also wait until it has applied the last log id `get_log_state` gives at open
    /// (docs/replication.md, "Reads after a restart"; `raft_kv` does).
    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> RaftResult<(), C> {
        self.meta.committed = committed;
        let every = std::time::Duration::from_millis(COMMITTED_WRITE_INTERVAL_MS);
        if self.committed_sent_at.is_some_and(|t| t.elapsed() < every) {
            return Ok(()); // a later call, or the next slot write, carries it
        }
        let bytes = codec::encode(&self.meta).map_err(storage(VoteSubject, Write))?;
        self.wal().queue().do_send(SetMeta(bytes));
        self.committed_sent_at = Some(std::time::Instant::now());
        Ok(())
    }

    async fn read_committed(&mut self) -> RaftResult<Option<LogId<C::NodeId>>, C> {
        Ok(self.meta.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> RaftResult<(), C>
    where
        I: IntoIterator<Item = C::Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let Some(last) = self.enqueue(&entries).await.map_err(storage(Logs, Write))? else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let (wal, recent) = (self.wal().clone(), self.reader.recent.clone());
        let write_failed = self.write_failed.clone();
        // Detached: the callback reports the fsync (or its failure); openraft waits on it.
        drop(C::AsyncRuntime::spawn(async move {
            let durable = wal.wait_durable(last).await;
            if durable.is_err() {
                // A failed write may give its LSNs out again: what is in memory, and the
                // next LSN the store expects, no longer match the log.
                write_failed.store(true, Ordering::Release);
                recent.clear();
            }
            callback.log_io_completed(durable.map(drop).map_err(std::io::Error::other));
        }));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> RaftResult<(), C> {
        // Keeps the entries below `log_id.index`: LSNs up to and including `index`.
        self.next_lsn = None;
        // A cut until this returns: the store's readers read again a read it overlaps.
        let _cut = self.reader.cuts.begin();
        self.reader.recent.truncate_from(log_id.index);
        let truncated = self.wal().truncate_after(Lsn(log_id.index)).await;
        if truncated.is_err() {
            self.reader.recent.clear();
        }
        truncated.map_err(storage(Logs, Delete))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> RaftResult<(), C> {
        // The log goes on at LSN `index + 2`: past its last LSN, the second step could
        // never be taken, and every open would take it again. Refused before the purge
        // point is written.
        let keep = log_id.index.saturating_add(2);
        if keep > LAST_LSN {
            let refused = AdapterError::Wal(WalError::LsnOutOfRange { lsn: Lsn(keep) });
            return Err(storage(Logs, Delete)(refused));
        }
        self.next_lsn = None;
        self.update(|m| m.last_purged = Some(log_id))
            .await
            .map_err(storage(Logs, Delete))?;
        self.settle_purge().await.map_err(storage(Logs, Delete))
    }
}
