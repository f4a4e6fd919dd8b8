//! `WalConfig`: every knob of actix-wal, its unit, its default, and its validation.

use crate::error::WalError;
pub use crate::format::compress::Compression;
use crate::health::Alert;
use crate::log::{LogOptions, RecoveryPolicy};
use crate::lsn::Lsn;
pub use crate::messages::Durability;
use crate::messages::{DurabilityReply, Replayed};
use crate::storage::{default_storage, SharedStorage};
use actix::Recipient;
use serde::{Deserialize, Serialize};

/// Largest `replay_chunk_records` a config may ask for ([`WalConfig::validate`] refuses more).
pub const MAX_REPLAY_CHUNK_RECORDS: usize = 1 << 20;

/// What an append does when the queue is at `max_queue_bytes` or `max_queue_entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WhenFull {
    /// The append waits (its future stays pending; the queue stops taking messages until
    /// a batch completes). Nothing is dropped. The default.
    #[default]
    Wait,
    /// The append fails at once with [`WalError::QueueFull`].
    Fail,
}

/// Which thread the log's `Queue` actor runs on.
///
/// The queue assigns every LSN and answers every durable reply, so anything that holds up
/// its thread holds up every commit of every actor: on a shared arbiter, a handler that
/// runs for 50 ms (a rehash of a big `HashMap`, a slow computation, a blocking call)
/// delays every reply by up to 50 ms, however fast the disk. Either keep such actors off
/// the queue's arbiter (an `Arbiter` or `SyncArbiter` of their own), or give the queue a
/// thread of its own. See docs/architecture.md, "Where actors live".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum QueueThread {
    /// The arbiter `Wal::open` is called on (usually the `System` arbiter), shared with
    /// the application actors that run there. A transaction actor on it reaches the queue
    /// without crossing threads: one committer waits about one fsync plus two thread
    /// wakes (queue to flusher and back), and closed-loop committers answered in one batch
    /// join the next one together. Keep that arbiter's handlers short. The default.
    #[default]
    Caller,
    /// An arbiter (a thread) of the log's own, started at open and joined at shutdown, or
    /// once the queue stops after every handle to it is gone. Application actors can block
    /// their own threads without stalling the log's other callers; every message to the
    /// queue and every reply crosses a thread. On the 2-vCPU development VM that cost one
    /// committer about 40 us per commit (p50 56 us against 16 us on tmpfs) and 1,024
    /// actors 12% of their rate, same run (docs/performance.md).
    Own,
}

