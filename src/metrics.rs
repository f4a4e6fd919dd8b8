//! Metrics through the `metrics` crate facade (the application picks the exporter), named
//! by Prometheus conventions with units. Handles are registered once when the queue
//! starts, so install the recorder before `Wal::open`; updates are then atomic operations,
//! made per batch, except the commit-latency histogram (one sample per durable append) and
//! the enqueue-wait histogram (one sample per message).

use crate::stats::WalMode;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// Records queued or in flight (gauge).
pub const QUEUE_DEPTH: &str = "actix_wal_queue_depth";
/// Bytes of frames queued or in flight (gauge).
pub const QUEUE_BYTES: &str = "actix_wal_queue_bytes";
/// Batches written and fsynced (counter).
pub const FLUSHES: &str = "actix_wal_flushes_total";
/// Records written and fsynced (counter).
pub const ENTRIES_WRITTEN: &str = "actix_wal_entries_written_total";
/// Bytes of frames written and fsynced (counter).
pub const BYTES_WRITTEN: &str = "actix_wal_bytes_written_total";
/// Time to write and fsync one batch (histogram, seconds).
pub const FLUSH_DURATION: &str = "actix_wal_flush_duration_seconds";
/// Records per batch (histogram).
pub const BATCH_ENTRIES: &str = "actix_wal_batch_entries";
/// Time from a durable append's arrival at the queue to its durability reply
/// (histogram, seconds).
pub const COMMIT_DURATION: &str = "actix_wal_commit_duration_seconds";
/// Time from when an `Append`, `Commit` or `AppendBatch` was built (its constructor) to
/// when the queue handles it: the wait before the queue's thread gets to it (histogram,
/// seconds). One sample per message.
pub const ENQUEUE_WAIT: &str = "actix_wal_enqueue_wait_seconds";
/// 1 while a healthy flusher is attached, 0 while degraded (gauge).
pub const FLUSHER_HEALTHY: &str = "actix_wal_flusher_healthy";
/// Write mode: 0 async, 1 sync, 2 degraded (gauge).
pub const MODE: &str = "actix_wal_mode";
/// Flusher restarts (counter).
pub const FLUSHER_RESTARTS: &str = "actix_wal_flusher_restarts_total";
/// Bytes of segment files on disk (gauge).
pub const DISK_BYTES: &str = "actix_wal_disk_bytes";
/// fsync failures absorbed by a rewrite (counter).
pub const SYNC_FAILURES: &str = "actix_wal_sync_failures_total";
/// Batches whose write failed (counter).
pub const WRITE_FAILURES: &str = "actix_wal_write_failures_total";
/// 1 once the log is poisoned (gauge).
pub const POISONED: &str = "actix_wal_poisoned";
/// Named cursors, valid and invalidated (gauge).
pub const CURSORS: &str = "actix_wal_cursors";
/// The largest lag of a valid cursor, in bytes of segments it holds (gauge).
pub const CURSOR_MAX_LAG_BYTES: &str = "actix_wal_cursor_max_lag_bytes";
/// Cursors invalidated for holding more than `max_cursor_lag_bytes` (counter).
pub const CURSORS_INVALIDATED: &str = "actix_wal_cursors_invalidated_total";
/// Bytes of segments wholly below the checkpoint, kept by retention or a cursor (gauge).
pub const RETAINED_BYTES: &str = "actix_wal_retained_bytes";
/// Each cursor's lag in bytes of segments (gauge, label `cursor`: its name). A removed
/// cursor's series stays at its last value until the exporter forgets it.
pub const CURSOR_LAG_BYTES: &str = "actix_wal_cursor_lag_bytes";
/// Each cursor's lag in durable records not passed yet (gauge, label `cursor`).
pub const CURSOR_LAG_RECORDS: &str = "actix_wal_cursor_lag_records";

/// The metrics with a label per cursor: present once a cursor exists (not in [`ALL`]).
pub const PER_CURSOR: [&str; 2] = [CURSOR_LAG_BYTES, CURSOR_LAG_RECORDS];

/// Sets the per-cursor gauges of the cursor `name`.
pub(crate) fn cursor_lag(name: &str, lag_bytes: u64, lag_records: u64) {
    gauge!(CURSOR_LAG_BYTES, "cursor" => name.to_string()).set(lag_bytes as f64);
    gauge!(CURSOR_LAG_RECORDS, "cursor" => name.to_string()).set(lag_records as f64);
}

