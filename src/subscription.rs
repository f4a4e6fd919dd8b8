//! Live subscribers (issue 22, item 1): [`Wal::subscribe`] gives a [`Subscription`], a
//! [`futures::Stream`] of every durable record from an LSN on, in LSN order, with no gap
//! and no duplicate: read from the files ([`Wal::read_range`], in chunks of
//! [`SUBSCRIPTION_CHUNK_BYTES`], growing to [`SUBSCRIPTION_MAX_CHUNK_BYTES`] while it
//! stays behind) up to the durable end, then woken by the queue each time
//! the durable end moves (`progress.rs`: a watch channel, no polling, no sleep). While it
//! keeps up, it takes the records from the newest durable batches the queue shares with
//! every subscriber (read once for all, `log/batch_records.rs`) instead of the files.
//!
//! It only ever reads durable records (the read path returns nothing past the durable
//! end). A cut (`truncate_after`, `reset`) below what it already yielded ends it with
//! [`WalError::SubscriberRewound`] naming the cut; a `from` below the log's first LSN, or
//! a checkpoint that passes it, with [`WalError::SubscriberBehind`]. It ends cleanly
//! (`None`) when the log shuts down; it does not keep a standalone log open (the log of
//! [`Wal::open_standalone`] shuts down when the application's last handle goes, and its
//! subscriptions end then). Each subscription holds at most two chunks (the one
//! it hands out, and the next, read ahead on the reader pool while it is behind;
//! [`SUBSCRIPTION_MAX_CHUNK_BYTES`] says what a chunk holds), and none once it takes from
//! the shared batches or catches up; the watch keeps only the newest durable end, so a
//! slow subscriber holds up neither commits nor other subscribers: it reads what it missed
//! from the files.
//!
//! A chunk read ahead comes back as the spans read and where each record lies in them
//! (`log/records_read.rs`); the subscription copies each record out as it hands it out,
//! on its own thread, so that a record's buffer is allocated by the thread that will most
//! likely free it.
//!
//! [`Wal::subscribe_shared`] gives the same records as [`SharedRecord`]s, whose payloads
//! share the batch or span they lie in instead of being copied out: no allocation and no
//! copy per record and per subscriber (`log/shared_record.rs`).

use crate::error::WalError;
use crate::log::batch_records::batch_records;
use crate::log::records_read::RecordsRead;
use crate::log::shared_record::Delivered;
use crate::log::{Record, SharedRecord};
use crate::lsn::Lsn;
use crate::progress::{Following, ProgressRx};
use crate::wal::Wal;
use futures::stream::Stream;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes of payload (each record counted with 24 more) a [`Subscription`]'s first two
/// reads of the files ask for. While it stays behind, each read after them asks for
/// twice the last, up to [`SUBSCRIPTION_MAX_CHUNK_BYTES`]: a subscriber that fell briefly
/// behind the shared batches reads little, one catching up reads in chunks large enough
/// that the two thread wakes of each (the reader pool's, its own) cost little.
pub const SUBSCRIPTION_CHUNK_BYTES: usize = 1 << 20;

/// The largest read of a [`Subscription`] (see [`SUBSCRIPTION_CHUNK_BYTES`]). One catching
/// up holds two chunks at most, so about twice this: each chunk is the span it read (this
/// much and two index strides, 16 KiB each, more per segment it touched), or a record's
/// frame if larger (a record larger than the chunk makes its chunk that large); with
/// compression, a chunk holds the span read (compressed, up to this much) and the records'
/// payloads decompressed (up to this much, or a compressed frame's whole payload, at most
/// `max_record_bytes`), so up to about twice as much. One that takes from the shared
/// batches holds no chunk (a copying one holds what it copied out of them: at most 1 MiB,
/// or one batch if larger, up to `max_batch_bytes`); the shared batches themselves, up to
/// 4 MiB, are the log's, kept for all subscribers while there is one.
pub const SUBSCRIPTION_MAX_CHUNK_BYTES: usize = 4 << 20;

/// Bytes of the shared batches (`progress.rs`) one look at them takes, at least one whole
/// batch (up to `max_batch_bytes`): what a subscriber that keeps up holds (copied out,
/// for [`Wal::subscribe`]) before it looks again. No read waits behind a look, so a
/// smaller take than a read's costs nothing.
const LIVE_TAKE_BYTES: usize = 1 << 20;

