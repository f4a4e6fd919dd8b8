//! `WalLogReader`: Raft entries read back from the open log by LSN (`Wal::read_range`).

use crate::error::{storage, AdapterError, RaftResult};
use crate::recent::{Recent, RECENT_MAX_BYTES};
use actix_wal::format::codec;
use actix_wal::{Lsn, Wal};
use openraft::{ErrorSubject::Logs, ErrorVerb::Read, RaftLogId, RaftLogReader, RaftTypeConfig};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};

/// Bytes of entries one `read_range` returns at most (it returns a prefix; the reader asks
/// again for the rest). Also the most that `limited_get_log_entries` hands replication.
pub const READ_BATCH_BYTES: usize = 4 << 20;

/// Reads Raft entries from the log: the `LogReader` replication tasks use. Cheap to clone.
#[derive(Clone)]
pub struct WalLogReader<C> {
    pub(crate) wal: Wal,
    /// The entries the store appended last (shared by the store's reader and its clones;
    /// a reader made on its own with [`WalLogReader::new`] has none and reads the log).
    pub(crate) recent: Recent,
    _config: PhantomData<C>,
}

impl<C> WalLogReader<C> {
    /// A reader on `wal`, a log written by [`WalLogStore`](crate::WalLogStore). It reads
    /// from the log only: the reader the store hands openraft also reads the entries it
    /// appended last from memory.
    pub fn new(wal: Wal) -> Self {
        WalLogReader {
            wal,
            recent: Recent::new(RECENT_MAX_BYTES),
            _config: PhantomData,
        }
    }
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
    /// The entries at the LSNs in `lsns` that the log holds, once the last is durable
    /// (`append` returns before its fsync, and the log reads durable records only). With
    /// `all`, all of them; without, the first `read_range` prefix, from `lsns.start` exactly
    /// (a purged start is `WalError::NotFound`, never a later entry in its place).
    #[tracing::instrument(level = "debug", skip(self))]
    async fn read(&self, lsns: Range<u64>, all: bool) -> Result<Vec<C::Entry>, AdapterError> {
        if let Some(entries) = self.read_recent(&lsns, all)? {
            return Ok(entries);
        }
        let stats = self.wal.stats().await?;
        let first = if all { stats.first_lsn.0 } else { 0 };
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
