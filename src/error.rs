//! `WalError`: every failure a caller of actix-wal can see, as variants it can act on.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Every error actix-wal returns.
///
/// The enum is `Clone` because one failure (a poisoned log, a failed batch) is answered to
/// every waiter of that batch; I/O sources are therefore shared behind an `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An operating-system I/O error, with the operation and the path it touched.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// What actix-wal was doing (`"write"`, `"fdatasync"`, `"open"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: Arc<io::Error>,
    },
    /// The disk (or quota) is full: `ENOSPC` or `EDQUOT`. Free space and retry; the log
    /// was cut back to its last whole frame and stays readable.
    #[error("disk full during {op} on {}: {source}", path.display())]
    DiskFull {
        /// What actix-wal was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: Arc<io::Error>,
    },
    /// Access refused: `EACCES`, `EPERM` or `EROFS`.
    #[error("permission denied during {op} on {}: {source}", path.display())]
    PermissionDenied {
        /// What actix-wal was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: Arc<io::Error>,
    },
    /// A frame or segment header failed its checks somewhere other than a torn tail.
    #[error("corruption in {} at offset {offset}: {reason}", segment.display())]
    Corruption {
        /// The segment file holding the damage.
        segment: PathBuf,
        /// Byte offset of the damaged frame (or header) within that segment.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A file in the log directory is not an actix-wal segment (wrong magic).
    #[error("{} is not an actix-wal segment (bad magic)", path.display())]
    NotASegment {
        /// The offending file.
        path: PathBuf,
    },
    /// A segment was written by a newer (or unknown) format version.
    #[error("{} has segment format version {found}; this build reads version {supported}", path.display())]
    UnsupportedVersion {
        /// The offending file.
        path: PathBuf,
        /// Version found in its header.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },
    /// A segment header has flag bits this build does not know: it was written by a newer
    /// format, and reading it by this build's rules could misread it.
    #[error("{} has segment header flags {flags:#x}; this build knows only {known:#x} (written by a newer format)", path.display())]
    UnknownSegmentFlags {
        /// The offending file.
        path: PathBuf,
        /// The flags found in its header.
        flags: u32,
        /// The flags this build knows.
        known: u32,
    },
    /// A path named like a log file (a segment) is not a regular file: a FIFO, a socket, a
    /// device, a directory or a symbolic link. actix-wal opens only regular files (a FIFO
    /// would block the opener forever; a symbolic link is not followed), and refuses
    /// without reading or changing it.
    #[error("{} is a {kind}, not a regular file", path.display())]
    NotAFile {
        /// The offending path.
        path: PathBuf,
        /// What it is instead.
        kind: crate::storage::FileKind,
    },
    /// The directory holds no log (no segment files) where one was expected.
    #[error("no actix-wal log in {}", path.display())]
    NoLog {
        /// The directory looked at.
        path: PathBuf,
    },
    /// The log's path exists but is not a directory, or lies under a file (`file/log`).
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path that is not a directory: the one given, or the ancestor of it that is a
        /// file.
        path: PathBuf,
    },
    /// Another handle (in this or another process) holds the log's lock file. Another
    /// process's lock is reported after 250 ms of trying again. A log of this very process
    /// is waited for up to 2 s first (`Wal::open`, `Wal::open_standalone`, `LogWriter`):
    /// its last handle may have been dropped without `shutdown`, its actors still
    /// stopping; so `Locked` for a log this process still uses comes after 2 s.
    #[error("log {} is already open (lock file held by another opener)", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// A file or directory of the open log was removed, renamed or replaced behind its
    /// back: the active segment lost its last name (`fstat` link count 0), or the log
    /// directory's path no longer names the directory that was locked. Writes into it
    /// would be lost (or land where no reopen looks), so the batch that found it was not
    /// acknowledged and the log is stopped: every later append, `flush` and `shutdown`
    /// returns this error. Records acknowledged before were in that file and went with it.
    /// Reopen the log to run recovery.
    #[error("{} was removed, renamed or replaced while the log was open (found at {op}); nothing written since was acknowledged; reopen the log to run recovery", path.display())]
    FileRemoved {
        /// The step that found it (`"fdatasync"`, `"create segment"`, `"health check"`,
        /// `"shutdown"`).
        op: &'static str,
        /// The segment file or log directory that is gone.
        path: PathBuf,
    },
    /// A record or transaction is larger than `max_record_bytes`.
    #[error("record of {size_bytes} bytes exceeds max_record_bytes ({max_bytes})")]
    RecordTooLarge {
        /// Encoded size of the refused record.
        size_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// A transaction has no entries or more entries than a frame can hold.
    #[error("invalid transaction: {reason}")]
    InvalidTransaction {
        /// Why it was refused.
        reason: String,
    },
    /// The queue is at `max_queue_bytes` or `max_queue_entries` and the config asks to fail
    /// rather than wait.
    #[error("queue full: {entries} entries, {bytes} bytes queued")]
    QueueFull {
        /// Entries queued when the append was refused.
        entries: usize,
        /// Bytes queued when the append was refused.
        bytes: usize,
    },
    /// The log has been shut down (or its actors have stopped); nothing more is accepted.
    /// Also what a stopped queue's mailbox becomes (`From<MailboxError>`), so a message
    /// sent to [`crate::Wal::queue`] flattens with `queue.send(msg).await??`.
    ///
    /// To a call that [`crate::Wal::shutdown`] refused, it means not written. To a call
    /// already in flight when the actors stopped without `shutdown` (their `System`
    /// stopped, the process going down), the outcome is not known, as after a crash: its
    /// batch may have been written and fsynced before its answer was lost. Read the
    /// record back after the next open before taking it for not written.
    #[error("the log is shut down")]
    ShutDown,
    /// A message sent with a deadline (`queue.send(msg).timeout(d)`) got no reply in
    /// time (`MailboxError::Timeout`). The message may still be handled.
    #[error("no reply from the log in time")]
    Timeout,
    /// [`Wal::open`](crate::Wal::open) was called on a thread with no actix `System` (plain
    /// tokio, another runtime, or none): its actors need one. Open the log with
    /// [`Wal::open_standalone`](crate::Wal::open_standalone) (any async runtime) or
    /// [`Wal::open_blocking`](crate::Wal::open_blocking) (a plain thread), which give it a
    /// `System` thread of its own, or run the caller inside `actix::System` /
    /// `#[actix::main]`.
    #[error("Wal::open needs an actix System on this thread (actix::System, #[actix::main]); from plain tokio or another runtime use Wal::open_standalone, from a plain thread Wal::open_blocking")]
    NoActixSystem,
    /// The log stopped on a failure it cannot undo in place: an fsync failed and
    /// rewriting the batch to a fresh segment failed too `max_sync_retries` times, a
    /// failed step could not be cut back, or a rewind or reset failed midway. Nothing more
    /// is acknowledged, and every call that would change the log is refused with this
    /// error and changes nothing, until the log is reopened (recovery completes what was
    /// left midway).
    ///
    /// To the call whose own failure poisoned the log (and to the appends of the batch that
    /// failed), the outcome is not known, as after a crash: what it wrote may have reached
    /// the disk before the step that failed (a `META` renamed in place before its copy's
    /// `fsync` failed, a batch written before its `fdatasync` failed). After the reopen the
    /// log holds the state before the call or the state after it, never a mix: read it
    /// back ([`crate::Wal::meta`], [`crate::Wal::cursors`], the record) before taking the
    /// call for not done.
    #[error("log poisoned: {reason}; reopen the log to run recovery")]
    Poisoned {
        /// The failure that poisoned the log.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A typed payload could not be encoded, would not decode again (refused before
    /// anything was queued), or could not be decoded. See [`crate::format::codec`].
    #[error("codec error ({step}): {source}")]
    Codec {
        /// Which step failed.
        step: CodecStep,
        /// The codec's own error (bincode's, or [`crate::format::codec::TrailingBytes`]).
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// `AppendBatch` with no records.
    #[error("an append batch needs at least one record")]
    EmptyBatch,
    /// `AppendBatch` larger than the queue can hold (`max_queue_bytes` of frames, each
    /// record's payload plus its 24-byte frame header, or `max_queue_entries` records):
    /// refused whole, nothing queued. Split it, or raise the bounds.
    #[error("append batch of {records} records, {bytes} bytes of frames, exceeds the queue bound ({max_records} records, {max_bytes} bytes)")]
    BatchTooLarge {
        /// Records in the refused batch.
        records: usize,
        /// Its bytes of frames.
        bytes: usize,
        /// `max_queue_entries`.
        max_records: usize,
        /// `max_queue_bytes`.
        max_bytes: usize,
    },
    /// `WaitDurable` named an LSN the log has not given out: at or past the next LSN (it
    /// would never become durable by itself), LSN 0, or below where the log started as
    /// far as this process knows (its first LSN at open, or the LSN of the last `reset`
    /// past the next LSN: it skipped LSNs, and the log keeps no record of which LSNs
    /// below that it gave out). An LSN is a record's only once its append succeeded (a
    /// failed write gives its LSNs out again).
    #[error("LSN {lsn} was never assigned (the next append gets {next_lsn})")]
    LsnNotAssigned {
        /// The LSN asked about.
        lsn: crate::lsn::Lsn,
        /// The LSN the next append gets.
        next_lsn: crate::lsn::Lsn,
    },
    /// Application metadata (`set_meta`) larger than `max_meta_bytes`: refused, and the
    /// metadata file is left as it was.
    #[error("metadata of {size_bytes} bytes exceeds max_meta_bytes ({max_bytes})")]
    MetaTooLarge {
        /// Size of the refused value.
        size_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// A metadata value whose fields conflict (an intent whose cut lies below the first
    /// LSN, a reset intent with another first LSN, ...): no protocol writes it, and
    /// recovery would have to refuse it. Refused before anything is written; the file
    /// is left as it was. See `LogMeta::conflict`.
    #[error("metadata value refused: {reason}")]
    MetaConflict {
        /// What conflicts.
        reason: String,
    },
    /// A read of an LSN the log does not hold: below its first LSN, removed by a
    /// checkpoint (also when the removal raced the read), or not durable (never written,
    /// or not yet fsynced).
    #[error("LSN {lsn} is not in the log (below its first LSN, truncated away, or not durable)")]
    NotFound {
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
    },
    /// A range read refused before reading: a reversed range, or a `max_bytes` above
    /// the most one read may hold. Nothing was read.
    #[error("invalid read range: {reason}")]
    InvalidReadRange {
        /// What is wrong with it.
        reason: String,
    },
    /// `truncate_after(lsn)` below the log's first LSN (the checkpoint): the records it
    /// would keep are gone already. Refused; nothing changed.
    #[error("truncate_after({lsn}) refused: LSN {lsn} is below the log's first LSN {first_lsn} minus one")]
    BelowFirstLsn {
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
        /// The log's first LSN.
        first_lsn: crate::lsn::Lsn,
    },
    /// `truncate_after(lsn)` would cut a transaction in two (`lsn + 1` is not the first
    /// record of its frame): transactions are all or nothing. Refused; nothing changed.
    #[error("truncate_after({lsn}) refused: LSN {} is inside a transaction", lsn.0.saturating_add(1))]
    SplitsTransaction {
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
    },
    /// `truncate_after(lsn)` would cut inside an append batch (`AppendBatch`, LSNs
    /// `first_lsn..=last_lsn`) not yet answered: the batch could then be answered neither
    /// success (its records above `lsn` are gone) nor `TruncatedAway` (those up to `lsn`
    /// stay). Refused; nothing changed. Cut at `first_lsn - 1` or at `last_lsn` or
    /// beyond, or again once the batch is answered (a cut inside an answered batch removes
    /// records like any acknowledged ones).
    #[error("truncate_after({lsn}) refused: it would cut inside the append batch {first_lsn}..={last_lsn}, not yet answered")]
    SplitsBatch {
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
        /// The batch's first LSN.
        first_lsn: crate::lsn::Lsn,
        /// The batch's last LSN.
        last_lsn: crate::lsn::Lsn,
    },
    /// `reset(lsn)` would give out again LSNs the log gave out already (`lsn` is below
    /// the next LSN, also when no record remains: a checkpoint or a rewind removed them,
    /// and an application may still hold them). Refused; nothing changed.
    #[error("reset({lsn}) refused: the log gave out LSNs up to {}; the next LSN may not go below {next_lsn}", next_lsn.0.saturating_sub(1))]
    WouldReuseLsns {
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
        /// The log's next LSN.
        next_lsn: crate::lsn::Lsn,
    },
    /// An LSN outside `1..=2^63-1` (`format::MAX_LSN`) where the log would continue at it (`reset`).
    #[error("LSN {lsn} is out of range (1..=2^63-1)")]
    LsnOutOfRange {
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
    },
    /// An append (or a wait for one) whose record was removed by `truncate_after` or
    /// `reset` before it was durable and answered: it is not in the log, and its LSN
    /// may be given to a later append.
    #[error("LSN {lsn} was removed by truncate_after or reset before it was acknowledged")]
    TruncatedAway {
        /// The LSN the caller would have been answered.
        lsn: crate::lsn::Lsn,
    },
    /// A subscription's next LSN is below the log's first LSN: asked for (`from`) below
    /// it, or checkpointed away (`truncate_before`) before the subscriber read it.
    #[error(
        "subscription at LSN {next}: below the log's first LSN {first_lsn} (checkpointed away)"
    )]
    SubscriberBehind {
        /// The LSN the subscriber would have read next.
        next: crate::lsn::Lsn,
        /// The log's first LSN.
        first_lsn: crate::lsn::Lsn,
    },
    /// The log was cut back (`truncate_after`, `reset`) at `cut`, below where this
    /// subscription stood: records it had yielded are no longer in the log, or (a reset
    /// past where it waited) the next record it would yield is not the one it waited for.
    /// Subscribe again from `cut` (or from where the application's state is still right).
    #[error("subscription: the log was cut back at LSN {cut}, below where the subscription stood")]
    SubscriberRewound {
        /// The first LSN removed.
        cut: crate::lsn::Lsn,
    },
    /// No cursor of that name (never created, or removed).
    #[error("no cursor named {name:?}")]
    CursorNotFound {
        /// The name asked for (its first 255 bytes and `...` if it was longer).
        name: String,
    },
    /// The cursor was invalidated: it would have held more than
    /// `WalConfig::max_cursor_lag_bytes` of segments, so the log stopped keeping its
    /// records (the `CursorInvalidated` alert fired). Its records from `lsn` on may be
    /// gone: remove it ([`crate::Cursor::remove`]), resynchronise the consumer from
    /// another source, and create it again.
    #[error(
        "cursor {name:?} was invalidated at LSN {lsn}: it held {lag_bytes} bytes of segments, over max_cursor_lag_bytes"
    )]
    CursorInvalidated {
        /// Its name.
        name: String,
        /// Where it stood.
        lsn: crate::lsn::Lsn,
        /// The bytes of segments it held when it was invalidated (0 when found so at open).
        lag_bytes: u64,
    },
    /// `Cursor::advance` to an LSN below where the cursor stands: a cursor never moves
    /// back (records below it may already be gone). Refused; nothing changed.
    #[error("cursor {name:?} at LSN {current} cannot move back to {lsn}")]
    CursorBackwards {
        /// Its name.
        name: String,
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
        /// Where it stands.
        current: crate::lsn::Lsn,
    },
    /// `Cursor::advance` past the durable end: the consumer cannot have read records that
    /// are not durable. Refused; nothing changed.
    #[error("cursor {name:?} cannot move to LSN {lsn}, past the durable end {durable_end}")]
    CursorPastEnd {
        /// Its name.
        name: String,
        /// The LSN asked for.
        lsn: crate::lsn::Lsn,
        /// One past the last durable record.
        durable_end: crate::lsn::Lsn,
    },
    /// A new cursor would be one more than `WalConfig::max_cursors`. Refused.
    #[error("the log holds {max} cursors, its max_cursors: remove one first")]
    TooManyCursors {
        /// The bound.
        max: usize,
    },
    /// A cursor name that is empty, longer than `WalConfig::max_cursor_name_bytes`, or
    /// holds a byte other than an ASCII letter, digit, `.`, `_` or `-`. Refused.
    #[error("invalid cursor name {name:?}: {reason}")]
    InvalidCursorName {
        /// The name given: its first 255 bytes and `...` if it was longer (the reason
        /// gives its length).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl WalError {
    /// Wraps an I/O error, sorting out disk-full and permission errors so that callers can
    /// match on them.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> WalError {
        let path = path.into();
        if let Some(kind) = crate::storage::not_a_file_kind(&source) {
            return WalError::NotAFile { path, kind };
        }
        let source = Arc::new(source);
        match source.raw_os_error() {
            Some(code)
                if code == rustix::io::Errno::NOSPC.raw_os_error()
                    || code == rustix::io::Errno::DQUOT.raw_os_error() =>
            {
                WalError::DiskFull { op, path, source }
            }
            Some(code)
                if code == rustix::io::Errno::ACCESS.raw_os_error()
                    || code == rustix::io::Errno::PERM.raw_os_error()
                    || code == rustix::io::Errno::ROFS.raw_os_error() =>
            {
                WalError::PermissionDenied { op, path, source }
            }
            _ if source.kind() == io::ErrorKind::PermissionDenied => {
                WalError::PermissionDenied { op, path, source }
            }
            _ => WalError::Io { op, path, source },
        }
    }

    /// True for errors that say the data on disk is damaged (including a file named like a
    /// segment that is not one, or is not a regular file).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            WalError::Corruption { .. }
                | WalError::NotASegment { .. }
                | WalError::UnsupportedVersion { .. }
                | WalError::UnknownSegmentFlags { .. }
                | WalError::NotAFile { .. }
        )
    }
}

/// Shorthand for results whose error is [`WalError`].
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// Which step of the codec failed, in a [`WalError::Codec`] (see [`crate::format::codec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecStep {
    /// The value could not be encoded (serde or bincode refused it, e.g. a map or
    /// sequence of unknown length, which `#[serde(flatten)]` produces).
    Encode,
    /// The value encoded, but its bytes do not decode as the same type (a serde shape
    /// bincode cannot read back, e.g. an internally tagged or untagged enum). Nothing was
    /// appended.
    WouldNotDecode,
    /// Bytes read from the log did not decode as the type asked for.
    Decode,
}

impl std::fmt::Display for CodecStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodecStep::Encode => "encode",
            CodecStep::WouldNotDecode => "encoded value would not decode",
            CodecStep::Decode => "decode",
        })
    }
}

impl From<actix::MailboxError> for WalError {
    /// A closed mailbox is a stopped log ([`WalError::ShutDown`]); a timed-out send is
    /// [`WalError::Timeout`].
    fn from(e: actix::MailboxError) -> WalError {
        match e {
            actix::MailboxError::Closed => WalError::ShutDown,
            actix::MailboxError::Timeout => WalError::Timeout,
        }
    }
}
