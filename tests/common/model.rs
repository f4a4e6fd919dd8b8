//! The reference model of tests/model.rs and model_flusher_deaths.rs: the operations a
//! case draws (and the proptest strategy that draws them), and the list of records the log
//! accepted, in LSN order, with the prefix of it that must survive a power cut; how each
//! reply, error and reopen changes it, and the checks of a reopened log against it.
//! Included with `#[path = "common/model.rs"] mod model;` beside `mod sim;`.
#![allow(dead_code)]

use crate::sim::Fault;
use actix_wal::{Lsn, Record, WalError, WalStats};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// One step of a case.
#[derive(Debug, Clone)]
pub enum Op {
    /// A durable or buffered append of a record with a body of this many bytes.
    Append { body: u8, buffered: bool },
    /// A durable transaction of `entries` entries.
    Commit { entries: u8, body: u8 },
    /// `Flush`.
    Flush,
    /// `SetMode(Sync)` (true) or `SetMode(Async)`.
    SetMode(bool),
    /// A disk fault at the next operation it applies to.
    Fault(Fault),
    /// Power cut (the disk as `SimStorage::crash(seed)` leaves it), then reopen.
    Crash(u64),
    /// Clean shutdown, then reopen.
    Reopen,
    /// The flusher panics in its next write (it dies; the log goes degraded, then restarts
    /// it).
    FlusherPanics,
    /// The flusher's next fsync fails (the batch is rewritten to a fresh segment).
    FlusherSyncFails,
    /// `truncate_after` to the transaction boundary nearest below this fraction (of 255)
    /// of the log.
    TruncateAfter(u8),
    /// `reset` to the next LSN plus this much.
    Reset(u8),
    /// `set_meta` with a value of this many bytes (each byte the op's number).
    SetMeta(u8),
}

pub fn op_strategy(failpoints: bool) -> BoxedStrategy<Op> {
    let fault = prop_oneof![
        Just(Fault::WriteError),
        Just(Fault::ShortWrite),
        Just(Fault::NoSpace),
        Just(Fault::SyncError),
        Just(Fault::DirSyncError),
    ];
    let base = prop_oneof![
        10 => (any::<u8>(), prop::bool::weighted(0.3))
            .prop_map(|(body, buffered)| Op::Append { body: body % 120, buffered }),
        4 => (1u8..5, any::<u8>()).prop_map(|(entries, body)| Op::Commit { entries, body: body % 80 }),
        2 => Just(Op::Flush),
        2 => any::<bool>().prop_map(Op::SetMode),
        1 => fault.prop_map(Op::Fault),
        2 => any::<u64>().prop_map(Op::Crash),
        1 => Just(Op::Reopen),
        2 => any::<u8>().prop_map(Op::TruncateAfter),
        1 => (0u8..4).prop_map(Op::Reset),
        1 => any::<u8>().prop_map(Op::SetMeta),
    ];
    if failpoints {
        prop_oneof![
            20 => base,
            1 => Just(Op::FlusherPanics),
            1 => Just(Op::FlusherSyncFails),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

/// A record as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub payload: Vec<u8>,
    pub txn: Option<(u16, u16)>,
}

/// What the log must hold.
#[derive(Debug)]
pub struct Model {
    /// LSN of `log[0]`: 1, until a reset moves it.
    pub base: u64,
    /// Every accepted record, entry `i` at LSN `base + i`.
    pub log: Vec<Entry>,
    /// The first `durable` records survive any power cut.
    pub durable: usize,
    /// The log is in `Sync` mode.
    pub sync_mode: bool,
    /// The log is poisoned: nothing more is accepted until it is reopened.
    pub poisoned: bool,
    /// Records whose append was answered `Poisoned`: their fate is unknown, so after a
    /// reopen they may follow `log`, in this order.
    pub maybe: Vec<Entry>,
    /// `write_failures` last seen: a failed batch gives its LSNs out again.
    pub write_failures: u64,
    /// The metadata slot's last acknowledged value.
    pub meta: Option<Vec<u8>>,
    /// Values of `set_meta` calls that failed: a crash may keep any of them.
    pub meta_maybe: Vec<Vec<u8>>,
    /// A reset to this LSN failed midway (the log was poisoned): the reopen may find the
    /// log before it or after it.
    pub reset_maybe: Option<u64>,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            base: 1,
            log: Vec::new(),
            durable: 0,
            sync_mode: false,
            poisoned: false,
            maybe: Vec::new(),
            write_failures: 0,
            meta: None,
            meta_maybe: Vec::new(),
            reset_maybe: None,
        }
    }
}