/// Every metric name without a label, for documentation and tests.
pub const ALL: [&str; 20] = [
    QUEUE_DEPTH,
    QUEUE_BYTES,
    FLUSHES,
    ENTRIES_WRITTEN,
    BYTES_WRITTEN,
    FLUSH_DURATION,
    BATCH_ENTRIES,
    COMMIT_DURATION,
    ENQUEUE_WAIT,
    FLUSHER_HEALTHY,
    MODE,
    FLUSHER_RESTARTS,
    DISK_BYTES,
    SYNC_FAILURES,
    WRITE_FAILURES,
    POISONED,
    CURSORS,
    CURSOR_MAX_LAG_BYTES,
    CURSORS_INVALIDATED,
    RETAINED_BYTES,
];

/// Registered metric handles.
#[derive(Clone)]
pub(crate) struct Metrics {
    /// [`QUEUE_DEPTH`]
    pub queue_depth: Gauge,
    /// [`QUEUE_BYTES`]
    pub queue_bytes: Gauge,
    /// [`FLUSHES`]
    pub flushes: Counter,
    /// [`ENTRIES_WRITTEN`]
    pub entries_written: Counter,
    /// [`BYTES_WRITTEN`]
    pub bytes_written: Counter,
    /// [`FLUSH_DURATION`]
    pub flush_duration: Histogram,
    /// [`BATCH_ENTRIES`]
    pub batch_entries: Histogram,
    /// [`COMMIT_DURATION`]
    pub commit_duration: Histogram,
    /// [`ENQUEUE_WAIT`]
    pub enqueue_wait: Histogram,
    /// [`FLUSHER_HEALTHY`]
    pub flusher_healthy: Gauge,
    /// [`MODE`]
    pub mode: Gauge,
    /// [`FLUSHER_RESTARTS`]
    pub flusher_restarts: Counter,
    /// [`DISK_BYTES`]
    pub disk_bytes: Gauge,
    /// [`SYNC_FAILURES`]
    pub sync_failures: Counter,
    /// [`WRITE_FAILURES`]
    pub write_failures: Counter,
    /// [`POISONED`]
    pub poisoned: Gauge,
    /// [`CURSORS`]
    pub cursors: Gauge,
    /// [`CURSOR_MAX_LAG_BYTES`]
    pub cursor_max_lag_bytes: Gauge,
    /// [`CURSORS_INVALIDATED`]
    pub cursors_invalidated: Counter,
    /// [`RETAINED_BYTES`]
    pub retained_bytes: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers the handles with the installed recorder (a no-op recorder if none).
    pub fn register() -> Metrics {
        let m = Metrics {
            queue_depth: gauge!(QUEUE_DEPTH),
            queue_bytes: gauge!(QUEUE_BYTES),
            flushes: counter!(FLUSHES),
            entries_written: counter!(ENTRIES_WRITTEN),
            bytes_written: counter!(BYTES_WRITTEN),
            flush_duration: histogram!(FLUSH_DURATION),
            batch_entries: histogram!(BATCH_ENTRIES),
            commit_duration: histogram!(COMMIT_DURATION),
            enqueue_wait: histogram!(ENQUEUE_WAIT),
            flusher_healthy: gauge!(FLUSHER_HEALTHY),
            mode: gauge!(MODE),
            flusher_restarts: counter!(FLUSHER_RESTARTS),
            disk_bytes: gauge!(DISK_BYTES),
            sync_failures: counter!(SYNC_FAILURES),
            write_failures: counter!(WRITE_FAILURES),
            poisoned: gauge!(POISONED),
            cursors: gauge!(CURSORS),
            cursor_max_lag_bytes: gauge!(CURSOR_MAX_LAG_BYTES),
            cursors_invalidated: counter!(CURSORS_INVALIDATED),
            retained_bytes: gauge!(RETAINED_BYTES),
        };
        m.flusher_healthy.set(1.0);
        m.mode.set(mode_value(WalMode::Async));
        m.poisoned.set(0.0);
        m.cursors.set(0.0);
        m.cursor_max_lag_bytes.set(0.0);
        m.retained_bytes.set(0.0);
        // Counters appear in the exposition from the start, at 0.
        for c in [
            &m.flushes,
            &m.entries_written,
            &m.bytes_written,
            &m.flusher_restarts,
            &m.sync_failures,
            &m.write_failures,
            &m.cursors_invalidated,
        ] {
            c.increment(0);
        }
        m
    }
}

/// The value of the [`MODE`] gauge for a mode.
pub fn mode_value(mode: WalMode) -> f64 {
    match mode {
        WalMode::Async => 0.0,
        WalMode::Sync => 1.0,
        WalMode::Degraded => 2.0,
    }
}