/// Configuration of a [`crate::Wal`]. Build it with `WalConfig::default()` and struct
/// update syntax, or with the setters of the same names
/// (`WalConfig::default().segment_size_bytes(1 << 20).durability(Durability::Buffered)`);
/// [`WalConfig::validate`] checks it at open. The setter
/// [`segment_size_bytes`](WalConfig::segment_size_bytes) also fits the sizes that depend
/// on it; with struct update syntax, `validate` names every size that does not fit.
#[derive(Clone)]
pub struct WalConfig {
    /// A segment rolls over once the next frame would pass this size. Default 64 MiB, at
    /// most 1 GiB. Readers never hold a whole segment: a 4 MiB window of it, or one frame
    /// if larger.
    pub segment_size_bytes: u64,
    /// Largest record (or whole transaction: entries plus 4 bytes each). Default 1 MiB.
    pub max_record_bytes: u64,
    /// Preallocate segments with `fallocate`. Default true.
    pub preallocate: bool,
    /// What recovery does with damage at open. Default `TolerateTornTail`.
    pub recovery_policy: RecoveryPolicy,
    /// Default durability of appends that do not name one. Default `Durable`.
    pub durability: Durability,
    /// Longest a `Buffered` append waits before its batch is written and fsynced, in
    /// milliseconds. Default 10.
    pub flush_interval_ms: u64,
    /// Bound on the bytes of encoded frames queued or in flight. Default 64 MiB.
    pub max_queue_bytes: usize,
    /// Bound on the records queued or in flight. Default 262,144.
    pub max_queue_entries: usize,
    /// Largest write batch in bytes (one write + one fsync). Must fit in a segment.
    /// Default 4 MiB.
    pub max_batch_bytes: usize,
    /// What a full queue does to an append. Default `Wait`.
    pub when_full: WhenFull,
    /// Records per `Replayed` message during replay at open. Default 1,024, at most
    /// 1,048,576. A chunk also ends at `max_queue_bytes` of payload, and never splits a
    /// transaction.
    pub replay_chunk_records: usize,
    /// Where replay at open sends the log's intact records, if anywhere.
    pub replay_to: Option<Recipient<Replayed>>,
    /// A batch not completed by the flusher within this many milliseconds means the
    /// flusher is stalled: the log switches to degraded mode. Default 2,000.
    pub flusher_stall_timeout_ms: u64,
    /// First delay before restarting a dead flusher, in milliseconds; doubles after each
    /// failed restart. Default 10.
    pub restart_backoff_initial_ms: u64,
    /// Longest delay between restarts, in milliseconds. Default 1,000.
    pub restart_backoff_max_ms: u64,
    /// Flusher deaths tolerated within `restart_window_ms` before the supervisor gives up
    /// and leaves the log in degraded mode. Default 20.
    pub max_flusher_restarts: u32,
    /// The window for `max_flusher_restarts`, in milliseconds. Default 60,000.
    pub restart_window_ms: u64,
    /// Rewrites to a fresh segment after an fsync failure that may fail in a row before
    /// the log is poisoned. Default 1.
    pub max_sync_retries: u32,
    /// The file system the log lives on. Default: the real one.
    pub storage: SharedStorage,
    /// Whether the owner's group may read the log: files the log creates are 0640 and its
    /// directories 0750 (PostgreSQL's group access, for a backup or monitoring user in
    /// the group) instead of 0600 and 0700. Either mode is set whatever the umask.
    /// Default false: only the owner (and root) can read records and the Raft vote in
    /// `META`. It applies to what the log creates; an existing log directory that is
    /// open to more users is logged as a warning at open (docs/operations.md).
    pub group_read: bool,
    /// Where durability notifications go for appends and commits that ask for none of
    /// their own (no [`Append::notify`](crate::Append::notify)): once each is durable, or
    /// has failed, this recipient gets a `DurabilityReply` whose `token` is its LSN (a
    /// commit's first LSN). Buffered appends are notified too, when their batch is
    /// fsynced. Messages refused before they are queued (too large, queue full with
    /// `WhenFull::Fail`, shut down) get only their reply. Default none.
    pub notify_to: Option<Recipient<DurabilityReply>>,
    /// Where alerts go (they are also logged with `tracing`).
    pub alert_to: Option<Recipient<Alert>>,
    /// Queue depth (records) above which the `QueueDepth` alert fires. Default 10,000.
    pub alert_queue_depth: usize,
    /// Flush (write + fsync) duration in milliseconds above which the `FlushLatency` alert
    /// fires. Default 100.
    pub alert_flush_ms: u64,
    /// Bytes of segment files on disk above which the `WalSize` alert fires. Default 1 GiB.
    pub alert_wal_bytes: u64,
    /// The LSN a new log starts at; an existing log's first LSN comes from its `META`
    /// file. Default 1.
    pub first_lsn: u64,
    /// Bound on the application metadata slot (`Wal::set_meta`), in bytes. Default
    /// 64 KiB, at most 16 MiB.
    pub max_meta_bytes: u64,
    /// Replay at open starts at this LSN (or at the log's first LSN, whichever is later).
    /// Default `None`: from the log's first LSN.
    pub replay_from: Option<Lsn>,
    /// Which thread the queue runs on. Default [`QueueThread::Caller`].
    pub queue_thread: QueueThread,
    /// Whether frame payloads of at least a threshold are stored compressed (LZ4).
    /// Default [`Compression::None`]. With it on, every segment the log writes to carries
    /// the segment flag `COMPRESSED`, which builds before compression refuse
    /// (docs/format.md); a log reads compressed and plain frames alike whatever the
    /// setting. `max_record_bytes` bounds a payload before compression.
    pub compression: Compression,

