//! Taking appends, commits and append batches in: refuse (poisoned, shut down, too large),
//! hold one while the queue is full (a message is admitted whole or waits whole), or assign
//! LSNs and encode its frames into the gathering batch (rolling to a new batch at
//! `max_batch_bytes`); and
//! `Flush` and `WaitDurable`, which park a waiter for everything queued so far or up to an
//! LSN.

use super::entry::{AppendEntry, Entry, Payload, TxnPayload};
use super::waiters::{LsnResponse, Resp, Waiter};
use super::Queue;
use crate::config::WhenFull;
use crate::error::WalError;
use crate::format::{FrameKind, FRAME_FLAG_LZ4, FRAME_HEADER_BYTES};
use crate::health::AlertKind;
use crate::log::batch::check_transaction;
use crate::log::{Batch, Planner};
use crate::lsn::Lsn;
use crate::messages::{
    Append, AppendBatch, AppendOptions, Commit, Durability, Flush, Notify, WaitDurable,
};
use crate::stats::WalMode;
use actix::prelude::*;
use std::time::Instant;

/// The checks of what a message asks to append.
impl Entry {
    /// Refuses what the log can never take, before anything is queued.
    fn check(&self, max_record_bytes: u64, max_queue: (usize, usize)) -> Result<(), WalError> {
        let payload = self.largest_payload_bytes() as u64;
        if payload > max_record_bytes {
            return Err(WalError::RecordTooLarge {
                size_bytes: payload,
                max_bytes: max_record_bytes,
            });
        }
        match self {
            Entry::Record(_) => Ok(()),
            Entry::Txn(t) => check_transaction(t.count()),
            Entry::Records(r) if r.is_empty() => Err(WalError::EmptyBatch),
            Entry::Records(r) => {
                let (max_bytes, max_records) = max_queue;
                let bytes = self.frame_bytes();
                if bytes > max_bytes || r.len() > max_records {
                    return Err(WalError::BatchTooLarge {
                        records: r.len(),
                        bytes,
                        max_records,
                        max_bytes,
                    });
                }
                Ok(())
            }
        }
    }
}

/// Encodes one record's frame, as given or compressed.
fn push_payload(b: &mut Batch, planner: &mut Planner, p: &Payload) -> Result<Lsn, WalError> {
    match p {
        Payload::Plain(p) => b.push_record(planner, p),
        Payload::Lz4 { stored, .. } => {
            b.push_stored(planner, FrameKind::Record, FRAME_FLAG_LZ4, 1, stored)
        }
    }
}

/// An append held while the queue is full (at most one: a full queue takes no messages).
pub(super) struct Stashed {
    pub(super) entry: Entry,
    /// Its payloads were compressed (or left plain) by the caller already.
    pub(super) decided: bool,
    pub(super) options: AppendOptions,
    /// When it reached the queue (the commit latency counts from there).
    pub(super) arrived: Instant,
}

impl Queue {
    pub(super) fn has_room(&self, frame_bytes: usize, count: usize) -> bool {
        let empty = self.queued_entries == 0;
        empty
            || (self.queued_bytes + frame_bytes <= self.cfg.max_queue_bytes
                && self.queued_entries + count <= self.cfg.max_queue_entries)
    }

    /// Takes an append or commit: refuse, stash (queue full), or admit it.
    pub(super) fn submit(
        &mut self,
        entry: Entry,
        decided: bool,
        options: AppendOptions,
        arrived: Instant,
        ctx: &mut Context<Self>,
    ) -> LsnResponse {
        if let Some(e) = self.refusal() {
            return LsnResponse(Resp::Ready(Err(e)));
        }
        let max_queue = (self.cfg.max_queue_bytes, self.cfg.max_queue_entries);
        if let Err(err) = entry.check(self.cfg.max_record_bytes, max_queue) {
            return LsnResponse(Resp::Ready(Err(err)));
        }
        let frame = entry.frame_bytes();
        if !self.has_room(frame, entry.count()) {
            if self.cfg.when_full == WhenFull::Fail {
                // Start draining so that room comes back.
                self.kick_now(ctx);
                return LsnResponse(Resp::Ready(Err(WalError::QueueFull {
                    entries: self.queued_entries,
                    bytes: self.queued_bytes,
                })));
            }
            if self.wait_in_flight(ctx) {
                self.stash = Some(Stashed {
                    entry,
                    decided,
                    options,
                    arrived,
                });
                self.stats.blocked_appends = 1;
                return LsnResponse(Resp::Stash(self.replies.clone()));
            }
            // Nothing in flight to wait for (cannot happen while anything is queued):
            // admit over the limit rather than wait forever.
        }
        let admitted = self.admit(entry, decided, &options, arrived, ctx);
        self.response(admitted)
    }

