//! `WalLogReader`: Raft entries read back from the open log by LSN (`Wal::read_range`).

use crate::cuts::Cuts;
use crate::error::{storage, AdapterError, RaftResult};
use crate::recent::{Recent, RECENT_MAX_BYTES};
use actix_wal::format::codec;
use actix_wal::{Lsn, Wal, WalError};
use openraft::{ErrorSubject::Logs, ErrorVerb::Read, RaftLogId, RaftLogReader, RaftTypeConfig};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};

/// Bytes of entries one `read_range` returns at most (it returns a prefix; the reader asks
/// again for the rest). Also the most that `limited_get_log_entries` hands replication.
pub const READ_BATCH_BYTES: usize = 4 << 20;

/// Times a read of the log is made at most when a cut of the store overlaps it, or the
/// range moves under it (each time after the cut is done). A read still overlapped after
/// that returns nothing; one whose range still moves returns the last error.
const MAX_READ_ATTEMPTS: u32 = 8;

/// Reads Raft entries from the log: the `LogReader` replication tasks use. Cheap to clone.
///
/// A read that the store's truncation, purge or reset overtakes (a follower's conflict, a
/// snapshot; the read from a replication task left over from an earlier leadership, or for
/// a node just removed, which openraft's purge guard does not cover) returns the entries
/// of its range that the log holds once the cut is done, never an error for it: openraft
/// 0.9.25 stops the node on a replication read's error. Whatever it returns is what the log
/// held at one moment (the store counts its cuts, `Cuts` in `cuts.rs`, and a read that one
/// overlapped is made again once it is done), with consecutive indexes. A real failure (I/O, a poisoned
/// or shut log, a record that is not the entry it should be) is still an error.
///
/// - `try_get_log_entries` returns the entries of the range that the log holds ("not
///   found is allowed"), from the later of the range's start and the first index kept.
/// - `limited_get_log_entries` (replication's read) returns a prefix of the range from
///   exactly the index asked for, at most [`READ_BATCH_BYTES`]; nothing when that index is
///   purged (or truncated away, or past the end), never a later entry in its place.
///   openraft's contract asks for a non-empty result, and openraft 0.9.25 takes an empty one
///   as a heartbeat, with a warning, and asks again 10 ms later
///   (`replication/mod.rs`, `send_log_entries`), where an error stops the node. A current
///   leader's replication never asks for a purged index (its purge guard); a leftover
///   task sends that heartbeat with its old vote, and ends when it next looks at its
///   channel, which openraft closed when it let the task go.
#[derive(Clone)]
pub struct WalLogReader<C> {
    pub(crate) wal: Wal,
    /// The entries the store appended last (shared by the store's reader and its clones;
    /// a reader made on its own with [`WalLogReader::new`] has none and reads the log).
    pub(crate) recent: Recent,
    /// The store's cuts (shared likewise; a reader made on its own counts none).
    pub(crate) cuts: Cuts,
    _config: PhantomData<C>,
}

impl<C> WalLogReader<C> {
    /// A reader on `wal`, a log written by [`WalLogStore`](crate::WalLogStore). It reads
    /// from the log only: the reader the store hands openraft also reads the entries it
    /// appended last from memory, and sees the store's cuts. This one does not: a read of it
    /// that a store's cut overtakes may fail, or join entries from both sides of the cut;
    /// use it on a log that no store is cutting meanwhile.
    pub fn new(wal: Wal) -> Self {
        WalLogReader {
            wal,
            recent: Recent::new(RECENT_MAX_BYTES),
            cuts: Cuts::new(),
            _config: PhantomData,
        }
    }
}

/// Whether `e` says the range moved under the read (a cut between the log's bounds and the
/// read, a write that failed and gave its LSNs back): asked again, the log answers what it
/// holds now.
fn moved(e: &AdapterError) -> bool {
    matches!(
        e,
        AdapterError::Wal(
            WalError::NotFound { .. }
                | WalError::TruncatedAway { .. }
                | WalError::LsnNotAssigned { .. }
        )
    )
}

/// The LSNs of the Raft indexes in `range` (index `i` is LSN `i + 1`), as `start..end`.
fn lsns(range: &impl RangeBounds<u64>) -> Range<u64> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i.saturating_add(2),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(2),
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => u64::MAX,
    };
    start..end
}