    /// Retention by size (issue 22; PostgreSQL's `wal_keep_size`): keep at most this many
    /// bytes of segments wholly below the checkpoint (the newest ones), for readers and
    /// late cursors, instead of removing them at `truncate_before`. Segment granularity.
    /// Default 0: none (with `retention_secs` 0 too, the checkpoint removes what lies
    /// below it, as before cursors existed). See docs/operations.md, "Cursors and
    /// retention".
    pub retention_bytes: u64,
    /// Retention by age: keep segments wholly below the checkpoint that were written at
    /// most this many seconds ago (their modification time). With `retention_bytes` also
    /// set, a segment is kept only within both. Checked at every checkpoint, cursor
    /// change, and every `retention_check_interval_ms`. Default 0: none.
    pub retention_secs: u64,
    /// How often the queue runs retention on its own while `retention_secs` is set, in
    /// milliseconds (a checkpoint or a cursor change also runs it). Default 1,000.
    pub retention_check_interval_ms: u64,
    /// A cursor that holds segments the checkpoint and the retention policy would remove
    /// (it stands below what they keep), and whose lag is over this many bytes (the
    /// segments from the one holding its LSN to the newest), is invalidated instead
    /// (`CursorInvalidated` alert, then [`WalError::CursorInvalidated`] on its next use):
    /// PostgreSQL's `max_slot_wal_keep_size`. Checked at each retention run. Default
    /// 16 GiB; `u64::MAX` for no cap.
    pub max_cursor_lag_bytes: u64,
    /// Bound on the number of named cursors (`Wal::cursor`). Default 64, at most 1,024.
    pub max_cursors: usize,
    /// Bound on a new cursor name's length in bytes (an existing cursor is found whatever
    /// its name's length). Default 64, at most 255.
    pub max_cursor_name_bytes: usize,
}

