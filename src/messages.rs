//! The messages an application exchanges with the log, and their replies: what a
//! transaction actor sends to the [`Queue`](crate::Queue) (`Append`, `Commit`,
//! `AppendBatch`, `Flush`,
//! `WaitDurable`, `SetMode`, `GetStats`, `TruncateBefore`, `TruncateAfter`, `Reset`, `Shutdown`),
//! what the log sends back to its
//! recipients (`DurabilityReply`, `Replayed`), and what `Wal::open` reports
//! (`RecoveryReport`).
//!
//! This module sits below the configuration and the actors: both import it, it imports
//! neither. The messages the actors exchange among themselves stay beside their actors,
//! private to the crate.

use crate::error::WalError;
use crate::log::{Record, RecoveryOutcome};
use crate::lsn::Lsn;
use crate::stats::{CommitMode, WalStats};
use actix::prelude::*;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Durability {
    /// Reply only once the record's bytes are fsynced. The default.
    #[default]
    Durable,
    /// Reply as soon as the record is queued; it is written and fsynced within
    /// `flush_interval_ms`. A crash may lose the last `flush_interval_ms` of buffered
    /// appends (the bounded loss window of PostgreSQL's `synchronous_commit = off`).
    Buffered,
}

/// Where a durability notification goes, besides the reply of `send`.
#[derive(Debug, Clone)]
pub struct Notify {
    /// The recipient.
    pub to: Recipient<DurabilityReply>,
    /// A value of the caller's, returned in the notification.
    pub token: u64,
}

/// Sent to a [`Notify`] recipient once an append or commit is durable (or has failed).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct DurabilityReply {
    /// The caller's token.
    pub token: u64,
    /// The LSN (a commit's first LSN), or why the append failed.
    pub result: Result<Lsn, WalError>,
}

/// Options shared by [`Append`], [`Commit`] and [`AppendBatch`].
#[derive(Debug, Clone, Default)]
pub struct AppendOptions {
    /// Durability of this message; `None` uses the config's default.
    pub durability: Option<Durability>,
    /// Dispatch the batch holding this message now (a `Buffered` append otherwise waits
    /// up to `flush_interval_ms`).
    pub flush_now: bool,
    /// Also notify this recipient when the message is durable.
    pub notify: Option<Notify>,
    /// When the message was built: set by the constructors (`Append::new`, `Commit::new`,
    /// `AppendBatch::new` and the `encode`s built on them). The queue records the time from
    /// here to its handler (the wait in its mailbox, and in the caller before `send`) in
    /// [`crate::metrics::ENQUEUE_WAIT`]. `None` (a message built field by field): nothing
    /// is recorded.
    pub built_at: Option<std::time::Instant>,
}

impl AppendOptions {
    /// Default options, stamped now (see [`Self::built_at`]).
    fn stamped() -> AppendOptions {
        AppendOptions {
            built_at: Some(std::time::Instant::now()),
            ..AppendOptions::default()
        }
    }
}

/// Append one record. Replies with its LSN: after it is fsynced for
/// [`Durability::Durable`], at once for [`Durability::Buffered`].
///
/// Do not wrap the `send()` of this message in a timeout: actix may drop a message whose
/// sender went away before its handler ran, so a timed-out append may or may not be in
/// the log. Wait for the reply; back-pressure keeps it bounded.
#[derive(Debug, Clone)]
pub struct Append {
    /// The record's bytes.
    pub payload: Vec<u8>,
    /// Durability and notification options.
    pub options: AppendOptions,
}

impl Append {
    /// A durable (by default) append of `payload`.
    pub fn new(payload: impl Into<Vec<u8>>) -> Append {
        Append {
            payload: payload.into(),
            options: AppendOptions::stamped(),
        }
    }

    /// An append of `value` encoded with the [codec](crate::format::codec) (bincode 2,
    /// standard configuration); read it back with [`Record::decode`](crate::Record::decode).
    /// A value whose bytes would not decode as `T` again is refused here
    /// ([`WalError::Codec`]), before anything is queued.
    pub fn encode<T: Serialize + DeserializeOwned>(value: &T) -> Result<Append, WalError> {
        Ok(Append::new(crate::format::codec::encode(value)?))
    }
}

