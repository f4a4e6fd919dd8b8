//! Health and alerts: `GetHealth` for a one-look answer, and `Alert`s to a
//! `Recipient<Alert>` that fire once when a threshold is crossed and once when it clears,
//! never in a flood. Each transition is also a `tracing` warning (fire) or info (clear).

use crate::stats::WalMode;
use actix::prelude::*;
use serde::{Deserialize, Serialize};

/// Ask the queue how the log is.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Health")]
pub struct GetHealth;

/// The log's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Taking appends and able to make them durable: not poisoned, not shut down, its
    /// batch writes not failing for a full disk (the `DiskFull` alert). (A degraded log
    /// is still healthy: correct, slower.)
    pub healthy: bool,
    /// The write mode now. A poisoned log keeps the mode it had when it was poisoned:
    /// [`Health::poisoned`] and [`Health::healthy`] say that it takes nothing.
    pub mode: WalMode,
    /// Whether a healthy flusher thread is attached (also on a poisoned log, whose
    /// flusher may be alive and idle).
    pub flusher_healthy: bool,
    /// Whether the log is poisoned (reopen to recover).
    pub poisoned: bool,
    /// Records queued or in flight.
    pub queue_depth: usize,
    /// Duration of the last flush, in milliseconds.
    pub last_flush_ms: f64,
    /// Bytes of the log's files on disk: the segments (preallocated ones in full) and the
    /// spare prepared for the next rollover (a whole preallocated segment), so a new log
    /// holds two segments' worth. Not `META` or `LOCK`.
    pub disk_bytes: u64,
    /// Alerts that have fired and not cleared.
    pub active_alerts: Vec<AlertKind>,
    /// The log's first LSN (the removal point: no record below it is read).
    pub first_lsn: crate::lsn::Lsn,
    /// The checkpoint (`truncate_before`); above `first_lsn` while cursors or the
    /// retention policy keep records below it.
    pub checkpoint_lsn: crate::lsn::Lsn,
    /// Bytes of the segments wholly below the checkpoint, kept by the retention policy or
    /// a cursor (part of `disk_bytes`).
    pub retained_bytes: u64,
    /// The named cursors, with their lag (see [`crate::Wal::cursors`]).
    pub cursors: Vec<crate::cursor::CursorInfo>,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// Queue depth over `alert_queue_depth`.
    QueueDepth,
    /// A flush (write + fsync) took longer than `alert_flush_ms`.
    FlushLatency,
    /// The flusher is dead; the log runs in degraded mode.
    FlusherUnhealthy,
    /// Segment files on disk over `alert_wal_bytes`: checkpoint and truncate.
    WalSize,
    /// A batch write failed for a full disk (`ENOSPC`, `EDQUOT`): appends fail
    /// [`WalError::DiskFull`](crate::WalError::DiskFull), and the log is unhealthy, until
    /// a batch is written again. The value is the number of batch writes that failed
    /// since the last one that succeeded; the threshold is 1.
    DiskFull,
    /// A cursor was invalidated: it would have held more than `max_cursor_lag_bytes` of
    /// segments (the value: the bytes it held; the threshold: the cap). Fires once per
    /// cursor invalidated; clears once no invalidated cursor is left (removed).
    CursorInvalidated,
}

/// Whether an alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    /// The threshold was crossed.
    Fired,
    /// The value is back within the threshold.
    Cleared,
}

/// An alert transition, sent to the config's `alert_to` recipient.
#[derive(Debug, Clone, PartialEq, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// Fired or cleared.
    pub state: AlertState,
    /// The value that crossed (or came back within) the threshold.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
}

/// Tracks which alerts are active and sends transitions only.
#[derive(Debug, Default)]
pub(crate) struct Alerts {
    to: Option<Recipient<Alert>>,
    active: Vec<AlertKind>,
}

impl Alerts {
    /// Alerts sent to `to` (or only logged, if `None`).
    pub fn new(to: Option<Recipient<Alert>>) -> Alerts {
        Alerts {
            to,
            active: Vec::new(),
        }
    }

    /// Alerts now active.
    pub fn active(&self) -> Vec<AlertKind> {
        self.active.clone()
    }

    /// An event rather than a condition: fires `kind` (sent even if it is active already,
    /// once per event) and leaves it active until an [`Self::update`] with `over` false.
    pub fn event(&mut self, kind: AlertKind, value: f64, threshold: f64) {
        if !self.active.contains(&kind) {
            self.active.push(kind);
        }
        tracing::warn!(?kind, value, threshold, "alert fired");
        if let Some(to) = &self.to {
            to.do_send(Alert {
                kind,
                state: AlertState::Fired,
                value,
                threshold,
            });
        }
    }

    /// Evaluates one condition: fires on the first `over`, clears on the first `!over`
    /// after that, and otherwise does nothing.
    pub fn update(&mut self, kind: AlertKind, over: bool, value: f64, threshold: f64) {
        let active = self.active.contains(&kind);
        let state = match (over, active) {
            (true, false) => {
                self.active.push(kind);
                tracing::warn!(?kind, value, threshold, "alert fired");
                AlertState::Fired
            }
            (false, true) => {
                self.active.retain(|k| *k != kind);
                tracing::info!(?kind, value, threshold, "alert cleared");
                AlertState::Cleared
            }
            _ => return,
        };
        if let Some(to) = &self.to {
            to.do_send(Alert {
                kind,
                state,
                value,
                threshold,
            });
        }
    }
}
