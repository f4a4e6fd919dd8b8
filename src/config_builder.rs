//! Builder-style setters for [`WalConfig`], and the fitting of the size settings around
//! `segment_size_bytes`: a segment holds its header and then frames; a batch holds at
//! least one frame of `max_record_bytes` and fits in a segment; the queue holds at least a
//! batch. [`WalConfig::validate`] names every size that does not fit, each with a value
//! that does, in one error; [`WalConfig::segment_size_bytes`] fits them by itself.

use crate::config::{Compression, QueueThread, WalConfig, WhenFull};
use crate::error::WalError;
use crate::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::health::Alert;
use crate::log::RecoveryPolicy;
use crate::messages::{Durability, DurabilityReply, Replayed};
use crate::storage::SharedStorage;
use actix::Recipient;

const FRAME: u64 = FRAME_HEADER_BYTES as u64;
const HEADER: u64 = SEGMENT_HEADER_BYTES as u64;

/// The size settings, as set or as fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    max_record_bytes: u64,
    max_batch_bytes: u64,
    max_queue_bytes: u64,
}

impl WalConfig {
    fn sizes(&self) -> Sizes {
        Sizes {
            max_record_bytes: self.max_record_bytes,
            max_batch_bytes: self.max_batch_bytes as u64,
            max_queue_bytes: self.max_queue_bytes as u64,
        }
    }

    /// The sizes nearest to the ones set that fit `segment_size_bytes`: `max_record_bytes`
    /// lowered to fit a segment, `max_batch_bytes` between one such frame and a segment's
    /// room, `max_queue_bytes` at least a batch. `None` if a segment holds no frame at all.
    fn fitted_sizes(&self) -> Option<Sizes> {
        let room = self.segment_size_bytes.checked_sub(HEADER)?;
        let record_room = room.checked_sub(FRAME).filter(|r| *r > 0)?;
        let record = self.max_record_bytes.min(record_room);
        let batch = (self.max_batch_bytes as u64).clamp(record + FRAME, room);
        let queue = (self.max_queue_bytes as u64).max(batch);
        Some(Sizes {
            max_record_bytes: record,
            max_batch_bytes: batch,
            max_queue_bytes: queue,
        })
    }

    /// Checks the size settings against `segment_size_bytes` and each other, naming every
    /// one that does not fit, with a value that does, in one error.
    pub(crate) fn check_sizes(&self) -> Result<(), WalError> {
        let Some(fit) = self.fitted_sizes() else {
            return Err(WalError::InvalidConfig(format!(
                "segment_size_bytes ({}) must hold a {HEADER}-byte segment header and one frame \
                 ({FRAME}-byte header and at least 1 byte): at least {}",
                self.segment_size_bytes,
                HEADER + FRAME + 1
            )));
        };
        let set = self.sizes();
        if fit == set {
            return Ok(());
        }
        let mut changes = Vec::new();
        for (name, now, fits) in [
            (
                "max_record_bytes",
                set.max_record_bytes,
                fit.max_record_bytes,
            ),
            ("max_batch_bytes", set.max_batch_bytes, fit.max_batch_bytes),
            ("max_queue_bytes", set.max_queue_bytes, fit.max_queue_bytes),
        ] {
            if now != fits {
                changes.push(format!("{name} = {fits} (is {now})"));
            }
        }
        Err(WalError::InvalidConfig(format!(
            "sizes do not fit together (segment_size_bytes = {} leaves {} bytes after its header; \
             a batch holds at least one frame of max_record_bytes plus its {FRAME}-byte header, \
             and the queue at least one batch): set {}; WalConfig::segment_size_bytes() fits \
             them by itself",
            self.segment_size_bytes,
            self.segment_size_bytes - HEADER,
            changes.join(", ")
        )))
    }

    /// Sets `segment_size_bytes` and fits the sizes that depend on it: `max_record_bytes`
    /// and `max_batch_bytes` are lowered to fit a segment if they would not (and
    /// `max_batch_bytes` raised to hold one frame if it would not). A segment too small to
    /// hold any frame is left for [`WalConfig::validate`] to refuse.
    pub fn segment_size_bytes(mut self, bytes: u64) -> Self {
        self.segment_size_bytes = bytes;
        if let Some(fit) = self.fitted_sizes() {
            self.max_record_bytes = fit.max_record_bytes;
            self.max_batch_bytes = fit.max_batch_bytes as usize;
            self.max_queue_bytes = fit.max_queue_bytes as usize;
        }
        self
    }

    /// Sets `max_record_bytes`, and raises `max_batch_bytes` (and `max_queue_bytes`) to
    /// hold one frame of it if they would not. `segment_size_bytes` is not changed: set it
    /// first if records this large need larger segments.
    pub fn max_record_bytes(mut self, bytes: u64) -> Self {
        self.max_record_bytes = bytes;
        let frame = bytes.saturating_add(FRAME);
        let frame = usize::try_from(frame).unwrap_or(usize::MAX);
        self.max_batch_bytes = self.max_batch_bytes.max(frame);
        self.max_queue_bytes = self.max_queue_bytes.max(self.max_batch_bytes);
        self
    }

    /// Sets `max_batch_bytes`, and raises `max_queue_bytes` to hold one batch if it would
    /// not.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self.max_queue_bytes = self.max_queue_bytes.max(bytes);
        self
    }

    /// Sends every intact record to `to` at open (sets `replay_to`).
    pub fn replay_to(mut self, to: Recipient<Replayed>) -> Self {
        self.replay_to = Some(to);
        self
    }

    /// Sends durability notifications of appends that ask for none of their own to `to`
    /// (sets `notify_to`).
    pub fn notify_to(mut self, to: Recipient<DurabilityReply>) -> Self {
        self.notify_to = Some(to);
        self
    }

    /// Sends alerts to `to` (sets `alert_to`).
    pub fn alert_to(mut self, to: Recipient<Alert>) -> Self {
        self.alert_to = Some(to);
        self
    }
}

/// Setters that set one field and nothing else; each field's doc says what it means.
macro_rules! plain_setters {
    ($($name:ident: $t:ty),* $(,)?) => {
        impl WalConfig {
            $(
                #[doc = concat!("Sets `", stringify!($name), "` (see the field).")]
                pub fn $name(mut self, value: $t) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

plain_setters!(
    preallocate: bool,
    recovery_policy: RecoveryPolicy,
    durability: Durability,
    flush_interval_ms: u64,
    max_queue_bytes: usize,
    max_queue_entries: usize,
    when_full: WhenFull,
    replay_chunk_records: usize,
    flusher_stall_timeout_ms: u64,
    restart_backoff_initial_ms: u64,
    restart_backoff_max_ms: u64,
    max_flusher_restarts: u32,
    restart_window_ms: u64,
    max_sync_retries: u32,
    storage: SharedStorage,
    group_read: bool,
    alert_queue_depth: usize,
    alert_flush_ms: u64,
    alert_wal_bytes: u64,
    first_lsn: u64,
    max_meta_bytes: u64,
    queue_thread: QueueThread,
    compression: Compression,
);

impl WalConfig {
    /// Sets `replay_from` (see the field): replay at open starts at `lsn`.
    pub fn replay_from(mut self, lsn: crate::lsn::Lsn) -> Self {
        self.replay_from = Some(lsn);
        self
    }
}

// The cursor and retention fields (issue 22, item 3).
plain_setters!(
    retention_bytes: u64,
    retention_secs: u64,
    retention_check_interval_ms: u64,
    max_cursor_lag_bytes: u64,
    max_cursors: usize,
    max_cursor_name_bytes: usize,
);