/// The option setters `Append`, `Commit` and `AppendBatch` share.
macro_rules! append_options {
    ($t:ty) => {
        impl $t {
            /// Sets the durability policy by name.
            pub fn durability(mut self, durability: Durability) -> Self {
                self.options.durability = Some(durability);
                self
            }

            /// Asks for an immediate flush of the batch holding this message.
            pub fn flush_now(mut self) -> Self {
                self.options.flush_now = true;
                self
            }

            /// Also sends a [`DurabilityReply`] with `token` to `to`.
            pub fn notify(mut self, to: Recipient<DurabilityReply>, token: u64) -> Self {
                self.options.notify = Some(Notify { to, token });
                self
            }
        }

        impl Message for $t {
            type Result = Result<Lsn, WalError>;
        }
    };
}

append_options!(Append);
append_options!(Commit);
append_options!(AppendBatch);

/// Commit a transaction: its entries are written in one frame, so after any crash
/// recovery yields all of them or none. Entry `i` gets LSN `first + i`; the reply is
/// `first`.
///
/// Its limits come from that one frame: at most 65,535 entries, and at most
/// `max_record_bytes` of payload in all (each entry costs its bytes plus a 4-byte length),
/// else [`WalError::InvalidTransaction`] or [`WalError::RecordTooLarge`]. For bulk loads
/// that need no atomicity, [`AppendBatch`] has neither limit.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The entries, at least one and at most 65,535.
    pub entries: Vec<Vec<u8>>,
    /// Durability and notification options.
    pub options: AppendOptions,
}

impl Commit {
    /// A durable (by default) transaction of `entries` (anything that turns into bytes:
    /// `Vec<u8>`, `&[u8]`, `&str`, `String`, ...). A `Vec<Vec<u8>>` is taken without
    /// copying.
    pub fn new(entries: impl IntoIterator<Item = impl Into<Vec<u8>>>) -> Commit {
        Commit {
            entries: entries.into_iter().map(Into::into).collect(),
            options: AppendOptions::stamped(),
        }
    }

    /// A transaction of `items`, each encoded with the [codec](crate::format::codec) as
    /// one entry. If any item's bytes would not decode as `T` again, the whole commit is
    /// refused here ([`WalError::Codec`]), before anything is queued.
    pub fn encode<'a, T>(items: impl IntoIterator<Item = &'a T>) -> Result<Commit, WalError>
    where
        T: Serialize + DeserializeOwned + 'a,
    {
        Ok(Commit::new(encode_all(items)?))
    }
}

/// Append many records in one message: consecutive LSNs, one reply (the first LSN), after
/// the last one is fsynced for [`Durability::Durable`] (the same options as [`Append`]).
///
/// Not atomic: each record is a frame of its own, and the records are split across write
/// batches (at `max_batch_bytes`) and segments as needed, so after a crash a prefix of them
/// may be in the log, and an error reply (a failed write) may leave a prefix durable. Use
/// [`Commit`] for all-or-nothing. No cap on the count of records other than the queue's:
/// the batch is admitted whole or waits whole for room (or fails whole with
/// `WhenFull::Fail`), so its frames (each record plus 24 bytes) must fit in
/// `max_queue_bytes` and its records in `max_queue_entries`, else
/// [`WalError::BatchTooLarge`]. Each record is at most `max_record_bytes`
/// ([`WalError::RecordTooLarge`]); an empty batch is [`WalError::EmptyBatch`].
///
/// A rewind ([`TruncateAfter`]) never cuts inside a batch whose reply (or notification)
/// is still pending: it is refused with [`WalError::SplitsBatch`], so a batch answered
/// [`WalError::TruncatedAway`] has none of its records left in the log.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    /// The records, in LSN order.
    pub records: Vec<Vec<u8>>,
    /// Durability and notification options.
    pub options: AppendOptions,
}

impl AppendBatch {
    /// A durable (by default) batch of `records` (anything that turns into bytes); a
    /// `Vec<Vec<u8>>` is taken without copying.
    pub fn new(records: impl IntoIterator<Item = impl Into<Vec<u8>>>) -> AppendBatch {
        AppendBatch {
            records: records.into_iter().map(Into::into).collect(),
            options: AppendOptions::stamped(),
        }
    }

    /// A batch of `items`, each encoded with the [codec](crate::format::codec) as one
    /// record. If any item's bytes would not decode as `T` again, the whole batch is
    /// refused here ([`WalError::Codec`]), before anything is queued.
    pub fn encode<'a, T>(items: impl IntoIterator<Item = &'a T>) -> Result<AppendBatch, WalError>
    where
        T: Serialize + DeserializeOwned + 'a,
    {
        Ok(AppendBatch::new(encode_all(items)?))
    }
}

