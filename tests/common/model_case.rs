//! A case of tests/model.rs and model_flusher_deaths.rs run: its operations sent through
//! the actor pipeline (`Wal`) on the simulated disk, each reply, power cut and reopen
//! checked against the reference model (tests/common/model.rs); and the proptest runner
//! that draws the cases (`MODEL_CASES`, `MODEL_SEED`). Included with
//! `#[path = "common/model_case.rs"] mod model_case;` beside `mod model;` and `mod sim;`.
#![allow(dead_code)]

use crate::model::{on_error, op_strategy, Entry, Model, Op};
use crate::sim::broken::{Broken, BrokenStorage};
use crate::sim::oracle::{Kind, Tag};
use crate::sim::SimStorage;
use actix::prelude::*;
use actix_wal::{
    Append, CommitMode, Durability, LogReader, Lsn, Record, Replayed, Wal, WalConfig, WalError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DIR: &str = "/wal";

/// Failpoints are global to the process: tests of this binary that touch the log run one
/// at a time, so a failpoint armed by one never strikes another.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Collects the records replayed at open.
pub struct Collector(Arc<Mutex<Vec<Record>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Replayed> for Collector {
    type Result = ();

    fn handle(&mut self, msg: Replayed, _: &mut Self::Context) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(msg.records);
    }
}

/// Figures of a run, to show it was not vacuous.
#[derive(Debug, Default)]
pub struct Tally {
    pub cases: AtomicU64,
    pub ops: AtomicU64,
    pub reopens: AtomicU64,
    pub records_checked: AtomicU64,
    pub durable_checked: AtomicU64,
}

/// How a case runs.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub preallocate: bool,
    /// A deliberately broken storage (teeth).
    pub broken: Option<Broken>,
}

pub async fn open(
    sim: &SimStorage,
    setup: Setup,
    tally: &Tally,
) -> Result<(Wal, Vec<Record>, Lsn), TestCaseError> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector(got.clone()).start();
    let cfg = WalConfig {
        segment_size_bytes: 2048,
        max_record_bytes: 512,
        max_batch_bytes: 1024,
        preallocate: setup.preallocate,
        flush_interval_ms: 3,
        storage: match setup.broken {
            Some(b) => BrokenStorage::wrap(sim.shared(), b),
            None => sim.shared(),
        },
        replay_to: Some(collector.recipient()),
        ..WalConfig::default()
    };
    let wal = Wal::open(DIR, cfg)
        .await
        .map_err(|e| TestCaseError::fail(format!("open failed: {e}")))?;
    let recs = std::mem::take(&mut *got.lock().unwrap_or_else(|e| e.into_inner()));
    let next = wal.recovery_report().next_lsn;
    tally.reopens.fetch_add(1, Ordering::Relaxed);
    tally
        .records_checked
        .fetch_add(recs.len() as u64, Ordering::Relaxed);
    Ok((wal, recs, next))
}

