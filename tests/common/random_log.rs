//! Shared by the format properties (tests/format.rs, format_damage.rs): random logs of
//! records and transactions (zeros among the payloads) with random `sync` points, written
//! through `LogWriter` and read back through `LogReader`; the proptest config (a fixed seed)
//! and the small geometry that makes logs roll over into several segments.
//! Included with `#[path = "common/random_log.rs"] mod random_log;`.
#![allow(dead_code)]

use actix_wal::storage::default_storage;
use actix_wal::{LogOptions, LogReader, LogWriter, Lsn, Record, TxnPosition, WalError};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::ops::Range;
use std::path::Path;

/// Largest record of the round-trip and bit-flip logs.
pub const MAX_RECORD_BYTES: u64 = 2048;
/// Segment size of the round-trip and bit-flip logs: a few records per segment.
pub const SEGMENT_SIZE_BYTES: u64 = 8192;

pub fn config(cases: u32, seed: u64) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // A failing case is printed; nothing is written next to the tests.
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

pub fn options(segment_size_bytes: u64, max_record_bytes: u64, preallocate: bool) -> LogOptions {
    LogOptions {
        segment_size_bytes,
        max_record_bytes,
        preallocate,
        ..LogOptions::default()
    }
}

/// One append.
#[derive(Debug, Clone)]
pub enum Op {
    /// A single record.
    Record(Vec<u8>),
    /// A transaction: one frame holding all entries.
    Txn(Vec<Vec<u8>>),
}

/// An append, and whether `sync` (which writes and fsyncs one batch) follows it.
#[derive(Debug, Clone)]
pub struct Step {
    op: Op,
    sync_after: bool,
}

/// Payload bytes from a length and a seed: zeros for a quarter of the seeds (zeros matter,
/// since zeros are also what ends a log), pseudo-random bytes otherwise.
pub fn fill(len: usize, seed: u64) -> Vec<u8> {
    if seed.is_multiple_of(4) {
        return vec![0; len];
    }
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        3 => 0..=64usize,
        3 => 0..=max,
        1 => Just(max),
        1 => Just(0usize),
    ];
    (len, any::<u64>()).prop_map(|(len, seed)| fill(len, seed))
}

pub fn step(max: usize) -> impl Strategy<Value = Step> {
    // Entries of at most max/8 - 4 bytes: a transaction of up to 8 of them (4 bytes of
    // length each) fits in one frame of `max` bytes.
    let entry_max = max / 8 - 4;
    let op = prop_oneof![
        5 => payload(max).prop_map(Op::Record),
        1 => prop::collection::vec(payload(entry_max), 1..=8).prop_map(Op::Txn),
    ];
    (op, prop::bool::weighted(0.3)).prop_map(|(op, sync_after)| Step { op, sync_after })
}

/// What a log holds after [`write_log`].
#[derive(Debug)]
pub struct Written {
    /// Payloads in LSN order: `records[i]` has LSN `i + 1`.
    pub records: Vec<Vec<u8>>,
    /// Transaction position of each record.
    pub txn: Vec<Option<TxnPosition>>,
    /// The LSN ranges of the write batches (one per `sync` that had work).
    pub batches: Vec<Range<u64>>,
}

/// Writes `steps` to a new log in `dir` with `LogWriter`, syncing after the steps that ask
/// and at the end.
pub fn write_log(dir: &Path, steps: &[Step], opts: LogOptions) -> Written {
    let (mut log, outcome) = LogWriter::open(dir, opts).expect("open a new log");
    assert_eq!(outcome.next_lsn, Lsn(1));
    let mut w = Written {
        records: Vec::new(),
        txn: Vec::new(),
        batches: Vec::new(),
    };
    let mut batch_start = 1u64;
    for (i, s) in steps.iter().enumerate() {
        match &s.op {
            Op::Record(p) => {
                let lsn = log.append(p).expect("append");
                assert_eq!(u64::from(lsn), w.records.len() as u64 + 1);
                w.records.push(p.clone());
                w.txn.push(None);
            }
            Op::Txn(entries) => {
                let lsn = log.append_transaction(entries).expect("append_transaction");
                assert_eq!(u64::from(lsn), w.records.len() as u64 + 1);
                for (index, e) in entries.iter().enumerate() {
                    w.records.push(e.clone());
                    w.txn.push(Some(TxnPosition {
                        index: index as u16,
                        count: entries.len() as u16,
                    }));
                }
            }
        }
        if s.sync_after || i + 1 == steps.len() {
            let durable = log.sync().expect("sync");
            let end = w.records.len() as u64 + 1;
            assert_eq!(u64::from(durable), end - 1);
            if end > batch_start {
                w.batches.push(batch_start..end);
                batch_start = end;
            }
        }
    }
    w
}

/// Reads the whole log: the records before the first error, and that error.
pub fn read_log(dir: &Path, max_record_bytes: u64) -> (Vec<Record>, Option<WalError>) {
    let reader =
        LogReader::open_with(dir, default_storage(), max_record_bytes).expect("open reader");
    let mut records = Vec::new();
    for item in reader {
        match item {
            Ok(r) => records.push(r),
            Err(e) => return (records, Some(e)),
        }
    }
    (records, None)
}

pub fn payloads(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.payload.clone()).collect()
}