impl std::fmt::Debug for WalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalConfig")
            .field("segment_size_bytes", &self.segment_size_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("preallocate", &self.preallocate)
            .field("recovery_policy", &self.recovery_policy)
            .field("durability", &self.durability)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_queue_entries", &self.max_queue_entries)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("when_full", &self.when_full)
            .field("replay_chunk_records", &self.replay_chunk_records)
            .field("replay_to", &self.replay_to.is_some())
            .field("flusher_stall_timeout_ms", &self.flusher_stall_timeout_ms)
            .field("max_flusher_restarts", &self.max_flusher_restarts)
            .field("max_sync_retries", &self.max_sync_retries)
            .field("alert_queue_depth", &self.alert_queue_depth)
            .field("alert_flush_ms", &self.alert_flush_ms)
            .field("alert_wal_bytes", &self.alert_wal_bytes)
            .field("first_lsn", &self.first_lsn)
            .field("max_meta_bytes", &self.max_meta_bytes)
            .field("replay_from", &self.replay_from)
            .field("queue_thread", &self.queue_thread)
            .field("group_read", &self.group_read)
            .field("compression", &self.compression)
            .field("retention_bytes", &self.retention_bytes)
            .field("retention_secs", &self.retention_secs)
            .field(
                "retention_check_interval_ms",
                &self.retention_check_interval_ms,
            )
            .field("max_cursor_lag_bytes", &self.max_cursor_lag_bytes)
            .field("max_cursors", &self.max_cursors)
            .field("max_cursor_name_bytes", &self.max_cursor_name_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for WalConfig {
    fn default() -> Self {
        let log = LogOptions::default();
        WalConfig {
            segment_size_bytes: log.segment_size_bytes,
            max_record_bytes: log.max_record_bytes,
            preallocate: log.preallocate,
            recovery_policy: log.recovery_policy,
            durability: Durability::Durable,
            flush_interval_ms: 10,
            max_queue_bytes: 64 * 1024 * 1024,
            max_queue_entries: 256 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
            when_full: WhenFull::Wait,
            replay_chunk_records: 1024,
            replay_to: None,
            flusher_stall_timeout_ms: 2_000,
            restart_backoff_initial_ms: 10,
            restart_backoff_max_ms: 1_000,
            max_flusher_restarts: 20,
            restart_window_ms: 60_000,
            max_sync_retries: 1,
            storage: default_storage(),
            group_read: false,
            notify_to: None,
            alert_to: None,
            alert_queue_depth: 10_000,
            alert_flush_ms: 100,
            alert_wal_bytes: 1024 * 1024 * 1024,
            first_lsn: 1,
            max_meta_bytes: crate::format::meta::DEFAULT_MAX_META_BYTES,
            replay_from: None,
            queue_thread: QueueThread::Caller,
            compression: Compression::None,

            retention_bytes: 0,
            retention_secs: 0,
            retention_check_interval_ms: 1_000,
            max_cursor_lag_bytes: DEFAULT_MAX_CURSOR_LAG_BYTES,
            max_cursors: 64,
            max_cursor_name_bytes: 64,
        }
    }
}

/// Default `max_cursor_lag_bytes`: 16 GiB.
pub const DEFAULT_MAX_CURSOR_LAG_BYTES: u64 = 16 << 30;

impl WalConfig {
    /// The on-disk log's part of the configuration.
    pub fn log_options(&self) -> LogOptions {
        LogOptions {
            segment_size_bytes: self.segment_size_bytes,
            max_record_bytes: self.max_record_bytes,
            preallocate: self.preallocate,
            recovery_policy: self.recovery_policy,
            storage: self.log_storage(),
        }
    }

    /// The storage the log is written through: `storage` creating files with the modes
    /// `group_read` asks for (see [`crate::Storage::with_group_read`]).
    pub fn log_storage(&self) -> SharedStorage {
        self.storage
            .with_group_read(self.group_read)
            .unwrap_or_else(|| self.storage.clone())
    }

    /// Header flags of the segments the log writes to: `COMPRESSED` when it compresses.
    pub(crate) fn segment_flags(&self) -> u32 {
        if self.compression.is_on() {
            crate::format::SEGMENT_FLAG_COMPRESSED
        } else {
            0
        }
    }

    /// The retention policy the log's directory applies (`log/retention.rs`).
    pub(crate) fn retention_policy(&self) -> crate::log::RetentionPolicy {
        crate::log::RetentionPolicy {
            retention_bytes: self.retention_bytes,
            retention_secs: self.retention_secs,
            max_cursor_lag_bytes: self.max_cursor_lag_bytes,
        }
    }

    /// Checks the cursor and retention fields.
    fn check_retention(&self) -> Result<(), WalError> {
        use crate::format::meta_cursors::{MAX_CURSORS_LIMIT, MAX_CURSOR_NAME_LIMIT};
        if self.max_cursors > MAX_CURSORS_LIMIT {
            return Err(WalError::InvalidConfig(format!(
                "max_cursors ({}) must be at most {MAX_CURSORS_LIMIT}",
                self.max_cursors
            )));
        }
        if self.max_cursor_name_bytes == 0 || self.max_cursor_name_bytes > MAX_CURSOR_NAME_LIMIT {
            return Err(WalError::InvalidConfig(format!(
                "max_cursor_name_bytes ({}) must be in 1..={MAX_CURSOR_NAME_LIMIT}",
                self.max_cursor_name_bytes
            )));
        }
        if self.retention_check_interval_ms == 0 {
            return Err(WalError::InvalidConfig(
                "retention_check_interval_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Checks every field and their relations.
    pub fn validate(&self) -> Result<(), WalError> {
        // Every size that does not fit the segment or the others, in one error.
        self.check_sizes()?;
        self.log_options().validate()?;
        let bad = |m: String| Err(WalError::InvalidConfig(m));
        if self.max_queue_entries == 0 || self.replay_chunk_records == 0 {
            return bad("max_queue_entries and replay_chunk_records must be at least 1".into());
        }
        let most = MAX_REPLAY_CHUNK_RECORDS;
        if self.replay_chunk_records > most {
            return bad(format!(
                "replay_chunk_records ({}) must be at most {most}",
                self.replay_chunk_records
            ));
        }
        if self.flush_interval_ms == 0 || self.flusher_stall_timeout_ms == 0 {
            return bad("flush_interval_ms and flusher_stall_timeout_ms must be at least 1".into());
        }
        if self.restart_backoff_initial_ms == 0
            || self.restart_backoff_max_ms < self.restart_backoff_initial_ms
        {
            return bad("restart backoff must satisfy 1 <= restart_backoff_initial_ms <= restart_backoff_max_ms".into());
        }
        if self.first_lsn == 0 || self.first_lsn > crate::format::MAX_LSN {
            return bad(format!(
                "first_lsn must be in 1..={}, got {}",
                crate::format::MAX_LSN,
                self.first_lsn
            ));
        }
        if let Err(reason) = self.compression.check(self.max_record_bytes) {
            return bad(reason);
        }

        self.check_retention()?;
        if self.max_meta_bytes > crate::format::meta::MAX_META_BYTES_LIMIT {
            return bad(format!(
                "max_meta_bytes ({}) must be at most {}",
                self.max_meta_bytes,
                crate::format::meta::MAX_META_BYTES_LIMIT
            ));
        }
        Ok(())
    }
}
