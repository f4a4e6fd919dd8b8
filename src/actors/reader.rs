//! Reads of the open log by LSN, off the queue's thread so they never delay commits:
//! in place on the caller's thread when the bytes are in memory ([`Reads`]), otherwise on
//! the `Reader` pool, threads of its own.
//!
//! Why an `actix::SyncArbiter` of [`READER_THREADS`] threads and not `spawn_blocking`:
//! the pool is fixed and small, so a storm of reads takes at most that many threads and
//! cores from the flusher and the queue (tokio's blocking pool would grow to hundreds of
//! threads, shared with degraded-mode writes and recovery), and reads wait in the pool's
//! mailbox, not in threads. Each read looks the LSN up in the shared [`LogIndex`]
//! (a read lock held for a binary search; the queue takes the write lock once per durable
//! batch) and then does one positional read of the span through a segment handle kept
//! open between reads (see `log/read_at.rs` and `log/handles.rs`).
//!
//! [`LogIndex`]: crate::log::LogIndex

use crate::error::WalError;
use crate::log::read_at::{RangeRead, ReadFrom, Wait};
use crate::log::records_read::RecordsRead;
use crate::log::{Record, SharedIndex};
use crate::storage::SharedStorage;
use actix::prelude::*;
use std::ops::Range;
use std::path::PathBuf;
use std::thread::ThreadId;

/// Threads in the reader pool.
pub(crate) const READER_THREADS: usize = 2;

/// Go on with a range read (from its start, or from where a caller's thread stopped).
#[derive(Debug)]
pub(crate) struct ReadLsns(pub RangeRead);

impl Message for ReadLsns {
    type Result = Result<Vec<Record>, WalError>;
}

/// A range read whose records the sender copies out itself, on its own thread (a
/// subscription's chunk read ahead: `log/records_read.rs` says why).
#[derive(Debug)]
pub(crate) struct ReadAhead(pub RangeRead);

impl Message for ReadAhead {
    type Result = Result<RecordsRead, WalError>;
}

/// What a read needs: the log's files and index. Shared by the pool's threads and the
/// handles that read in place.
#[derive(Debug, Clone)]
struct ReadSource {
    storage: SharedStorage,
    dir: PathBuf,
    index: SharedIndex,
    /// The log's `max_record_bytes`: no compressed frame decompresses to more.
    max_record_bytes: u64,
}

impl ReadSource {
    fn run(&self, read: &mut RangeRead, wait: Wait) -> Result<(), WalError> {
        let from = ReadFrom {
            storage: self.storage.as_ref(),
            dir: &self.dir,
            index: &self.index,
            max_record_bytes: self.max_record_bytes,
        };
        read.run(&from, wait)
    }
}

/// One reader thread of the pool.
#[derive(Debug)]
pub(crate) struct Reader {
    source: ReadSource,
}

impl Actor for Reader {
    type Context = SyncContext<Self>;
}

impl Handler<ReadLsns> for Reader {
    type Result = Result<Vec<Record>, WalError>;

    fn handle(&mut self, msg: ReadLsns, _: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!("read_on_pool");
        let _enter = span.enter();
        let mut read = msg.0;
        self.source.run(&mut read, Wait::Yes)?;
        Ok(read.into_records())
    }
}

impl Handler<ReadAhead> for Reader {
    type Result = Result<RecordsRead, WalError>;

    fn handle(&mut self, msg: ReadAhead, _: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!("read_ahead_on_pool");
        let _enter = span.enter();
        let mut read = msg.0;
        self.source.run(&mut read, Wait::Yes)?;
        Ok(read.into_read())
    }
}

/// How a [`Wal`](crate::Wal) handle reads: in place on the caller's thread when the bytes
/// are in memory and the caller is not the queue's thread, on the pool otherwise.
///
/// Why in place: a hand-off to a pool thread and back wakes two sleeping threads, about
/// 8 us here, against 1 us for the `pread` itself (docs/performance.md). Why only bytes in
/// memory (`RWF_NOWAIT`): a caller's thread runs other actors or tasks and must not
/// block on the disk; a span that would wait goes to the pool, which goes on from there.
/// Why never on the queue's thread: reads must not delay commits.
#[derive(Debug, Clone)]
pub(crate) struct Reads {
    source: ReadSource,
    pool: Addr<Reader>,
    /// The thread the queue runs on, when it is the caller's (`QueueThread::Caller`);
    /// `None` when the queue has an arbiter of its own that runs nothing else.
    queue_thread: Option<ThreadId>,
}

impl Reads {
    /// Starts the pool of readers of the log in `dir` (whose frames decompress to at most
    /// `max_record_bytes`); `queue_thread` is the thread the queue runs on, if callers'
    /// tasks may run there too.
    pub fn start(
        storage: SharedStorage,
        dir: PathBuf,
        index: SharedIndex,
        max_record_bytes: u64,
        queue_thread: Option<ThreadId>,
    ) -> Reads {
        let source = ReadSource {
            storage,
            dir,
            index,
            max_record_bytes,
        };
        let for_pool = source.clone();
        let pool = SyncArbiter::start(READER_THREADS, move || Reader {
            source: for_pool.clone(),
        });
        Reads {
            source,
            pool,
            queue_thread,
        }
    }

    /// Reads the durable records in `lsns` (a prefix bounded by `max_bytes`; see
    /// `log::read_at::read_records`).
    pub async fn read(&self, lsns: Range<u64>, max_bytes: usize) -> Result<Vec<Record>, WalError> {
        let mut read = RangeRead::new(lsns, max_bytes);
        if self.queue_thread != Some(std::thread::current().id()) {
            let span = tracing::debug_span!("read_in_place");
            let _enter = span.enter();
            self.source.run(&mut read, Wait::No)?;
            if read.is_done() {
                return Ok(read.into_records());
            }
        }
        self.pool
            .send(ReadLsns(read))
            .await
            .map_err(|_| WalError::ShutDown)?
    }

    /// Starts reading `lsns` on the pool now (the request is queued before this returns,
    /// so a pool thread reads while the caller goes on): a subscription's next chunk, whose
    /// records the subscription copies out on its own thread, read into `spare` (the
    /// chunk before's buffer) if given.
    pub fn read_ahead(
        &self,
        lsns: Range<u64>,
        max_bytes: usize,
        spare: Option<Vec<u8>>,
    ) -> impl std::future::Future<Output = Result<RecordsRead, WalError>> + Send + 'static {
        let read = RangeRead::new(lsns, max_bytes).with_buffer(spare);
        let request = self.pool.send(ReadAhead(read));
        async move { request.await.map_err(|_| WalError::ShutDown)? }
    }
}