/// Bytes a read of the files asks for after `reads_behind` reads since the subscriber
/// last kept up: [`SUBSCRIPTION_CHUNK_BYTES`] for the first two, then twice the last, up
/// to [`SUBSCRIPTION_MAX_CHUNK_BYTES`].
fn read_bytes(reads_behind: u32) -> usize {
    let doublings = reads_behind.saturating_sub(1).min(8);
    (SUBSCRIPTION_CHUNK_BYTES << doublings).min(SUBSCRIPTION_MAX_CHUNK_BYTES)
}

/// Every durable record from an LSN on, as the log grows ([`Wal::subscribe`]). Use it from
/// tokio (`StreamExt::next`) or from an actor (`ctx.add_stream`).
pub struct Subscription(Follower<Record>);

/// [`Subscription`]'s records as [`SharedRecord`]s, their payloads shared rather than
/// copied out ([`Wal::subscribe_shared`]). The same order, the same errors, the same end.
pub struct SharedSubscription(Follower<SharedRecord>);

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

impl std::fmt::Debug for SharedSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSubscription")
    }
}

impl Stream for Subscription {
    type Item = Result<Record, WalError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next(cx)
    }
}

impl Stream for SharedSubscription {
    type Item = Result<SharedRecord, WalError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next(cx)
    }
}

/// A subscription handing out records of kind `T`.
struct Follower<T> {
    /// Where it stands, while no step is under way (`None` once it ended).
    follow: Option<Follow<T>>,
    /// The step under way: reading a chunk or waiting for the durable end to move.
    step: Option<StepFuture<T>>,
}

/// A step under way, with the state it gives back.
type StepFuture<T> = Pin<Box<dyn Future<Output = (Follow<T>, Step<T>)> + Send>>;

impl<T: Delivered> Follower<T> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, WalError>>> {
        let this = self;
        if this.step.is_none() {
            // The common case, without a future and without moving the state: a record of
            // the chunk read, no cut since.
            let Some(f) = this.follow.as_mut() else {
                return Poll::Ready(None);
            };
            if f.progress.cuts() == f.seen_cuts {
                if let Some(r) = f.pop_front() {
                    f.next = r.lsn() + 1;
                    return Poll::Ready(Some(Ok(r)));
                }
            }
            let Some(mut f) = this.follow.take() else {
                return Poll::Ready(None);
            };
            this.step = Some(Box::pin(async move {
                let step = match f.step().await {
                    Step::Fail(e) => f.failed_async(e).await,
                    other => other,
                };
                (f, step)
            }));
        }
        let Some(fut) = this.step.as_mut() else {
            return Poll::Ready(None);
        };
        let (f, step) = std::task::ready!(fut.as_mut().poll(cx));
        this.step = None;
        match step {
            Step::Yield(r) => {
                this.follow = Some(f);
                Poll::Ready(Some(Ok(r)))
            }
            Step::Fail(e) => Poll::Ready(Some(Err(e))),
            Step::End => Poll::Ready(None),
        }
    }
}

/// Where a subscription stands.
struct Follow<T> {
    wal: Wal,
    progress: ProgressRx,
    /// The LSN to yield next.
    next: u64,
    /// Cuts seen so far (`Progress::cuts`).
    seen_cuts: u64,
    /// Read, not yet yielded; all below the durable end when read. Taken from the shared
    /// batches, or read in place (the first chunk, and after a cut).
    chunk: VecDeque<T>,
    /// A chunk read ahead on the pool, not yet yielded (copied out record by record as it
    /// is handed out: `log/records_read.rs` says why). Holds records only while `chunk`
    /// holds none, and follows the records `chunk` held. Once handed out, it keeps its
    /// buffer for the next chunk read ahead to be read into (dropped when the subscriber
    /// catches up), so that chunk is not zeroed first.
    read: RecordsRead,
    /// Counts this subscription among those the queue keeps batches for.
    _following: Following,
    /// The next chunk, being read on the reader pool while this one is handed out;
    /// dropped once the subscriber takes from the shared batches or catches up.
    ahead: Option<Ahead>,
    /// Reads of the files since the subscriber last took from the shared batches or
    /// caught up: what the next read asks for ([`read_bytes`]).
    reads_behind: u32,
}

