//! Callers waiting for durability, and how their replies are parked: a durable append's
//! reply sender is kept with its [`Waiter`] until the batch holding it is fsynced, so a
//! parked caller costs no future of its own.

use super::Queue;
use crate::error::WalError;
use crate::lsn::Lsn;
use crate::messages::{DurabilityReply, Notify};
use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

pub(super) type Tx = OneshotSender<Result<Lsn, WalError>>;

/// A caller waiting for durability.
pub(super) struct Waiter {
    /// LSN after the last one it covers: durable once `durable_end >= end`.
    pub(super) end: u64,
    /// The value answered.
    pub(super) reply: Lsn,
    /// When the message reached the queue (for the commit-latency histogram); `None` for
    /// waiters that are not durable appends.
    pub(super) since: Option<Instant>,
    /// An `AppendBatch` of several records: each is a frame of its own, so a rewind could
    /// cut between them, and it refuses to while this waiter is parked
    /// ([`WalError::SplitsBatch`]): no one answer would then be true of the whole batch.
    pub(super) batch: bool,
    pub(super) tx: Option<Tx>,
    pub(super) notify: Option<Notify>,
}

impl Waiter {
    pub(super) fn answer(self, result: Result<Lsn, WalError>) {
        if let Some(n) = self.notify {
            n.to.do_send(DurabilityReply {
                token: n.token,
                result: result.clone(),
            });
        }
        if let Some(tx) = self.tx {
            let _ = tx.send(result);
        }
    }
}

/// Reply slots shared between the handlers and [`LsnResponse`], which receives actix's
/// reply sender right after the handler returns (so a parked caller costs no future).
#[derive(Default)]
pub(super) struct Replies {
    /// In order of `end` (ties in arrival order): a written batch answers from the front,
    /// a failed one from the back.
    pub(super) waiters: VecDeque<Waiter>,
    pub(super) stash_tx: Option<Tx>,
}

impl Replies {
    /// Parks `w` in its place by `end` (after those with the same `end`); returns its
    /// index, where [`Resp::ParkAt`] fills in the reply sender.
    pub(super) fn park(&mut self, w: Waiter) -> usize {
        let at = self.waiters.partition_point(|x| x.end <= w.end);
        self.waiters.insert(at, w);
        at
    }
}

/// The response type of `Append`, `Commit`, `Flush` and `WaitDurable`: either an answer
/// now, or a slot to park actix's reply sender in until the LSN is durable.
pub struct LsnResponse(pub(super) Resp);

pub(super) enum Resp {
    Ready(Result<Lsn, WalError>),
    /// The waiter just pushed at the back (an append's `end` is the largest).
    Park(Rc<RefCell<Replies>>),
    /// The waiter just parked at this index by [`Replies::park`] (the reply sender comes
    /// right after the handler returns, before anything else can move it).
    ParkAt(Rc<RefCell<Replies>>, usize),
    Stash(Rc<RefCell<Replies>>),
}

impl LsnResponse {
    /// Answers now, or parks `tx` where the response says.
    pub(super) fn deliver(self, tx: Option<Tx>) {
        match self.0 {
            Resp::Ready(r) => {
                if let Some(tx) = tx {
                    let _ = tx.send(r);
                }
            }
            Resp::Park(slots) => {
                if let Some(w) = slots.borrow_mut().waiters.back_mut() {
                    w.tx = tx;
                }
            }
            Resp::ParkAt(slots, at) => {
                if let Some(w) = slots.borrow_mut().waiters.get_mut(at) {
                    w.tx = tx;
                }
            }
            Resp::Stash(slots) => slots.borrow_mut().stash_tx = tx,
        }
    }
}

impl<M> MessageResponse<Queue, M> for LsnResponse
where
    M: Message<Result = Result<Lsn, WalError>>,
{
    fn handle(self, _ctx: &mut Context<Queue>, tx: Option<OneshotSender<M::Result>>) {
        self.deliver(tx);
    }
}
