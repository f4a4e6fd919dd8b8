//! Subscribers (issue 22's figures), in turns in one run (each round starting one
//! configuration later than the last): commits/s of `actors` durable
//! committers with no subscriber and with 16 following the log (`Wal::subscribe`), the 16
//! on the committers' thread (where the queue runs too: their CPU is the queue's) and on
//! an arbiter of their own (where an application would put consumers of the log);
//! live delivery (`delivery.rs`: when a subscriber has each record, beside when its
//! committer has the durable reply; 1 and 16 subscribers, a paced committer); and a
//! subscriber catching up from the files beside `LogReader` reading the same log, in turns
//! over rounds (one pass of each moved by 0.7x to 1.0x from run to run on this shared
//! machine: docs/performance.md, "Subscribers").

use super::delivery::{self, Delivery};
use super::Check;
use actix_wal::{LogReader, Lsn, Wal, WalConfig};
use futures::StreamExt;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberFigures {
    /// Commits/s with no subscriber, per round.
    pub commits_none: Vec<f64>,
    /// Commits/s with 16 subscribers following on the committers' (and the queue's)
    /// thread, per round.
    pub commits_16: Vec<f64>,
    /// Commits/s with 16 subscribers following on an arbiter of their own, per round.
    pub commits_16_own: Vec<f64>,
    /// The same with `Wal::subscribe_shared` (payloads shared, not copied out).
    pub commits_16_own_shared: Vec<f64>,
    /// Live delivery: 1 and 16 subscribers on the committer's thread, 16 on an arbiter
    /// of their own (`delivery.rs`).
    pub delivery: Vec<Delivery>,
    /// A subscriber from LSN 1 over the whole log, MB/s of payload, per round.
    pub catch_up_mb_s: Vec<f64>,
    /// `LogReader` over the same log, MB/s of payload, per round (each right after that
    /// round's subscriber).
    pub log_reader_mb_s: Vec<f64>,
}

impl SubscriberFigures {
    /// Median over rounds of commits/s with 16 subscribers on the committers' thread
    /// over commits/s with none.
    pub fn commits_ratio(&self) -> f64 {
        median_ratio(&self.commits_16, &self.commits_none)
    }

    /// The same with the 16 on an arbiter of their own.
    pub fn commits_own_ratio(&self) -> f64 {
        median_ratio(&self.commits_16_own, &self.commits_none)
    }

    /// The same with the 16 shared subscribers on an arbiter of their own.
    pub fn commits_own_shared_ratio(&self) -> f64 {
        median_ratio(&self.commits_16_own_shared, &self.commits_none)
    }

    /// Median over rounds of the catch-up's MB/s over `LogReader`'s.
    pub fn catch_up_ratio(&self) -> f64 {
        median_ratio(&self.catch_up_mb_s, &self.log_reader_mb_s)
    }
}

/// The median of `a[i] / b[i]` (same-round ratios).
fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    r.sort_by(|a, b| a.total_cmp(b));
    r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Who follows the log while the committers commit.
#[derive(Clone, Copy)]
struct Followers<'a> {
    /// How many.
    count: usize,
    /// Their arbiter (`None`: the committers' thread).
    own: Option<&'a actix_rt::Arbiter>,
    /// `Wal::subscribe_shared` rather than `Wal::subscribe`.
    shared: bool,
}

/// Counts the records `sub` yields until the one numbered `end` (set once the writers are
/// done), then sends the count.
async fn follow<S, R>(
    mut sub: S,
    lsn: impl Fn(&R) -> u64,
    end: Arc<AtomicU64>,
    tx: tokio::sync::oneshot::Sender<u64>,
) where
    S: futures::Stream<Item = Result<R, actix_wal::WalError>> + Unpin,
{
    let mut n = 0u64;
    while let Some(Ok(r)) = sub.next().await {
        n += 1;
        if lsn(&r) >= end.load(Ordering::Relaxed) {
            break;
        }
    }
    let _ = tx.send(n);
}