/// A chunk read ahead: from `from`, started when `cuts` cuts had been seen (used only if
/// none came since; otherwise dropped and read again).
struct Ahead {
    from: u64,
    cuts: u64,
    read: Pin<Box<dyn Future<Output = Result<RecordsRead, WalError>> + Send>>,
}

/// A chunk read from the files: in place (copied out already) or ahead on the pool.
enum Chunk {
    Copied(Vec<Record>),
    Ahead(RecordsRead),
}

impl Chunk {
    fn first_lsn(&self) -> Option<u64> {
        match self {
            Chunk::Copied(r) => r.first().map(|r| r.lsn.0),
            Chunk::Ahead(r) => r.first_lsn().map(|l| l.0),
        }
    }

    fn last_lsn(&self) -> Option<u64> {
        match self {
            Chunk::Copied(r) => r.last().map(|r| r.lsn.0),
            Chunk::Ahead(r) => r.last_lsn().map(|l| l.0),
        }
    }
}

/// What one step of a subscription does.
enum Step<T> {
    Yield(T),
    Fail(WalError),
    End,
}

impl<T: Delivered> Follow<T> {
    /// The next record read, not yet yielded.
    fn pop_front(&mut self) -> Option<T> {
        self.chunk
            .pop_front()
            .or_else(|| T::next_read(&mut self.read))
    }

    async fn step(&mut self) -> Step<T> {
        loop {
            if self.progress.cuts() != self.seen_cuts {
                // A cut since the chunk was read: what it holds may be gone.
                self.chunk.clear();
                self.read.clear();
            }
            if let Some(r) = self.pop_front() {
                self.next = r.lsn() + 1;
                return Step::Yield(r);
            }
            // One look at the watch, its lock held briefly (the batches are shared).
            let (cut, cuts, closed, durable_end, first_lsn, live) = {
                let p = self.progress.rx.borrow_and_update();
                (
                    p.cut_below(self.seen_cuts, self.next),
                    p.cuts,
                    p.closed,
                    p.durable_end,
                    p.first_lsn,
                    p.live_from(self.next, LIVE_TAKE_BYTES),
                )
            };
            if let Some(cut) = cut {
                return Step::Fail(WalError::SubscriberRewound { cut: Lsn(cut) });
            }
            self.seen_cuts = cuts;
            if closed {
                return Step::End;
            }
            if self.next >= durable_end {
                // Caught up: wait for the queue to move the durable end (or shut down),
                // holding no buffer of a chunk read before, nor one read ahead.
                self.read.clear();
                self.ahead = None;
                self.reads_behind = 0;
                if self.progress.rx.changed().await.is_err() {
                    return Step::End;
                }
                continue;
            }
            if !live.is_empty() {
                // Kept up: the records are in the batches the queue shares.
                self.read.clear();
                self.reads_behind = 0;
                let whole = live
                    .iter()
                    .all(|b| batch_records(b, self.next, durable_end, &mut self.chunk));
                if whole && self.chunk.front().map(T::lsn) == Some(self.next) {
                    // A chunk read ahead from the files while it was behind is not needed:
                    // dropped, not held (up to a chunk's size) while it keeps up or idles.
                    self.ahead = None;
                    continue;
                }
                self.chunk.clear(); // never for batches the queue encoded: read the files
            }
            let read = match self.ahead.take() {
                // Read ahead from where it stands, with no cut since, nor a checkpoint past
                // it (that read below the first LSN would hand out records the log no
                // longer has: it reads again, and is told it is behind).
                Some(a)
                    if a.from == self.next && a.cuts == self.seen_cuts && a.from >= first_lsn =>
                {
                    a.read.await.map(Chunk::Ahead)
                }
                _ => self
                    .wal
                    .read_range(
                        Lsn(self.next)..Lsn(durable_end),
                        read_bytes(self.reads_behind),
                    )
                    .await
                    .map(Chunk::Copied),
            };
            // A cut while reading: what was read may be gone or from after the cut; look
            // again (the top of the loop tells whether it removed anything yielded).
            if self.progress.cuts() != self.seen_cuts {
                continue;
            }
            match read {
                Ok(records) if records.first_lsn() == Some(self.next) => {
                    // Behind the durable end: the next chunk is read while this one is
                    // handed out (two chunks held at most).
                    let after = records.last_lsn().map_or(self.next, |l| l + 1);
                    if after < durable_end {
                        self.reads_behind = self.reads_behind.saturating_add(1);
                        self.ahead = Some(Ahead {
                            from: after,
                            cuts: self.seen_cuts,
                            // Into the buffer of the chunk handed out before, if any.
                            read: Box::pin(self.wal.read_ahead(
                                after..durable_end,
                                read_bytes(self.reads_behind),
                                self.read.take_spare(),
                            )),
                        });
                    }
                    match records {
                        Chunk::Copied(r) => {
                            self.chunk = r.into_iter().map(T::from_record).collect()
                        }
                        Chunk::Ahead(r) => self.read = r,
                    }
                }
                Ok(_) => {
                    return Step::Fail(WalError::NotFound {
                        lsn: Lsn(self.next),
                    })
                }
                Err(e) => return Step::Fail(e),
            }
        }
    }

