//! Replay without actix (issue 22, item 2): the records the log held at open, as a
//! [`futures::Stream`] that any caller can drive (a tokio task beside
//! [`Wal::open_standalone`], an actor through `ctx.add_stream`, `futures::executor`), where
//! `WalConfig::replay_to` needs an actix `Recipient`. Read from the open log with
//! [`Wal::read_range`] in chunks of at most [`REPLAY_CHUNK_BYTES`], so a replay holds one
//! chunk in memory however long the log.

use crate::error::WalError;
use crate::log::Record;
use crate::lsn::Lsn;
use crate::wal::Wal;
use futures::stream::{self, Stream};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes of payload (each record counted with 24 more) one read of a [`Replay`] asks for.
pub const REPLAY_CHUNK_BYTES: usize = 1 << 20;

/// The records the log held at open, from its checkpoint (its first LSN, unless cursors or
/// the retention policy keep records below the checkpoint) or `WalConfig::replay_from`,
/// whichever is later (where `replay_to` starts), to the end recovery found
/// ([`Wal::replay`]), in LSN order, with no gap and no duplicate. Records appended since
/// the open are not in it, even where a rewind gave their LSNs out again. It ends after
/// the last, or after the first error: a record removed since the open (by
/// [`Wal::truncate_before`], [`Wal::truncate_after`] or [`Wal::reset`]) is
/// [`WalError::NotFound`] naming its LSN, as [`Wal::read`] says, and the stream ends
/// there. (A rewind's cut is checked before each record is handed out: from the first
/// LSN a rewind or a reset removed on, nothing is, even a record read before the cut.)
///
/// A replay is not a handle: it does not keep a log from [`Wal::open_standalone`] open.
/// Once the application's last `Wal` is gone (or after [`Wal::shutdown`]), it hands out
/// what it read already, then ends with [`WalError::ShutDown`] if records remained.
pub struct Replay {
    inner: Pin<Box<dyn Stream<Item = Result<Record, WalError>> + Send>>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replay")
    }
}

impl Stream for Replay {
    type Item = Result<Record, WalError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Where a replay stands: the next LSN to read, the end, the chunk read and not yet
/// yielded; `None` once it ended.
struct Cursor {
    wal: Wal,
    next: Lsn,
    end: Lsn,
    chunk: VecDeque<Record>,
}

impl Cursor {
    /// Where the records the log held at open end now: the end recovery found, or the
    /// lowest LSN a cut removed records from since the open (a rewind, a reset, a
    /// rewrite), whichever is lower.
    fn held_end(&self) -> Lsn {
        let cut = self.wal.progress().rx.borrow().lowest_cut;
        cut.map_or(self.end, |c| self.end.min(Lsn(c)))
    }
}

impl Wal {
    /// The records the log held at open, as a stream (see [`Replay`]): what
    /// `WalConfig::replay_to` sends an actor, for any caller.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), actix_wal::WalError> {
    /// use futures::StreamExt;
    /// let wal = actix_wal::Wal::open_standalone("/tmp/wal-replay", Default::default()).await?;
    /// let mut replay = wal.replay();
    /// while let Some(record) = replay.next().await {
    ///     let record = record?;
    ///     println!("{}: {} bytes", record.lsn, record.payload.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn replay(&self) -> Replay {
        let report = self.recovery_report();
        let cursor = Cursor {
            // Not a handle: a replay half-way does not keep a standalone log open.
            wal: self.detached(),
            next: report
                .checkpoint_lsn
                .max(report.first_lsn)
                .max(self.replay_from()),
            end: report.next_lsn,
            chunk: VecDeque::new(),
        };
        let inner = stream::unfold(Some(cursor), |state| async move {
            let mut c = state?;
            let end = c.held_end();
            if c.next >= end && c.next < c.end {
                // Removed since the open (and maybe given out again since).
                return Some((Err(WalError::NotFound { lsn: c.next }), None));
            }
            if c.chunk.is_empty() && c.next < end {
                let read = c.wal.read_range(c.next..end, REPLAY_CHUNK_BYTES).await;
                match read {
                    Ok(records) if !records.is_empty() => c.chunk = records.into(),
                    // Never expected (a non-empty range reads at least one record or
                    // fails): said, never taken for the end.
                    Ok(_) => return Some((Err(WalError::NotFound { lsn: c.next }), None)),
                    Err(e) => return Some((Err(e), None)),
                }
            }
            let record = c.chunk.pop_front()?;
            if record.lsn >= c.held_end() {
                // A cut since the read: this record may not be the one the log held.
                return Some((Err(WalError::NotFound { lsn: record.lsn }), None));
            }
            if record.lsn != c.next {
                // Never expected (reads are in LSN order, with no gap): said, not skipped.
                let e = WalError::NotFound { lsn: c.next };
                return Some((Err(e), None));
            }
            c.next = Lsn(record.lsn.0 + 1);
            Some((Ok(record), Some(c)))
        });
        Replay {
            inner: Box::pin(inner),
        }
    }
}