/// Encodes every item with the codec, or refuses them all at the first that would not
/// decode again.
fn encode_all<'a, T>(items: impl IntoIterator<Item = &'a T>) -> Result<Vec<Vec<u8>>, WalError>
where
    T: Serialize + DeserializeOwned + 'a,
{
    items
        .into_iter()
        .map(crate::format::codec::encode)
        .collect()
}

/// Make everything queued so far durable. Replies with the highest durable LSN
/// (`Lsn(0)` for an empty log).
#[derive(Debug, Clone, Copy)]
pub struct Flush;

impl Message for Flush {
    type Result = Result<Lsn, WalError>;
}

/// Wait until every record up to and including the LSN is durable. Replies with the LSN
/// then: at once if it already is, after the fsync that makes it so otherwise (the batch
/// holding it is dispatched now, not after `flush_interval_ms`).
///
/// With [`Durability::Buffered`] appends (answered with their LSN at enqueue) this is
/// "enqueue now, callback when durable": append without waiting, then wait for the last
/// LSN once it matters (docs/operations.md).
///
/// Errors: the error that kept the LSN from becoming durable (the write of its batch
/// failed, the log was poisoned or shut down), or [`WalError::LsnNotAssigned`] for an LSN
/// the log never gave out: at or past the next one, LSN 0, or below where the log started
/// (its first LSN at open, or the LSN of the last reset past the next LSN). Below a
/// checkpoint (and at or above that start) an LSN was durable before it was removed:
/// answered at once.
#[derive(Debug, Clone, Copy)]
pub struct WaitDurable(pub Lsn);

impl Message for WaitDurable {
    type Result = Result<Lsn, WalError>;
}

/// Ask for the log's figures.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "WalStats")]
pub struct GetStats;

/// Switch between async group commit and synchronous mode (write + fsync per message) at
/// run time. The log enters and leaves `WalMode::Degraded` by itself; [`CommitMode`] has
/// no such value, so a request for it does not compile.
///
/// ```
/// use actix_wal::{CommitMode, SetMode};
/// let _ = (SetMode(CommitMode::Sync), SetMode(CommitMode::Async));
/// ```
///
/// The degraded mode cannot be asked for: it has no name here.
///
/// ```compile_fail,E0308
/// use actix_wal::{SetMode, WalMode};
/// let _ = SetMode(WalMode::Degraded);
/// ```
///
/// ```compile_fail,E0308
/// # async fn f(wal: actix_wal::Wal) {
/// let _ = wal.set_mode(actix_wal::WalMode::Degraded).await;
/// # }
/// ```
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), WalError>")]
pub struct SetMode(pub CommitMode);

/// Stop taking appends, write and fsync everything queued, answer every waiter, let the
/// flusher finish its last I/O in the directory (its spare helper's raise of the
/// newest-segment LSN), release the log directory. Nothing in the directory changes
/// after the reply. Later appends get [`WalError::ShutDown`].
#[derive(Debug, Clone, Copy)]
pub struct Shutdown;

impl Message for Shutdown {
    type Result = Result<(), WalError>;
}

/// Checkpoint: remove whole segments whose records all lie below the LSN. Replies with
/// the number of segments removed. Refused on a poisoned log ([`WalError::Poisoned`]) and
/// once a shutdown began ([`WalError::ShutDown`]), changing nothing.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<usize, WalError>")]
pub struct TruncateBefore(pub Lsn);

/// Rewind: durably remove every record with an LSN above this one; the next append gets
/// `lsn + 1`. Waits until every record up to `lsn` is durable; appends not yet answered
/// whose records lie above `lsn` fail with [`WalError::TruncatedAway`]. Refused, changing
/// nothing: below the first LSN minus one ([`WalError::BelowFirstLsn`]), at or past the
/// next LSN ([`WalError::LsnNotAssigned`]), inside a transaction
/// ([`WalError::SplitsTransaction`]), or inside an [`AppendBatch`] not yet answered
/// ([`WalError::SplitsBatch`]: the batch could then be told neither that it landed nor
/// that it did not; cut at its edges, or once it is answered). `lsn` = next LSN − 1
/// changes nothing. Crash-safe:
/// recovery yields the log before or after it, never a removed record once it answered.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), WalError>")]
pub struct TruncateAfter(pub Lsn);

