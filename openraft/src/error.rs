//! The adapter's typed errors, and how they become openraft's `StorageError` (which
//! stops the Raft node: a log that fails is not written to again).

use actix_wal::{Lsn, WalError};
use openraft::{AnyError, ErrorSubject, ErrorVerb, NodeId, RaftTypeConfig};
use openraft::{StorageError, StorageIOError};

/// The result of a storage call, as openraft's traits spell it.
pub(crate) type RaftResult<T, C> = Result<T, StorageError<<C as RaftTypeConfig>::NodeId>>;

/// What went wrong under a Raft log operation.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// actix-wal refused or failed the operation.
    #[error("actix-wal: {0}")]
    Wal(#[from] WalError),
    /// An append would leave a hole in the log or overwrite it: entry `index` belongs at
    /// LSN `index + 1`, and the log would give it `lsn`.
    #[error("append refused: entry index {index} belongs at LSN {}, the log's next LSN is {lsn}", index + 1)]
    NotNext {
        /// The Raft index of the entry.
        index: u64,
        /// The LSN the log would give it.
        lsn: Lsn,
    },
    /// The record at `lsn` holds the entry of another index: the log was not written by
    /// this adapter alone.
    #[error("the record at LSN {lsn} holds the entry of index {index}, not of index {}", lsn.0 - 1)]
    Misplaced {
        /// The record's LSN.
        lsn: Lsn,
        /// The index of the entry it holds.
        index: u64,
    },
    /// The log's range read answered the record at `lsn` where the one at `expected` was
    /// next (it answers a prefix of the range, in order: a bug in the log, not a race).
    #[error("the log's read answered LSN {lsn} where LSN {expected} was next")]
    OutOfOrder {
        /// The LSN the read was at.
        expected: Lsn,
        /// The LSN of the record it answered.
        lsn: Lsn,
    },
}

/// Maps an adapter error to openraft's `StorageError`, naming what was being done.
pub(crate) fn storage<NID: NodeId, E: Into<AdapterError>>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
) -> impl FnOnce(E) -> StorageError<NID> {
    move |e| StorageIOError::new(subject, verb, AnyError::new(&e.into())).into()
}
