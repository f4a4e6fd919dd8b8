//! `WalLogReader`: Raft entries read back from the open log by LSN (`Wal::read_range`).

use crate::error::{storage, AdapterError};
use actix_wal::{Lsn, Wal};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};

/// Bytes of entries one `read_range` returns at most (it returns a prefix; the reader asks
/// again for the rest). Also the most that `limited_get_log_entries` hands replication.
pub const READ_BATCH_BYTES: usize = 4 << 20;

/// Reads Raft entries from the log: the `LogReader` replication tasks use. Cheap to clone.
pub struct WalLogReader<C> {
    pub(crate) wal: Wal,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for WalLogReader<C> {
    fn clone(&self) -> Self {
        WalLogReader {
            wal: self.wal.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> WalLogReader<C> {
    /// A reader on `wal`, a log written by [`WalLogStore`](crate::WalLogStore).
    pub fn new(wal: Wal) -> Self {
        WalLogReader {
            wal,
            _config: PhantomData,
        }
    }

    /// The entries with LSNs in `lsns` (all of them, or the first `read_range` prefix if
    /// `!all`), once the last is durable: `append` returns before its fsync, and the log
    /// reads durable records only.
    async fn read(&self, lsns: Range<u64>, all: bool) -> Result<Vec<C::Entry>, AdapterError> {
        let mut entries = Vec::new();
        if lsns.is_empty() {
            return Ok(entries);
        }
        self.wal.wait_durable(Lsn(lsns.end - 1)).await?;
        let mut next = lsns.start;
        while next < lsns.end {
            let records = self
                .wal
                .read_range(Lsn(next)..Lsn(lsns.end), READ_BATCH_BYTES)
                .await?;
            for record in &records {
                let entry: C::Entry = record.decode()?;
                let index = entry.get_log_id().index;
                if index.checked_add(1) != Some(record.lsn.0) {
                    return Err(AdapterError::Misplaced {
                        lsn: record.lsn,
                        index,
                    });
                }
                entries.push(entry);
            }
            match records.last() {
                Some(last) if all => next = last.lsn.0 + 1,
                _ => break,
            }
        }
        Ok(entries)
    }

    /// The entries of `range` that the log holds (Raft indexes, clamped to the log's LSNs).
    #[tracing::instrument(level = "debug", skip(self))]
    async fn entries<RB: RangeBounds<u64> + Debug>(
        &self,
        range: RB,
        all: bool,
    ) -> Result<Vec<C::Entry>, AdapterError> {
        let stats = self.wal.stats().await?;
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
        let lsns = start.max(stats.first_lsn.0)..end.min(stats.next_lsn.0);
        self.read(lsns, all).await
    }

    /// The last entry in the log, if it holds any.
    pub(crate) async fn last(&self) -> Result<Option<C::Entry>, AdapterError> {
        let stats = self.wal.stats().await?;
        let lsns = stats.first_lsn.0.max(stats.next_lsn.0 - 1)..stats.next_lsn.0;
        Ok(self.read(lsns, true).await?.pop())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for WalLogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let entries = self.entries(range, true).await;
        entries.map_err(storage(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let entries = self.entries(start..end, false).await;
        entries.map_err(storage(ErrorSubject::Logs, ErrorVerb::Read))
    }
}