/// `(LSN, payload)` of every record `LogReader` reads on `image` (nothing for a directory
/// that holds no log yet: the open creates it empty).
pub fn offline_read(image: &SimStorage, setup: Setup) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
    let storage = match setup.broken {
        Some(b) => BrokenStorage::wrap(image.shared(), b),
        None => image.shared(),
    };
    if !storage.is_dir(std::path::Path::new(DIR)).unwrap_or(false) {
        return Ok(Vec::new());
    }
    match LogReader::open_with(DIR, storage, 512) {
        Err(WalError::NoLog { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
        Ok(r) => r.map(|r| r.map(|r| (r.lsn.0, r.payload))).collect(),
    }
}

pub async fn run_case(ops: Vec<Op>, setup: Setup, tally: &Tally) -> Result<(), TestCaseError> {
    tally.cases.fetch_add(1, Ordering::Relaxed);
    tally.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
    let mut sim = SimStorage::new();
    let (mut wal, recs, next) = open(&sim, setup, tally).await?;
    let mut m = Model::default();
    m.reopened(&recs, next, wal.meta(), true)?;
    for (seq, op) in ops.into_iter().enumerate() {
        let seq = seq as u32;
        // A batch that failed with no waiter to tell (buffered records) shows here.
        if let Ok(stats) = wal.stats().await {
            if stats.write_failures != m.write_failures {
                m.resync(&stats)?;
            }
        }
        let accepted_before = m.log.len();
        let in_sync_mode = m.sync_mode;
        let mut answered = false;
        match op {
            Op::Append { body, buffered } => {
                let tag = Tag {
                    kind: Kind::Append,
                    gen: 0,
                    client: 0,
                    seq,
                    idx: 0,
                    count: 1,
                };
                let payload = tag.payload(usize::from(body));
                let res = if buffered {
                    wal.send(Append::new(payload.clone()).durability(Durability::Buffered))
                        .await
                } else {
                    wal.append(payload.clone()).await
                };
                match res {
                    Ok(lsn) => {
                        prop_assert!(!m.poisoned, "a poisoned log accepted an append");
                        prop_assert_eq!(lsn.0, m.next_lsn());
                        m.log.push(Entry { payload, txn: None });
                        if !buffered {
                            m.durable = m.log.len();
                        }
                        answered = true;
                    }
                    Err(e) => on_error(&mut m, &e, vec![Entry { payload, txn: None }])?,
                }
            }
            Op::Commit { entries, body } => {
                let count = u16::from(entries);
                let payloads: Vec<Vec<u8>> = (0..count)
                    .map(|idx| {
                        Tag {
                            kind: Kind::Commit,
                            gen: 0,
                            client: 0,
                            seq,
                            idx,
                            count,
                        }
                        .payload(usize::from(body))
                    })
                    .collect();
                let entries: Vec<Entry> = payloads
                    .iter()
                    .enumerate()
                    .map(|(i, payload)| Entry {
                        payload: payload.clone(),
                        txn: Some((i as u16, count)),
                    })
                    .collect();
                match wal.commit(payloads).await {
                    Ok(lsn) => {
                        prop_assert!(!m.poisoned, "a poisoned log accepted a commit");
                        prop_assert_eq!(lsn.0, m.next_lsn());
                        m.log.extend(entries);
                        m.durable = m.log.len();
                        answered = true;
                    }
                    Err(e) => on_error(&mut m, &e, entries)?,
                }
            }
            Op::Flush => match wal.flush().await {
                Ok(d) => {
                    prop_assert_eq!(d.0, m.next_lsn() - 1, "Flush answers the last LSN");
                    m.durable = m.log.len();
                    answered = true;
                }
                Err(e) => on_error(&mut m, &e, Vec::new())?,
            },
            Op::SetMode(sync) => {
                let mode = if sync {
                    CommitMode::Sync
                } else {
                    CommitMode::Async
                };
                match wal.set_mode(mode).await {
                    Ok(()) => {
                        m.sync_mode = sync;
                        answered = true;
                    }
                    Err(e) => on_error(&mut m, &e, Vec::new())?,
                }
            }
            Op::Fault(f) => sim.inject(sim.ops(), f),
            Op::Crash(seed) => {
                let image = sim.crash(seed);
                let _ = wal.shutdown().await; // on the old disk, which is thrown away
                sim = image;
                // An offline reader on the image, before the open recovers it, reads
                // what the open then replays (issue 20, item 7).
                let offline = offline_read(&sim.fork(), setup);
                let (w, recs, next) = open(&sim, setup, tally).await?;
                wal = w;
                let replayed: Vec<(u64, Vec<u8>)> =
                    recs.iter().map(|r| (r.lsn.0, r.payload.clone())).collect();
                prop_assert_eq!(
                    offline.map_err(|e| e.to_string()),
                    Ok(replayed),
                    "LogReader before recovery and the replay of Wal::open differ"
                );
                tally
                    .durable_checked
                    .fetch_add(m.durable as u64, Ordering::Relaxed);
                m.reopened(&recs, next, wal.meta(), false)?;
            }
            Op::Reopen => {
                let clean = !m.poisoned && wal.flush().await.is_ok();
                // A poisoned log had an fsync fail: its page cache may hold bytes the disk
                // never got (Linux marks them clean), and a cut whose fsync failed may be
                // undone by a power cut. It is reopened in the same boot all the same:
                // recovery rebuilds the last segment from what it reads, and a later crash
                // in the sequence checks that nothing acknowledged is lost.
                if !clean {
                    if let Ok(stats) = wal.stats().await {
                        m.poisoned |= stats.poisoned;
                        if !m.poisoned {
                            m.resync(&stats)?;
                        }
                    }
                } else {
                    m.durable = m.log.len();
                }
                let shut = wal.shutdown().await;
                prop_assert!(!clean || shut.is_ok(), "shutdown failed: {shut:?}");
                sim.disarm(); // a fault meant for this run must not strike the next open
                let (w, recs, next) = open(&sim, setup, tally).await?;
                wal = w;
                m.reopened(&recs, next, wal.meta(), clean)?;
            }
            Op::FlusherPanics => {
                #[cfg(feature = "failpoints")]
                fail::cfg("flusher::before_write", "1*panic").map_err(TestCaseError::fail)?;
            }
            Op::FlusherSyncFails => {
                #[cfg(feature = "failpoints")]
                fail::cfg("flusher::before_sync", "1*return").map_err(TestCaseError::fail)?;
            }
            Op::TruncateAfter(frac) => {
                let k = m.boundary(frac);
                match wal.truncate_after(Lsn(m.base + k as u64 - 1)).await {
                    Ok(()) => {
                        prop_assert!(!m.poisoned, "a poisoned log accepted a rewind");
                        // Everything up to the cut was made durable, nothing after stays.
                        m.log.truncate(k);
                        m.maybe.clear();
                        m.durable = k;
                        answered = true;
                    }
                    // In doubt: the reopen finds the log before or after, both prefixes
                    // at least this long.
                    Err(e @ WalError::Poisoned { .. }) => {
                        m.durable = m.durable.min(k);
                        on_error(&mut m, &e, Vec::new())?;
                    }
                    // A buffered batch failed while it drained: its LSNs were given out
                    // again, and the cut is past the end now (the next step resyncs).
                    Err(WalError::LsnNotAssigned { .. }) => {
                        let stats = wal
                            .stats()
                            .await
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert!(
                            stats.write_failures > m.write_failures,
                            "rewind refused as past the end"
                        );
                    }
                    Err(e) => on_error(&mut m, &e, Vec::new())?,
                }
            }
            Op::Reset(ahead) => {
                let n = m.next_lsn() + u64::from(ahead);
                match wal.reset(Lsn(n)).await {
                    Ok(()) => {
                        prop_assert!(!m.poisoned, "a poisoned log accepted a reset");
                        m.base = n;
                        m.log.clear();
                        m.maybe.clear();
                        m.durable = 0;
                        answered = true;
                    }
                    Err(e @ WalError::Poisoned { .. }) => {
                        if !m.poisoned {
                            m.reset_maybe = Some(n);
                        }
                        on_error(&mut m, &e, Vec::new())?;
                    }
                    Err(e) => on_error(&mut m, &e, Vec::new())?,
                }
            }
            Op::SetMeta(len) => {
                let value = vec![seq as u8; usize::from(len)];
                match wal.set_meta(value.clone()).await {
                    Ok(()) => {
                        prop_assert_eq!(wal.meta(), Some(value.clone()));
                        m.meta = Some(value);
                        answered = true;
                    }
                    Err(e) => {
                        m.meta_maybe.push(value);
                        on_error(&mut m, &e, Vec::new())?;
                    }
                }
            }
        }
        // In Sync mode each message is written and fsynced before the next is taken: once
        // one is answered, everything accepted before it is durable.
        if in_sync_mode && answered {
            // (A rewind or reset may have removed some of them since.)
            m.durable = m.durable.max(accepted_before.min(m.log.len()));
        }
    }
    let _ = wal.shutdown().await;
    Ok(())
}

pub fn clear_failpoints() {
    #[cfg(feature = "failpoints")]
    for name in ["flusher::before_write", "flusher::before_sync"] {
        fail::remove(name);
    }
}

/// Runs the model's cases; `Err` with the (shrunk) failing case.
pub fn run_model(failpoints: bool, broken: Option<Broken>, cases: u32) -> Result<Tally, String> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A fixed seed: CI runs the same cases every time; `MODEL_SEED` picks others.
    let seed = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x6D6F_64656C);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (
        prop::collection::vec(op_strategy(failpoints), 1..40),
        any::<bool>(),
    );
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    let result = runner.run(&strategy, move |(ops, preallocate)| {
        clear_failpoints();
        let setup = Setup {
            preallocate,
            broken,
        };
        let t = t.clone();
        let outcome = actix::System::new().block_on(async move {
            let case = run_case(ops, setup, &t);
            match actix_rt::time::timeout(Duration::from_secs(60), case).await {
                Ok(r) => r,
                Err(_) => Err(TestCaseError::fail("case did not finish within 60 s")),
            }
        });
        clear_failpoints();
        outcome
    });
    result.map_err(|e| e.to_string())?;
    Arc::try_unwrap(tally).map_err(|_| "tally still shared".to_string())
}

pub fn cases() -> u32 {
    std::env::var("MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

pub fn check_model(failpoints: bool) {
    let t = run_model(failpoints, None, cases()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "model: {} cases, {} operations, {} opens, {} records read back, {} durable records checked after power cuts",
        t.cases.load(Ordering::Relaxed),
        t.ops.load(Ordering::Relaxed),
        t.reopens.load(Ordering::Relaxed),
        t.records_checked.load(Ordering::Relaxed),
        t.durable_checked.load(Ordering::Relaxed),
    );
    assert!(
        t.durable_checked.load(Ordering::Relaxed) > 0,
        "power cuts checked something"
    );
}