impl Model {
    pub fn next_lsn(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// The number of records to keep for a rewind at `frac` / 255 of the log: a
    /// transaction boundary at or below it.
    pub fn boundary(&self, frac: u8) -> usize {
        let mut k = self.log.len() * usize::from(frac) / 255;
        while k > 0 && k < self.log.len() && self.log[k].txn.is_some_and(|(i, _)| i > 0) {
            k -= 1;
        }
        k
    }

    /// Takes the queue's word for where the log continues after a failed write: the
    /// records from there on are gone (their LSNs are given out again).
    pub fn resync(&mut self, stats: &WalStats) -> Result<(), TestCaseError> {
        let kept = (stats.next_lsn.0 - self.base) as usize;
        prop_assert!(
            kept <= self.log.len(),
            "the queue holds records the model never saw"
        );
        prop_assert!(kept >= self.durable, "a failed write took durable records");
        self.log.truncate(kept);
        self.write_failures = stats.write_failures;
        Ok(())
    }

    /// Checks a reopened log against the model and adopts it. `exact`: a clean shutdown
    /// (everything accepted is there); else a power cut (a durable prefix at least).
    pub fn reopened(
        &mut self,
        recs: &[Record],
        next: Lsn,
        meta: Option<Vec<u8>>,
        exact: bool,
    ) -> Result<(), TestCaseError> {
        if let Some(n) = self.reset_maybe.take() {
            if recs.first().map_or(next.0, |r| r.lsn.0) == n {
                // The reset was completed (by the reopen, or before the crash).
                self.base = n;
                self.log.clear();
                self.maybe.clear();
                self.durable = 0;
            }
        }
        prop_assert!(
            meta == self.meta || meta.as_ref().is_some_and(|v| self.meta_maybe.contains(v)),
            "metadata slot {:?} was never set (last acknowledged {:?})",
            meta,
            self.meta
        );
        self.meta = meta;
        self.meta_maybe.clear();
        let known: Vec<&Entry> = self.log.iter().chain(&self.maybe).collect();
        for (i, r) in recs.iter().enumerate() {
            prop_assert_eq!(
                r.lsn.0,
                self.base + i as u64,
                "LSNs run from the base without a gap"
            );
            let Some(e) = known.get(i) else {
                return Err(TestCaseError::fail(format!(
                    "record at LSN {} was never accepted",
                    r.lsn
                )));
            };
            prop_assert!(
                r.payload == e.payload,
                "record at LSN {} is not what was appended",
                r.lsn
            );
            prop_assert_eq!(r.txn.map(|t| (t.index, t.count)), e.txn);
        }
        prop_assert!(
            recs.len() >= self.durable,
            "{} records recovered, {} were durable",
            recs.len(),
            self.durable
        );
        if let Some((i, n)) = recs.last().and_then(|r| r.txn.map(|t| (t.index, t.count))) {
            prop_assert_eq!(i + 1, n, "a transaction was cut");
        }
        if exact {
            prop_assert_eq!(
                recs.len(),
                self.log.len(),
                "a clean shutdown keeps everything"
            );
        }
        prop_assert_eq!(next.0, self.base + recs.len() as u64);
        let maybe = std::mem::take(&mut self.maybe);
        self.log.extend(maybe);
        self.log.truncate(recs.len());
        self.durable = recs.len();
        self.sync_mode = false;
        self.poisoned = false;
        self.write_failures = 0;
        Ok(())
    }
}

/// What an error reply to an append of `entries` means for the model.
pub fn on_error(m: &mut Model, e: &WalError, entries: Vec<Entry>) -> Result<(), TestCaseError> {
    match e {
        WalError::Poisoned { .. } => {
            // Refused at once if the log was poisoned already; else it may be on disk.
            if !m.poisoned {
                m.maybe.extend(entries);
            }
            m.poisoned = true;
        }
        WalError::Io { .. } | WalError::DiskFull { .. } | WalError::PermissionDenied { .. } => {}
        other => return Err(TestCaseError::fail(format!("unexpected error: {other}"))),
    }
    Ok(())
}