/// Commits/s of `actors` committers of `payload` bytes for `window`, with `followers`
/// following the log (each counts what it receives; they must see every commit).
async fn commits(
    wal: &Wal,
    actors: usize,
    payload: usize,
    window: Duration,
    followers: Followers<'_>,
) -> Result<f64, String> {
    let from = Lsn(wal.stats().await.map_err(|e| e.to_string())?.next_lsn.0);
    // Followers stop at the record numbered `end` (set once the writers are done; one
    // more append then wakes those already waiting). Nothing per record but the stream's
    // own work: no timer, no select.
    let end = Arc::new(AtomicU64::new(u64::MAX));
    let Followers { count, own, shared } = followers;
    let followers: Vec<_> = (0..count)
        .map(|_| {
            let (end, (tx, rx)) = (end.clone(), tokio::sync::oneshot::channel());
            let task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = if shared {
                let lsn = |r: &actix_wal::SharedRecord| r.lsn.0;
                Box::pin(follow(wal.subscribe_shared(from), lsn, end, tx))
            } else {
                let lsn = |r: &actix_wal::Record| r.lsn.0;
                Box::pin(follow(wal.subscribe(from), lsn, end, tx))
            };
            delivery::spawn_on(own, task);
            rx
        })
        .collect();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..actors)
        .map(|_| {
            let (wal, done) = (wal.clone(), done.clone());
            let body = vec![0x5Au8; payload];
            actix_rt::spawn(async move {
                while started.elapsed() < window {
                    if wal.append(body.clone()).await.is_err() {
                        break;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.map_err(|e| e.to_string())?;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let last = wal.stats().await.map_err(|e| e.to_string())?.next_lsn.0;
    end.store(last, Ordering::Relaxed);
    wal.append(vec![0u8; payload])
        .await
        .map_err(|e| e.to_string())?;
    for f in followers {
        let n = f.await.map_err(|e| e.to_string())?;
        if n < last - from.0 {
            return Err(format!("a subscriber got {n} of {} records", last - from.0));
        }
    }
    Ok(rate)
}

/// Catch-up from the files, one round: a subscriber from LSN 1 to the end, and
/// `LogReader` over the same log (first when `reader_first`). MB/s of payload of each.
async fn catch_up(wal: &Wal, dir: &Path, reader_first: bool) -> Result<(f64, f64), String> {
    let end = wal.stats().await.map_err(|e| e.to_string())?.durable_lsn.0;
    let reader = || -> Result<f64, String> {
        let (started, mut bytes) = (Instant::now(), 0u64);
        for r in LogReader::open(dir).map_err(|e| e.to_string())? {
            bytes += r.map_err(|e| e.to_string())?.payload.len() as u64;
        }
        Ok(bytes as f64 / 1e6 / started.elapsed().as_secs_f64())
    };
    let reader_mb_s = if reader_first { Some(reader()?) } else { None };
    let mut sub = wal.subscribe(Lsn(1));
    let (started, mut bytes) = (Instant::now(), 0u64);
    while let Some(r) = sub.next().await {
        let r = r.map_err(|e| e.to_string())?;
        bytes += r.payload.len() as u64;
        if r.lsn.0 >= end {
            break;
        }
    }
    let sub_mb_s = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    let reader_mb_s = match reader_mb_s {
        Some(r) => r,
        None => reader()?,
    };
    Ok((sub_mb_s, reader_mb_s))
}

/// Every figure, `rounds` rounds of the commits in turns (none, 16, none, 16, ...).
pub async fn measure(
    dir: &Path,
    cfg: WalConfig,
    actors: usize,
    window: Duration,
    rounds: usize,
) -> Result<SubscriberFigures, String> {
    let wal = Wal::open(dir, cfg).await.map_err(|e| e.to_string())?;
    let arbiter = actix_rt::Arbiter::new();
    let (mut none, mut sixteen, mut sixteen_own, mut sixteen_shared) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let followers = |count, own, shared| Followers { count, own, shared };
    for round in 0..rounds.max(1) {
        // Each round starts one configuration later than the last: the disk slows as the
        // log grows past a few GB (docs/performance.md), and no configuration should
        // always run first in its round.
        for k in 0..4 {
            match (k + round) % 4 {
                0 => {
                    let f = followers(0, None, false);
                    none.push(commits(&wal, actors, 256, window, f).await?);
                }
                1 => {
                    let f = followers(16, None, false);
                    sixteen.push(commits(&wal, actors, 256, window, f).await?);
                }
                2 => {
                    let f = followers(16, Some(&arbiter), false);
                    sixteen_own.push(commits(&wal, actors, 256, window, f).await?);
                }
                _ => {
                    let f = followers(16, Some(&arbiter), true);
                    sixteen_shared.push(commits(&wal, actors, 256, window, f).await?);
                }
            }
        }
    }
    let delivery = vec![
        delivery::measure(&wal, 1, None, 2_000).await?,
        delivery::measure(&wal, 16, None, 2_000).await?,
        delivery::measure(&wal, 16, Some(&arbiter), 2_000).await?,
    ];
    arbiter.stop();
    let (mut catch_up_mb_s, mut log_reader_mb_s) = (Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        // In turns: the subscriber first in even rounds, `LogReader` first in odd ones.
        let (sub, reader) = catch_up(&wal, dir, round % 2 == 1).await?;
        catch_up_mb_s.push(sub);
        log_reader_mb_s.push(reader);
    }
    wal.shutdown().await.map_err(|e| e.to_string())?;
    Ok(SubscriberFigures {
        commits_none: none,
        commits_16: sixteen,
        commits_16_own: sixteen_own,
        commits_16_own_shared: sixteen_shared,
        delivery,
        catch_up_mb_s,
        log_reader_mb_s,
    })
}

/// The suite's checks of these figures (`actors` committers).
pub fn checks(f: &SubscriberFigures, actors: usize) -> Vec<Check> {
    let mut out = Vec::new();
    let own = f.commits_own_ratio();
    out.push(Check {
        figure: format!(
            "{actors} committers: commits/s with 16 subscribers on an arbiter of their own over none"
        ),
        target: ">= 0.90 (median of same-round ratios)".into(),
        measured: format!(
            "{own:.2} ({:?} vs {:?} commits/s)",
            f.commits_16_own.iter().map(|c| c.round()).collect::<Vec<_>>(),
            f.commits_none.iter().map(|c| c.round()).collect::<Vec<_>>(),
        ),
        met: own >= 0.9,
    });
    let shared = f.commits_own_shared_ratio();
    out.push(Check {
        figure: format!(
            "{actors} committers: commits/s with 16 shared subscribers (Wal::subscribe_shared) on an arbiter of their own over none"
        ),
        target: ">= 0.90 (median of same-round ratios)".into(),
        measured: format!(
            "{shared:.2} ({:?} vs {:?} commits/s)",
            f.commits_16_own_shared.iter().map(|c| c.round()).collect::<Vec<_>>(),
            f.commits_none.iter().map(|c| c.round()).collect::<Vec<_>>(),
        ),
        met: shared >= 0.9,
    });
    let ratio = f.commits_ratio();
    out.push(Check {
        figure: format!(
            "{actors} committers: commits/s with 16 subscribers on the committers' and the queue's thread over none"
        ),
        target: ">= 0.90 (median of same-round ratios)".into(),
        measured: format!(
            "{ratio:.2} ({:?} vs {:?} commits/s); live delivery, p50/p99: {}",
            f.commits_16.iter().map(|c| c.round()).collect::<Vec<_>>(),
            f.commits_none.iter().map(|c| c.round()).collect::<Vec<_>>(),
            f.delivery
                .iter()
                .map(delivery::describe)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        met: ratio >= 0.9,
    });
    let catch = f.catch_up_ratio();
    out.push(Check {
        figure: "a subscriber catching up from the files, beside LogReader".into(),
        target: ">= 0.80x LogReader's MB/s (median of same-round ratios)".into(),
        measured: format!(
            "{catch:.2}x ({:?} vs {:?} MB/s of payload)",
            f.catch_up_mb_s
                .iter()
                .map(|c| c.round())
                .collect::<Vec<_>>(),
            f.log_reader_mb_s
                .iter()
                .map(|c| c.round())
                .collect::<Vec<_>>()
        ),
        met: catch >= 0.8,
    });
    out
}