    /// The response to what [`Self::admit`] did: the LSN now (buffered), the waiter it
    /// parked (durable), or the error.
    fn response(&self, admitted: Result<Option<Lsn>, WalError>) -> LsnResponse {
        match admitted {
            Ok(Some(lsn)) => LsnResponse(Resp::Ready(Ok(lsn))),
            Ok(None) => LsnResponse(Resp::Park(self.replies.clone())),
            Err(e) => LsnResponse(Resp::Ready(Err(e))),
        }
    }

    /// Encodes an entry into the gathering batch. Returns `Some(lsn)` for a buffered
    /// append (answer now), `None` when a durable waiter was parked (its sender is filled
    /// in by [`LsnResponse`]).
    pub(super) fn admit(
        &mut self,
        entry: Entry,
        decided: bool,
        options: &AppendOptions,
        arrived: Instant,
        ctx: &mut Context<Self>,
    ) -> Result<Option<Lsn>, WalError> {
        // Compressed here unless the caller did it (`entry.rs`); a compressed frame never
        // goes into a segment without the COMPRESSED flag: it starts a new segment.
        let entry = if decided {
            entry
        } else {
            entry.compressed(&self.cfg.compression)
        };
        // A plain segment holding slot frames but no record cannot be left (the next
        // segment would take its name): the entry goes into it stored plain.
        let entry = match Some(self.planner.segment_first_lsn) == self.plain_segment
            && self.planner.segment_first_lsn == self.planner.next_lsn
            && entry.has_lz4()
        {
            true => entry.plain()?,
            false => entry,
        };
        self.roll_next = self.plain_segment.is_some() && entry.has_lz4();
        let frame = entry.frame_bytes();
        // The frames cannot fail to encode now: their sizes passed `Entry::check`.
        let lsn = match &entry {
            Entry::Record(p) => {
                self.encode(frame, true, |b, planner| push_payload(b, planner, p))?
            }
            Entry::Txn(TxnPayload::Plain(e)) => {
                self.encode(frame, true, |b, planner| b.push_transaction(planner, e))?
            }
            Entry::Txn(TxnPayload::Lz4 { stored, count, .. }) => {
                self.encode(frame, true, |b, planner| {
                    b.push_stored(
                        planner,
                        FrameKind::Transaction,
                        FRAME_FLAG_LZ4,
                        *count,
                        stored,
                    )
                })?
            }
            Entry::Records(records) => {
                let first = Lsn(self.planner.next_lsn);
                for (i, p) in records.iter().enumerate() {
                    let frame = FRAME_HEADER_BYTES + p.stored_len();
                    self.encode(frame, i == 0, |b, planner| push_payload(b, planner, p))?;
                }
                first
            }
        };
        tracing::trace!(lsn = lsn.0, bytes = frame, "queued");
        self.queued_bytes += frame;
        self.queued_entries += entry.count();
        self.stats.peak_queue_bytes = self.stats.peak_queue_bytes.max(self.queued_bytes);
        if self.queued_entries > self.cfg.alert_queue_depth {
            // Fires at the append that crosses; a no-op while the alert is active.
            let limit = self.cfg.alert_queue_depth;
            self.alerts.update(
                AlertKind::QueueDepth,
                true,
                self.queued_entries as f64,
                limit as f64,
            );
        }
        let end = self.planner.next_lsn;
        let durable = options.durability.unwrap_or(self.cfg.durability) == Durability::Durable;
        if durable || options.flush_now {
            self.urgent_end = end;
        }
        // A message that names no recipient of its own is notified at the config's
        // `notify_to`, if set, with its (first) LSN as the token.
        let notify = match &options.notify {
            Some(n) => Some(n.clone()),
            None => self.cfg.notify_to.as_ref().map(|to| Notify {
                to: to.clone(),
                token: lsn.0,
            }),
        };
        // A durable caller waits here for its reply; a buffered one is answered now, but a
        // notification still follows durability.
        if durable || notify.is_some() {
            self.replies.borrow_mut().waiters.push_back(Waiter {
                end,
                reply: lsn,
                since: durable.then_some(arrived),
                batch: matches!(&entry, Entry::Records(r) if r.len() > 1),
                tx: None,
                notify,
            });
        }
        let result = (!durable).then_some(lsn);
        self.kick(ctx);
        Ok(result)
    }

    /// Encodes one frame of `frame` bytes with `push` into the gathering batch: a new batch
    /// when the last would pass `max_batch_bytes`, or (synchronous mode) for each message.
    pub(super) fn encode(
        &mut self,
        frame: usize,
        new_message: bool,
        push: impl FnOnce(&mut Batch, &mut Planner) -> Result<Lsn, WalError>,
    ) -> Result<Lsn, WalError> {
        let needs_new = match self.pending.back() {
            None => true,
            Some(b) => {
                b.bytes() + frame > self.cfg.max_batch_bytes
                    || (new_message && self.requested_mode == WalMode::Sync)
            }
        };
        if needs_new {
            let (buf, frames) = self.spare.pop().unwrap_or_default();
            self.pending
                .push_back(Batch::with_buffers(&self.planner, buf, frames));
        }
        let Some(batch) = self.pending.back_mut() else {
            unreachable!("a batch was pushed just above if none was gathering")
        };
        if std::mem::take(&mut self.roll_next)
            && Some(self.planner.segment_first_lsn) == self.plain_segment
        {
            // The segment is full as far as this entry's frames go: they start the next
            // one, which the writer creates with COMPRESSED (`entry.rs`). After the batch's
            // start was taken, so a failed write goes back to the segment's real end.
            self.planner.offset = self.planner.offset.max(self.planner.segment_size_bytes);
        }
        push(batch, &mut self.planner)
    }