    /// What a failed step means: the log shut down (the end), a `from` below the first
    /// LSN or a checkpoint that passed the subscriber (a read's `NotFound` below the first
    /// LSN), or the error itself.
    async fn failed_async(&mut self, e: WalError) -> Step<T> {
        if self.progress.rx.borrow().closed || matches!(e, WalError::ShutDown) {
            return Step::End;
        }
        if matches!(e, WalError::NotFound { .. }) {
            if let Ok(s) = self.wal.stats().await {
                if self.next < s.first_lsn.0 {
                    return Step::Fail(WalError::SubscriberBehind {
                        next: Lsn(self.next),
                        first_lsn: s.first_lsn,
                    });
                }
            }
        }
        Step::Fail(e)
    }
}

impl Wal {
    /// Every durable record from `from` on, as the log grows (see [`Subscription`]).
    ///
    /// ```no_run
    /// # async fn f(wal: actix_wal::Wal) -> Result<(), actix_wal::WalError> {
    /// use futures::StreamExt;
    /// let mut records = wal.subscribe(wal.recovery_report().first_lsn);
    /// while let Some(record) = records.next().await {
    ///     let record = record?;
    ///     println!("{}: {} bytes", record.lsn, record.payload.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self, from: Lsn) -> Subscription {
        Subscription(self.follower(from))
    }

    /// The records of [`Wal::subscribe`] as [`SharedRecord`]s: each payload a slice of
    /// the batch the log wrote (or of the span it read) instead of a copy of its own
    /// (see [`SharedSubscription`]).
    ///
    /// ```no_run
    /// # async fn f(wal: actix_wal::Wal) -> Result<(), actix_wal::WalError> {
    /// use futures::StreamExt;
    /// let mut records = wal.subscribe_shared(wal.recovery_report().first_lsn);
    /// while let Some(record) = records.next().await {
    ///     let record = record?;
    ///     println!("{}: {} bytes", record.lsn, record.payload.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe_shared(&self, from: Lsn) -> SharedSubscription {
        SharedSubscription(self.follower(from))
    }

    fn follower<T: Delivered>(&self, from: Lsn) -> Follower<T> {
        let follow = Follow {
            // Not a handle of its own: a standalone log shuts down when the application's
            // last handle goes, and the stream ends then.
            wal: self.detached(),
            progress: self.progress().clone(),
            next: from.0,
            seen_cuts: self.progress().cuts(),
            chunk: VecDeque::new(),
            read: RecordsRead::default(),
            _following: self.progress().follow(),
            ahead: None,
            reads_behind: 0,
        };
        Follower {
            follow: Some(follow),
            step: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_double_after_the_first_two_up_to_the_largest() {
        let mib = 1 << 20;
        let sizes: Vec<usize> = (0..6).map(read_bytes).collect();
        assert_eq!(sizes, [mib, mib, 2 * mib, 4 * mib, 4 * mib, 4 * mib]);
        assert_eq!(read_bytes(u32::MAX), SUBSCRIPTION_MAX_CHUNK_BYTES);
    }
}
