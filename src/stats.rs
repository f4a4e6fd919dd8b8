//! `WalStats` and `WalMode`: what the log reports about itself; `CommitMode`, the modes a
//! caller may ask for.

use crate::lsn::Lsn;
use serde::{Deserialize, Serialize};

/// How batches are being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WalMode {
    /// Group commit: the flusher thread writes and fsyncs batches while the next gathers.
    #[default]
    Async,
    /// Synchronous: each message is written and fsynced before the next is taken.
    Sync,
    /// The flusher is dead: the queue writes and fsyncs batches itself on a blocking
    /// thread until the supervisor brings a flusher back. Set by the log, never by a caller
    /// ([`CommitMode`] has no such value).
    Degraded,
}

/// The write modes a caller can ask for with [`SetMode`](crate::SetMode): [`WalMode`]
/// without `Degraded`, which the log enters and leaves by itself, so a request for it
/// cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CommitMode {
    /// Group commit: the flusher thread writes and fsyncs batches while the next gathers.
    #[default]
    Async,
    /// Synchronous: each message is written and fsynced before the next is taken.
    Sync,
}

impl From<CommitMode> for WalMode {
    fn from(mode: CommitMode) -> WalMode {
        match mode {
            CommitMode::Async => WalMode::Async,
            CommitMode::Sync => WalMode::Sync,
        }
    }
}

impl PartialEq<WalMode> for CommitMode {
    fn eq(&self, other: &WalMode) -> bool {
        WalMode::from(*self) == *other
    }
}

impl PartialEq<CommitMode> for WalMode {
    fn eq(&self, other: &CommitMode) -> bool {
        *self == WalMode::from(*other)
    }
}

/// Figures of a running log, as returned by `GetStats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalStats {
    /// The mode batches are written in now.
    pub mode: WalMode,
    /// The mode the caller asked for (`Async` or `Sync`); `mode` differs while degraded.
    pub requested_mode: WalMode,
    /// LSN the next record gets.
    pub next_lsn: Lsn,
    /// Highest LSN known durable (0 if none).
    pub durable_lsn: Lsn,
    /// Records queued or in flight.
    pub queue_depth: usize,
    /// Bytes of frames queued or in flight.
    pub queue_bytes: usize,
    /// Highest `queue_bytes` seen.
    pub peak_queue_bytes: usize,
    /// Appends waiting for room (0 or 1: a full queue stops taking messages).
    pub blocked_appends: usize,
    /// Batches written and fsynced.
    pub flushes: u64,
    /// Records written and fsynced.
    pub entries_written: u64,
    /// Bytes of frames written and fsynced.
    pub bytes_written: u64,
    /// Times a flusher was restarted after dying.
    pub flusher_restarts: u64,
    /// Flusher deaths seen (panic, stall, thread gone).
    pub flusher_deaths: u64,
    /// Whether a flusher thread is attached and healthy.
    pub flusher_healthy: bool,
    /// fsync failures absorbed by rewriting to a fresh segment.
    pub sync_failures: u64,
    /// Batches whose write failed (disk full, permission, I/O): their callers got errors.
    pub write_failures: u64,
    /// Whether the log is poisoned (reopen to recover).
    pub poisoned: bool,
    /// Duration of the last flush (write + fsync), in microseconds.
    pub last_flush_us: u64,
    /// Sum of every flush's duration (write + fsync), in microseconds.
    pub flush_us_total: u64,
    /// Batches written and fsynced that started a new segment (rollovers).
    pub rollover_flushes: u64,
    /// Sum of the durations of those batches' flushes, in microseconds: beside
    /// `flush_us_total` it tells what a rollover adds to a batch.
    pub rollover_flush_us_total: u64,
    /// The log's first LSN, persisted in its `META` file: the last checkpoint
    /// (`truncate_before`), or where the log started, or lower while a cursor or the
    /// retention policy keeps records below the checkpoint. No record below it is read.
    pub first_lsn: Lsn,
    /// The checkpoint (`truncate_before`'s highest LSN; the first LSN if higher): replay
    /// at open starts here. Equal to `first_lsn` without cursors or retention.
    pub checkpoint_lsn: Lsn,
}