    /// Admits the append held while the queue was full, once there is room, then the
    /// intake's entries taken after it (`intake.rs`).
    pub(super) fn admit_stash(&mut self, ctx: &mut Context<Self>) {
        let Some(stashed) = self.stash.take() else {
            return;
        };
        let tx = self.replies.borrow_mut().stash_tx.take();
        if let Some(e) = self.refusal() {
            if let Some(tx) = tx {
                let _ = tx.send(Err(e));
            }
            self.stats.blocked_appends = 0;
            self.drain_backlog(ctx);
            return;
        }
        let frame = stashed.entry.frame_bytes();
        if !self.has_room(frame, stashed.entry.count()) && self.wait_in_flight(ctx) {
            self.stash = Some(stashed);
            self.replies.borrow_mut().stash_tx = tx;
            return;
        }
        self.stats.blocked_appends = 0;
        let arrived = stashed.arrived;
        let admitted = self.admit(
            stashed.entry,
            stashed.decided,
            &stashed.options,
            arrived,
            ctx,
        );
        self.response(admitted).deliver(tx);
        self.drain_backlog(ctx);
    }
}

impl Handler<Append> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> LsnResponse {
        let arrived = self.arrived(&msg.options);
        self.submit(
            Entry::Record(Payload::Plain(msg.payload)),
            false,
            msg.options,
            arrived,
            ctx,
        )
    }
}

impl Handler<AppendBatch> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, msg: AppendBatch, ctx: &mut Self::Context) -> LsnResponse {
        let arrived = self.arrived(&msg.options);
        let records = msg.records.into_iter().map(Payload::Plain).collect();
        self.submit(Entry::Records(records), false, msg.options, arrived, ctx)
    }
}

impl Handler<Commit> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, msg: Commit, ctx: &mut Self::Context) -> LsnResponse {
        let arrived = self.arrived(&msg.options);
        let entry = Entry::Txn(TxnPayload::Plain(msg.entries));
        self.submit(entry, false, msg.options, arrived, ctx)
    }
}

impl Handler<AppendEntry> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, msg: AppendEntry, ctx: &mut Self::Context) -> LsnResponse {
        let arrived = self.arrived(&msg.options);
        self.submit(msg.entry, true, msg.options, arrived, ctx)
    }
}

impl Queue {
    /// Parks a waiter answered `reply` once every LSN below `end` is durable, and makes
    /// the batches up to `end` due now.
    fn park_until(&mut self, end: u64, reply: Lsn, ctx: &mut Context<Self>) -> LsnResponse {
        let at = self.replies.borrow_mut().park(Waiter {
            end,
            reply,
            since: None,
            batch: false,
            tx: None,
            notify: None,
        });
        self.urgent_end = self.urgent_end.max(end);
        self.kick(ctx);
        LsnResponse(Resp::ParkAt(self.replies.clone(), at))
    }
}

impl Handler<Flush> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> LsnResponse {
        if let Some(p) = &self.poisoned {
            return LsnResponse(Resp::Ready(Err(p.clone())));
        }
        let end = self.planner.next_lsn;
        if self.durable_end >= end {
            return LsnResponse(Resp::Ready(Ok(Lsn(end - 1))));
        }
        self.park_until(end, Lsn(end - 1), ctx)
    }
}

impl Handler<WaitDurable> for Queue {
    type Result = LsnResponse;

    fn handle(&mut self, msg: WaitDurable, ctx: &mut Self::Context) -> LsnResponse {
        let lsn = msg.0;
        let end = lsn.0.saturating_add(1);
        // Never given out: at or past the next LSN, or below where the log started (LSN 0
        // included; see `assigned_from`).
        if lsn.0 >= self.planner.next_lsn || lsn.0 < self.assigned_from {
            return LsnResponse(Resp::Ready(Err(WalError::LsnNotAssigned {
                lsn,
                next_lsn: Lsn(self.planner.next_lsn),
            })));
        }
        // Durable already (also on a poisoned or shut-down log: what is durable stays so).
        if self.durable_end >= end {
            return LsnResponse(Resp::Ready(Ok(lsn)));
        }
        if let Some(p) = &self.poisoned {
            return LsnResponse(Resp::Ready(Err(p.clone())));
        }
        if self.dir.is_none() {
            return LsnResponse(Resp::Ready(Err(WalError::ShutDown)));
        }
        self.park_until(end, lsn, ctx)
    }
}
