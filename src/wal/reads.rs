//! `Wal`'s reads by LSN: [`Wal::read`], [`Wal::read_range`], and the range reads started
//! ahead on the reader pool for subscriptions (`actors/reader.rs` serves them all).

use super::Wal;
use crate::error::WalError;
use crate::log::read_at::MAX_READ_BYTES;
use crate::log::records_read::RecordsRead;
use crate::log::Record;
use crate::lsn::Lsn;
use std::ops::Range;

impl Wal {
    /// Reads the durable record `lsn` (a record, or one entry of a transaction, with its
    /// [`TxnPosition`](crate::TxnPosition)). Served by the read index and one positional
    /// read, never on the queue's thread: in place on the caller's thread when the bytes
    /// are in memory (Linux `RWF_NOWAIT`), on the reader pool otherwise (and always for a
    /// caller on the queue's thread, which with `QueueThread::Caller` is the thread that
    /// opened the log). Served in place, it completes without a scheduler turn: a task
    /// that does nothing but read in a loop should yield now and then.
    ///
    /// [`WalError::NotFound`] when `lsn` is below the log's first LSN, was removed by
    /// [`Wal::truncate_before`] (also when the removal races this read), or is not durable
    /// (at or past the durable end: never written, or not yet fsynced).
    pub async fn read(&self, lsn: Lsn) -> Result<Record, WalError> {
        let mut records = self.read_lsns(lsn.0..lsn.0.saturating_add(1), 0).await?;
        records.pop().ok_or(WalError::NotFound { lsn })
    }

    /// Reads the durable records with LSNs in `lsns`, in order: a **prefix** of the range.
    /// It stops at the durable end, and before a record that would take the payloads (each
    /// counted with 24 bytes more, so many empty records are bounded too) past
    /// `max_bytes`; it always returns at least one record for a non-empty range. Ask again
    /// from the LSN after the last one returned for the rest.
    ///
    /// `lsns.start` must be readable ([`WalError::NotFound`] otherwise, as in
    /// [`Wal::read`]); an empty range gives no records. A reversed range, or a `max_bytes`
    /// above 64 MiB (`MAX_READ_BYTES`), is [`WalError::InvalidReadRange`].
    pub async fn read_range(
        &self,
        lsns: Range<Lsn>,
        max_bytes: usize,
    ) -> Result<Vec<Record>, WalError> {
        if lsns.start > lsns.end {
            return Err(WalError::InvalidReadRange {
                reason: format!("reversed range {}..{}", lsns.start, lsns.end),
            });
        }
        if max_bytes > MAX_READ_BYTES {
            return Err(WalError::InvalidReadRange {
                reason: format!("max_bytes {max_bytes} above {MAX_READ_BYTES}"),
            });
        }
        if lsns.start == lsns.end {
            return Ok(Vec::new());
        }
        self.read_lsns(lsns.start.0..lsns.end.0, max_bytes).await
    }

    async fn read_lsns(&self, lsns: Range<u64>, max_bytes: usize) -> Result<Vec<Record>, WalError> {
        self.inner.reads.read(lsns, max_bytes).await
    }

    /// A range read started on the reader pool now (see `Reads::read_ahead`); `lsns` non-empty
    /// and `max_bytes` within [`MAX_READ_BYTES`]; read into `spare` if given.
    pub(crate) fn read_ahead(
        &self,
        lsns: Range<u64>,
        max_bytes: usize,
        spare: Option<Vec<u8>>,
    ) -> impl std::future::Future<Output = Result<RecordsRead, WalError>> + Send + 'static {
        self.inner.reads.read_ahead(lsns, max_bytes, spare)
    }
}
