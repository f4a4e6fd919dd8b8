//! The `Reader`: reads records of the open log by LSN on threads of its own, so reads
//! never run on (or queue behind) the queue's thread and never delay commits.
//!
//! Why an `actix::SyncArbiter` of [`READER_THREADS`] threads and not `spawn_blocking`:
//! the pool is fixed and small, so a storm of reads takes at most that many threads and
//! cores from the flusher and the queue (tokio's blocking pool would grow to hundreds of
//! threads, shared with degraded-mode writes and recovery), and reads wait in the pool's
//! mailbox, not in threads. Each read looks the LSN up in the shared [`LogIndex`]
//! (a read lock held for a binary search; the queue takes the write lock once per durable
//! batch) and then does one positional read of the span (see `log/read_at.rs`).
//!
//! [`LogIndex`]: crate::log::LogIndex

use crate::error::WalError;
use crate::log::read_at::read_records;
use crate::log::{Record, SharedIndex};
use crate::storage::SharedStorage;
use actix::prelude::*;
use std::ops::Range;
use std::path::PathBuf;

/// Threads in the reader pool.
pub(crate) const READER_THREADS: usize = 2;

/// Read the durable records with LSNs in `lsns` (a prefix, bounded by `max_bytes`; see
/// [`read_records`]).
#[derive(Debug)]
pub(crate) struct ReadLsns {
    /// The LSNs wanted.
    pub lsns: Range<u64>,
    /// The bound on what one read holds.
    pub max_bytes: usize,
}

impl Message for ReadLsns {
    type Result = Result<Vec<Record>, WalError>;
}

/// One reader thread of the pool.
#[derive(Debug)]
pub(crate) struct Reader {
    storage: SharedStorage,
    dir: PathBuf,
    index: SharedIndex,
}

impl Reader {
    /// Starts the pool of readers of the log in `dir`.
    pub fn start_pool(storage: SharedStorage, dir: PathBuf, index: SharedIndex) -> Addr<Reader> {
        SyncArbiter::start(READER_THREADS, move || Reader {
            storage: storage.clone(),
            dir: dir.clone(),
            index: index.clone(),
        })
    }
}

impl Actor for Reader {
    type Context = SyncContext<Self>;
}

impl Handler<ReadLsns> for Reader {
    type Result = Result<Vec<Record>, WalError>;

    fn handle(&mut self, msg: ReadLsns, _: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!("read", start = msg.lsns.start, end = msg.lsns.end);
        let _enter = span.enter();
        read_records(
            self.storage.as_ref(),
            &self.dir,
            &self.index,
            msg.lsns,
            msg.max_bytes,
        )
    }
}
