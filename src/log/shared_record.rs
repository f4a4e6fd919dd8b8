//! Records whose payloads share the buffer they were written or read in
//! ([`SharedRecord`], what [`crate::SharedSubscription`] yields), and the one way a
//! subscription builds either kind of record (`Delivered`): out of a live batch, out
//! of a chunk read from the files, or from a record read already.
//!
//! A [`crate::Record`] owns its payload (`Vec<u8>`): handing one out costs an allocation
//! and a copy per record and per subscriber. A [`SharedRecord`]'s payload is a
//! [`Bytes`] slice of the batch the flusher wrote (or of the span read): one reference
//! count per record, the bytes held until the last record of that buffer is dropped.

use super::batch::Batch;
use super::reader::{Record, TxnPosition};
use super::records_read::{RecordAt, RecordsRead};
use crate::lsn::Lsn;
use bytes::Bytes;
use std::sync::Arc;

/// A record read back from the log whose payload shares the buffer it lies in (the batch
/// the log wrote, or the span it read) instead of owning a copy. Convert it into a
/// [`Record`] with `Record::from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRecord {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The bytes appended: a slice of the batch or span that holds them.
    pub payload: Bytes,
    /// First LSN of the segment holding it.
    pub segment_first_lsn: Lsn,
    /// Offset of its frame in that segment.
    pub frame_offset: u64,
    /// The CRC32 stored in its frame.
    pub frame_crc: u32,
    /// Set when the record was appended as part of a transaction.
    pub txn: Option<TxnPosition>,
}

impl From<SharedRecord> for Record {
    /// Copies the payload out.
    fn from(r: SharedRecord) -> Record {
        Record {
            lsn: r.lsn,
            payload: r.payload.to_vec(),
            segment_first_lsn: r.segment_first_lsn,
            frame_offset: r.frame_offset,
            frame_crc: r.frame_crc,
            txn: r.txn,
        }
    }
}

impl From<Record> for SharedRecord {
    /// Takes the payload's buffer over (no copy).
    fn from(r: Record) -> SharedRecord {
        SharedRecord {
            lsn: r.lsn,
            payload: Bytes::from(r.payload),
            segment_first_lsn: r.segment_first_lsn,
            frame_offset: r.frame_offset,
            frame_crc: r.frame_crc,
            txn: r.txn,
        }
    }
}

/// The bytes a record of a live batch lies in: the batch's own, or a compressed frame's
/// payload, decompressed. Shared as [`Bytes`] only when a [`SharedRecord`] asks.
pub(crate) enum Source<'a> {
    /// The batch's buffer; `shared` caches its `Bytes` for the whole batch.
    Batch {
        /// The batch.
        batch: &'a Arc<Batch>,
        /// Its buffer as `Bytes`, once asked for.
        shared: &'a mut Option<Bytes>,
    },
    /// A payload decompressed (owned until shared).
    Inflated(Bytes),
}

/// A batch's buffer as the owner of a `Bytes`.
struct BatchBuf(Arc<Batch>);

impl AsRef<[u8]> for BatchBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0.buf
    }
}

impl Source<'_> {
    /// The bytes, to copy from.
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Batch { batch, .. } => &batch.buf,
            Source::Inflated(b) => b,
        }
    }

    /// The bytes, to share.
    fn shared(&mut self) -> Bytes {
        match self {
            Source::Batch { batch, shared } => shared
                .get_or_insert_with(|| Bytes::from_owner(BatchBuf(Arc::clone(batch))))
                .clone(),
            Source::Inflated(b) => b.clone(),
        }
    }
}

/// What a subscription hands out: a [`Record`] (its payload copied out) or a
/// [`SharedRecord`] (its payload shared).
pub(crate) trait Delivered: Sized + Send + 'static {
    /// Its LSN.
    fn lsn(&self) -> u64;
    /// From a record read already (by `Wal::read_range`).
    fn from_record(r: Record) -> Self;
    /// The next record of a chunk read from the files.
    fn next_read(read: &mut RecordsRead) -> Option<Self>;
    /// The record `at` says of, its payload at `at.start..at.start + at.len` of `source`.
    fn of_part(at: &RecordAt, source: &mut Source<'_>) -> Self;
}

impl Delivered for Record {
    fn lsn(&self) -> u64 {
        self.lsn.0
    }

    fn from_record(r: Record) -> Self {
        r
    }

    fn next_read(read: &mut RecordsRead) -> Option<Self> {
        read.next()
    }

    fn of_part(at: &RecordAt, source: &mut Source<'_>) -> Self {
        at.record(source.bytes()[at.start..at.start + at.len].to_vec())
    }
}

impl Delivered for SharedRecord {
    fn lsn(&self) -> u64 {
        self.lsn.0
    }

    fn from_record(r: Record) -> Self {
        SharedRecord::from(r)
    }

    fn next_read(read: &mut RecordsRead) -> Option<Self> {
        read.next_shared()
    }

    fn of_part(at: &RecordAt, source: &mut Source<'_>) -> Self {
        at.shared(source.shared().slice(at.start..at.start + at.len))
    }
}