impl<C: RaftTypeConfig> WalLogReader<C> {
    /// The entries at the LSNs in `lsns` that the log holds (see [`WalLogReader`]): from
    /// the recent entries in memory if they hold the first, else from the log, made again
    /// when a cut of the store overlapped the read or the range moved under it.
    #[tracing::instrument(level = "debug", skip(self))]
    async fn read(&self, lsns: Range<u64>, all: bool) -> Result<Vec<C::Entry>, AdapterError> {
        let mut moved_by = None;
        for _ in 0..MAX_READ_ATTEMPTS {
            let before = self.cuts.settled().await;
            if let Some(entries) = self.read_recent(&lsns, all)? {
                return Ok(entries);
            }
            let read = self.read_log(&lsns, all).await;
            let overlapped = !self.cuts.unchanged(before);
            match read {
                Ok(entries) if !overlapped => return Ok(entries),
                Err(e) if !moved(&e) => return Err(e),
                Err(e) if !overlapped => moved_by = Some(e),
                _ => moved_by = None,
            }
            tracing::debug!(overlapped, "the log moved under a read: reading again");
        }
        match moved_by {
            Some(e) => Err(e),
            None => Ok(Vec::new()),
        }
    }

    /// One read of the log: the entries at the LSNs in `lsns` that it holds, once the last
    /// is durable (`append` returns before its fsync, and the log reads durable records
    /// only). With `all`, all of them from the first LSN kept on; without, the first
    /// `read_range` prefix, from `lsns.start` exactly (nothing if that is purged).
    async fn read_log(&self, lsns: &Range<u64>, all: bool) -> Result<Vec<C::Entry>, AdapterError> {
        let stats = self.wal.stats().await?;
        let first = stats.first_lsn.0;
        if !all && lsns.start < first {
            return Ok(Vec::new()); // purged: no later entry in its place
        }
        let (mut next, end) = (lsns.start.max(first), lsns.end.min(stats.next_lsn.0));
        let mut entries = Vec::new();
        if next < end {
            self.wal.wait_durable(Lsn(end - 1)).await?;
        }
        while next < end {
            let records = self
                .wal
                .read_range(Lsn(next)..Lsn(end), READ_BATCH_BYTES)
                .await?;
            for record in &records {
                if record.lsn.0 != next {
                    return Err(AdapterError::OutOfOrder {
                        expected: Lsn(next),
                        lsn: record.lsn,
                    });
                }
                let entry: C::Entry = record.decode()?;
                let index = entry.get_log_id().index;
                if index.checked_add(1) != Some(record.lsn.0) {
                    return Err(AdapterError::Misplaced {
                        lsn: record.lsn,
                        index,
                    });
                }
                entries.push(entry);
                next += 1;
            }
            if !all || records.is_empty() {
                break;
            }
        }
        Ok(entries)
    }

    /// The entries at `lsns` from the recent entries in memory, if they hold the first
    /// (they end where the log ends, so they hold the rest too); `None`: read the log.
    /// Not yet durable here, perhaps: Raft lets a leader replicate before its own flush.
    fn read_recent(
        &self,
        lsns: &Range<u64>,
        all: bool,
    ) -> Result<Option<Vec<C::Entry>>, AdapterError> {
        if lsns.start == 0 || lsns.start >= lsns.end {
            return Ok(None);
        }
        let max_bytes = if all { usize::MAX } else { READ_BATCH_BYTES };
        let Some(records) = self.recent.get(lsns.start - 1, lsns.end - 1, max_bytes) else {
            return Ok(None);
        };
        let mut entries = Vec::with_capacity(records.len());
        for (lsn, bytes) in (lsns.start..).zip(&records) {
            let entry: C::Entry = codec::decode(bytes)?;
            let index = entry.get_log_id().index;
            if index.checked_add(1) != Some(lsn) {
                return Err(AdapterError::Misplaced {
                    lsn: Lsn(lsn),
                    index,
                });
            }
            entries.push(entry);
        }
        Ok(Some(entries))
    }

    /// The last entry in the log, if it holds any.
    pub(crate) async fn last(&self) -> Result<Option<C::Entry>, AdapterError> {
        let next = self.wal.stats().await?.next_lsn.0;
        Ok(self.read(next.saturating_sub(1)..next, true).await?.pop())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for WalLogReader<C> {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> RaftResult<Vec<C::Entry>, C>
    where
        RB: RangeBounds<u64> + Clone + Debug + Send,
    {
        self.read(lsns(&range), true)
            .await
            .map_err(storage(Logs, Read))
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> RaftResult<Vec<C::Entry>, C> {
        self.read(lsns(&(start..end)), false)
            .await
            .map_err(storage(Logs, Read))
    }
}
