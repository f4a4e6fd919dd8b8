//! The `Store` actor: the service's state (a map rebuilt by replay), the write path
//! (log the operation, apply it once durable) and the reads.

use crate::budget::{Budget, Reservation};
use actix::prelude::*;
use actix_wal::format::codec;
use actix_wal::Queue;
use actix_wal::{Append, Lsn, Replayed, WalError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One logged operation: the payload of one WAL record, encoded with the crate's codec.
/// The log is the truth; the map is what replaying these in LSN order yields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value's bytes.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// A key's state and the LSN of the operation that set it.
#[derive(Debug)]
struct Slot {
    /// Writes to one key may be in flight together; each is applied only if its LSN is
    /// newer than this, so the map ends as the log's order says whatever order the
    /// durable replies are handled in.
    lsn: Lsn,
    /// `None` is a tombstone: the key was deleted while another write to it was in
    /// flight. Kept until none is, so a late older write cannot bring the key back.
    value: Option<Vec<u8>>,
}

/// The transaction actor: owns the map, logs each write and applies it once durable.
#[derive(Debug)]
pub(crate) struct Store {
    /// The state: keys to values (and tombstones, see [`Slot::value`]). A `BTreeMap`, not
    /// a `HashMap`: it never moves every key at once as a `HashMap` does each time it
    /// doubles, which at a million keys holds the store (every request) for tens of ms.
    entries: BTreeMap<String, Slot>,
    /// Writes in flight per key (sent to the log, durable reply not yet handled). At most
    /// one entry per request in progress, so its doublings stay small.
    in_flight: HashMap<String, usize>,
    /// The log's queue; `None` until the log is open (replay comes first).
    queue: Option<Addr<Queue>>,
    /// See `Args::max_keys`.
    max_keys: usize,
    /// `--max-bytes`, shared with the HTTP handlers, which reserve each body's bytes in
    /// it before reading it; the store publishes `held_bytes` there.
    budget: Arc<Budget>,
    /// Bytes of keys and values in `entries` (tombstones count their key).
    held_bytes: usize,
    /// Bytes of keys and values of the PUTs in flight: counted against `max_bytes` from
    /// the moment they are sent to the log, so that concurrent PUTs cannot pass it
    /// together.
    in_flight_bytes: usize,
    /// Records replayed at start.
    replayed: u64,
    /// The first record replay could not decode: the service refuses to start on it
    /// rather than serve a state that is not the log's.
    replay_error: Option<String>,
}

impl Store {
    pub(crate) fn new(max_keys: usize, budget: Arc<Budget>) -> Store {
        Store {
            entries: BTreeMap::new(),
            in_flight: HashMap::new(),
            queue: None,
            max_keys,
            budget,
            held_bytes: 0,
            in_flight_bytes: 0,
            replayed: 0,
            replay_error: None,
        }
    }

    /// Applies a durable operation (from a reply or from replay) if it is the key's newest.
    fn apply(&mut self, lsn: Lsn, op: Op) {
        let (key, value) = match op {
            Op::Put { key, value } => (key, Some(value)),
            Op::Delete { key } => (key, None),
        };
        if self.entries.get(&key).is_some_and(|s| s.lsn >= lsn) {
            return;
        }
        let key_bytes = key.len();
        let old = if value.is_none() && !self.in_flight.contains_key(&key) {
            self.entries.remove(&key)
        } else {
            self.held_bytes += slot_bytes(key_bytes, &value);
            self.entries.insert(key, Slot { lsn, value })
        };
        if let Some(old) = old {
            self.held_bytes -= slot_bytes(key_bytes, &old.value);
        }
        self.budget.set_held(self.held_bytes);
    }

    /// The write to `key` is no longer in flight; drop its tombstone if it was the last.
    fn settle(&mut self, key: &str) {
        if let Some(n) = self.in_flight.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(key);
                if self.entries.get(key).is_some_and(|s| s.value.is_none()) {
                    self.entries.remove(key);
                    self.held_bytes -= key.len();
                    self.budget.set_held(self.held_bytes);
                }
            }
        }
    }

    fn live(&self, key: &str) -> bool {
        self.entries.get(key).is_some_and(|s| s.value.is_some())
    }
}

impl Actor for Store {
    type Context = Context<Self>;
}