/// Reset: remove every record; the log's first LSN and the next append's LSN become this
/// one (a Raft follower installing a snapshot). Appends not yet answered fail with
/// [`WalError::TruncatedAway`]. Refused, changing nothing, when the LSN is below the next
/// LSN, also on an empty log: an LSN is never given out twice
/// ([`WalError::WouldReuseLsns`]), or outside `1..=2^63-1` ([`WalError::LsnOutOfRange`]).
/// Crash-safe like [`TruncateAfter`]; the metadata slot stays.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), WalError>")]
pub struct Reset(pub Lsn);

/// A chunk of records replayed at open, in LSN order. The log waits for each chunk to be
/// handled before sending the next, and takes no appends until replay is over. A chunk
/// holds at most `replay_chunk_records` records and `max_queue_bytes` bytes of payload,
/// except that a transaction is never split across chunks (and a record larger than
/// `max_queue_bytes` travels alone).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Replayed {
    /// The records, in LSN order.
    pub records: Vec<Record>,
}

/// What recovery found and did when the log was opened.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Intact records found by recovery's scan (before the open's first retention run).
    pub records: u64,
    /// Records sent to the replay recipient.
    pub replayed: u64,
    /// Bytes of torn tail cut off.
    pub bytes_cut: u64,
    /// The log's first LSN, persisted in its `META` file: the checkpoint set by
    /// `truncate_before`, or where a new log started (`WalConfig::first_lsn`). No record
    /// below it is replayed or read. Below the checkpoint while cursors or the retention
    /// policy keep records there (`checkpoint_lsn`). From [`crate::Wal::open`]: as left by
    /// the log's first retention run, which the open waits for (it removes what this
    /// open's policy no longer keeps), so a read or a subscription from here finds it.
    pub first_lsn: Lsn,
    /// The checkpoint (`truncate_before`): replay starts here (records between
    /// `first_lsn` and it are kept for cursors and readers, not replayed). Equal to
    /// `first_lsn` without cursors or retention.
    pub checkpoint_lsn: Lsn,
    /// LSN of the last intact record, if any.
    pub last_lsn: Option<Lsn>,
    /// LSN the next append gets.
    pub next_lsn: Lsn,
    /// Segment files in the log (from [`crate::Wal::open`]: after its first retention run).
    pub segments: usize,
    /// Files removed (interrupted segment creations; salvaged segments; from
    /// [`crate::Wal::open`], segments its first retention run removed).
    pub removed: Vec<PathBuf>,
    /// Under `SkipToLastGood`, the damage that was skipped.
    pub salvaged_from: Option<WalError>,
    /// Time taken, replay included.
    pub duration: Duration,
    /// The application's metadata slot found at open (`Wal::set_meta`), if ever set.
    pub meta: Option<Vec<u8>>,
    /// What recovery found wrong with the two copies of `META` and repaired: a copy
    /// damaged, cut, missing, or older than the other (both were written back from the
    /// newest whole one, and the values reported are its), or a log without `META` that
    /// got one. `None` when both copies were whole and equal.
    pub meta_repair: Option<String>,
}

impl RecoveryReport {
    pub(crate) fn from_outcome(o: &RecoveryOutcome) -> RecoveryReport {
        RecoveryReport {
            records: o.records,
            replayed: 0,
            bytes_cut: o.bytes_cut,
            first_lsn: o.start_lsn,
            checkpoint_lsn: o.start_lsn,
            last_lsn: o.last_lsn,
            next_lsn: o.next_lsn,
            segments: o.segments,
            removed: o.removed.clone(),
            salvaged_from: o.salvaged_from.clone(),
            duration: Duration::ZERO,
            meta: o.meta.clone(),
            meta_repair: o.meta_repair.clone(),
        }
    }
}

/// Replace the application's metadata slot (see `Wal::set_meta`): at most
/// `WalConfig::max_meta_bytes` bytes, else [`WalError::MetaTooLarge`] and nothing changes.
/// Answers once the new value is durable. Refused on a poisoned log
/// ([`WalError::Poisoned`]) and once a shutdown began ([`WalError::ShutDown`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), WalError>")]
pub struct SetMeta(pub Vec<u8>);
