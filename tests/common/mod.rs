//! Shared by the fault tests: transaction actors that append durably, and the checks
//! that every acknowledged record is on disk exactly once.
#![allow(dead_code)]

pub mod alerts;
pub mod faulty;

use actix::prelude::*;
use actix_wal::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What one append ended as.
#[derive(Debug, Clone)]
pub enum Outcome {
    Acked(Lsn, Vec<u8>),
    Failed(Vec<u8>, WalError),
}

/// A transaction actor: appends `count` records durably, one after another.
pub struct TxnActor {
    pub queue: Addr<actix_wal::Queue>,
    pub id: usize,
}

impl Actor for TxnActor {
    type Context = Context<Self>;
}

/// Run `count` appends, starting at sequence number `from`.
#[derive(Message)]
#[rtype(result = "Vec<Outcome>")]
pub struct Run {
    pub from: usize,
    pub count: usize,
    pub txn_every: usize,
}

impl Handler<Run> for TxnActor {
    type Result = ResponseFuture<Vec<Outcome>>;

    fn handle(&mut self, msg: Run, _: &mut Self::Context) -> Self::Result {
        let queue = self.queue.clone();
        let id = self.id;
        Box::pin(async move {
            let mut out = Vec::with_capacity(msg.count);
            for i in msg.from..msg.from + msg.count {
                let payload = format!("actor{id}:rec{i}").into_bytes();
                let res = if msg.txn_every > 0 && i % msg.txn_every == 0 {
                    let entries = vec![payload.clone(), [&payload[..], b"/2"].concat()];
                    queue.send(Commit::new(entries)).await
                } else {
                    queue.send(Append::new(payload.clone())).await
                };
                match res {
                    Ok(Ok(lsn)) => out.push(Outcome::Acked(lsn, payload)),
                    Ok(Err(e)) => out.push(Outcome::Failed(payload, e)),
                    Err(e) => panic!("queue mailbox error {e}: the queue must answer every append"),
                }
            }
            out
        })
    }
}

/// Runs `actors` transaction actors, each appending `count` records, and gathers outcomes.
pub async fn run_workload(
    wal: &Wal,
    actors: usize,
    from: usize,
    count: usize,
    txn_every: usize,
) -> Vec<Outcome> {
    let addrs: Vec<_> = (0..actors)
        .map(|id| {
            TxnActor {
                queue: wal.queue().clone(),
                id,
            }
            .start()
        })
        .collect();
    let runs = addrs.iter().map(|a| {
        a.send(Run {
            from,
            count,
            txn_every,
        })
    });
    let results = actix_rt::time::timeout(Duration::from_secs(60), futures::future::join_all(runs))
        .await
        .expect("an append hung: the workload did not finish within 60 s");
    results
        .into_iter()
        .flat_map(|r| r.expect("actor answered"))
        .collect()
}

/// Every acknowledged record is in the log exactly once, at its LSN, with its payload;
/// no payload appears twice; LSNs are contiguous. Returns the records read.
pub fn check_log(dir: &Path, outcomes: &[Outcome]) -> Vec<Record> {
    let records: Vec<Record> = LogReader::open(dir)
        .expect("log opens")
        .collect::<Result<Vec<_>, _>>()
        .expect("log reads without corruption");
    for w in records.windows(2) {
        assert_eq!(w[1].lsn.0, w[0].lsn.0 + 1, "LSNs are contiguous");
    }
    let mut seen: HashMap<&[u8], Lsn> = HashMap::new();
    for r in &records {
        if let Some(prev) = seen.insert(&r.payload, r.lsn) {
            panic!(
                "payload {:?} read twice, at {prev} and {}",
                String::from_utf8_lossy(&r.payload),
                r.lsn
            );
        }
    }
    for o in outcomes {
        if let Outcome::Acked(lsn, payload) = o {
            match seen.get(payload.as_slice()) {
                Some(at) => assert_eq!(at, lsn, "acknowledged record at another LSN"),
                None => panic!(
                    "acknowledged record {lsn} ({}) lost",
                    String::from_utf8_lossy(payload)
                ),
            }
        }
    }
    records
}

pub fn acked(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Acked(..)))
        .count()
}

pub fn failures(outcomes: &[Outcome]) -> Vec<&WalError> {
    outcomes
        .iter()
        .filter_map(|o| {
            if let Outcome::Failed(_, e) = o {
                Some(e)
            } else {
                None
            }
        })
        .collect()
}

/// Polls stats until `pred` holds, or panics after `secs`.
pub async fn wait_for(
    wal: &Wal,
    secs: u64,
    what: &str,
    pred: impl Fn(&WalStats) -> bool,
) -> WalStats {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = wal.stats().await.expect("stats");
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A config that rolls segments often, so rollover paths are exercised.
pub fn fault_config() -> WalConfig {
    WalConfig {
        segment_size_bytes: 16 * 1024,
        max_record_bytes: 1024,
        max_batch_bytes: 8 * 1024,
        flusher_stall_timeout_ms: 300,
        restart_backoff_initial_ms: 5,
        restart_backoff_max_ms: 50,
        ..WalConfig::default()
    }
}

/// How many segment files (`*.wal`) the log directory holds.
pub fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count()
}

/// Every file name in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Appends 60-byte records until the log in `dir` has more than `n` segments (at most
/// 1,000 appends, else it panics).
pub async fn append_until_segments(wal: &Wal, dir: &Path, n: usize) {
    for _ in 0..1_000 {
        if segment_lsns(dir).len() > n {
            return;
        }
        wal.append(vec![7; 60]).await.unwrap();
    }
    panic!("no rollover past {n} segments in 1,000 appends");
}

/// The first LSNs of the log's segment files, in order.
pub fn segment_lsns(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    v.sort();
    v
}

/// Options for a log of 4 KiB segments on `storage` (a simulated disk), not preallocated.
pub fn sim_options(storage: SharedStorage) -> LogOptions {
    LogOptions {
        segment_size_bytes: 4096,
        max_record_bytes: 1024,
        preallocate: false,
        storage,
        ..LogOptions::default()
    }
}

#[cfg(feature = "internals")]
/// A new log at `dir` on `storage` ([`sim_options`]), and the flusher's writer on it with
/// spares prepared as `mode` says, with the planner where its first batch goes.
pub fn sim_writer(
    dir: &Path,
    storage: SharedStorage,
    mode: actix_wal::internals::spare::SpareMode,
) -> (
    actix_wal::internals::SegmentWriter,
    actix_wal::internals::Planner,
) {
    drop(LogWriter::open(dir, sim_options(storage.clone())).unwrap());
    let mut w = actix_wal::internals::SegmentWriter::new(storage, dir, 4096, false);
    w.enable_spares(mode);
    let p = actix_wal::internals::Planner {
        segment_first_lsn: 1,
        offset: 32,
        next_lsn: 1,
        segment_size_bytes: 4096,
        max_record_bytes: 1024,
        files_epoch: 0,
    };
    (w, p)
}