/// Replay at open: the log's records in LSN order, a chunk at a time.
impl Handler<Replayed> for Store {
    type Result = ();

    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        for record in msg.records {
            match codec::decode::<Op>(&record.payload) {
                Ok(op) => {
                    self.apply(record.lsn, op);
                    self.replayed += 1;
                }
                Err(e) => {
                    if self.replay_error.is_none() {
                        self.replay_error = Some(format!("record {}: {e}", record.lsn));
                    }
                }
            }
        }
    }
}

/// The log is open: writes may begin. Replies with the records replayed and the first
/// replay error, if any.
#[derive(Debug, Message)]
#[rtype(result = "(u64, Option<String>)")]
pub(crate) struct Attach(pub(crate) Addr<Queue>);

impl Handler<Attach> for Store {
    type Result = MessageResult<Attach>;

    fn handle(&mut self, msg: Attach, _: &mut Self::Context) -> Self::Result {
        self.queue = Some(msg.0);
        MessageResult((self.replayed, self.replay_error.clone()))
    }
}

/// Why a write was not done.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The log refused or failed it.
    Wal(WalError),
    /// `max_keys` reached.
    TooManyKeys,
    /// `max_bytes` would be passed.
    TooManyBytes,
    /// DELETE of a key that is not there.
    NotFound,
    /// The log is not open yet, or already stopped.
    Unavailable,
}

/// Log an operation and apply it once durable. Replies with its LSN. A PUT comes with
/// the reservation of its bytes, held until the write is answered.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lsn, WriteError>")]
pub(crate) struct Write(pub(crate) Op, pub(crate) Option<Reservation>);

impl Handler<Write> for Store {
    type Result = ResponseActFuture<Self, Result<Lsn, WriteError>>;

    fn handle(&mut self, Write(op, reservation): Write, _: &mut Self::Context) -> Self::Result {
        let refuse = |e| -> Self::Result { Box::pin(fut::ready(Err(e))) };
        let Some(queue) = self.queue.clone() else {
            return refuse(WriteError::Unavailable);
        };
        let key = op.key().to_owned();
        let known = self.entries.contains_key(&key) || self.in_flight.contains_key(&key);
        match &op {
            Op::Put { .. }
                if !known && self.entries.len() + self.in_flight.len() >= self.max_keys =>
            {
                return refuse(WriteError::TooManyKeys)
            }
            Op::Delete { .. } if !self.live(&key) && !self.in_flight.contains_key(&key) => {
                return refuse(WriteError::NotFound)
            }
            _ => {}
        }
        // What the map may come to hold: a PUT replacing a larger value would shrink it,
        // but the bound is checked as if every write in flight adds what it carries.
        let adds = match &op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { .. } => 0,
        };
        if self.held_bytes + self.in_flight_bytes + adds > self.budget.max_bytes() {
            return refuse(WriteError::TooManyBytes);
        }
        let payload = match codec::encode(&op) {
            Ok(p) => p,
            Err(e) => return refuse(WriteError::Wal(e)),
        };
        *self.in_flight.entry(key.clone()).or_default() += 1;
        self.in_flight_bytes += adds;
        // `send`, not `do_send`: the queue's back-pressure reaches us. No timeout around
        // it: a write whose reply we stopped waiting for may still become durable.
        let durable = async move { queue.send(Append::new(payload)).await };
        Box::pin(durable.into_actor(self).map(move |reply, act, _| {
            let result = match reply {
                Ok(Ok(lsn)) => {
                    act.apply(lsn, op);
                    Ok(lsn)
                }
                Ok(Err(e)) => Err(WriteError::Wal(e)),
                Err(_) => Err(WriteError::Unavailable),
            };
            act.in_flight_bytes -= adds;
            act.settle(&key);
            // Given back once the map counts the value (or the write failed).
            drop(reservation);
            result
        }))
    }
}

/// Read a key.
#[derive(Debug, Message)]
#[rtype(result = "Option<Vec<u8>>")]
pub(crate) struct Get(pub(crate) String);

impl Handler<Get> for Store {
    type Result = MessageResult<Get>;

    fn handle(&mut self, Get(key): Get, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.entries.get(&key).and_then(|s| s.value.clone()))
    }
}

/// The bytes a key's slot holds in memory, as counted against `max_bytes`: the key and
/// the value (a tombstone: the key alone).
fn slot_bytes(key_bytes: usize, value: &Option<Vec<u8>>) -> usize {
    key_bytes + value.as_ref().map_or(0, Vec::len)
}
