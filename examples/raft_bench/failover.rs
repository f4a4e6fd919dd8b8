//! raft_bench's failover parts (issue 21, item 3), each on a fresh `--store wal` cluster:
//!
//! - `kill`: `kill -9` of the leader, then PUTs to the two survivors (every 10 ms, one in
//!   flight) until one is acknowledged; the killed node restarts from its directory and
//!   catches up before the next round.
//! - `isolate`: `SIGSTOP` of the leader (to the others it is exactly a leader cut off:
//!   connections open into its backlog, nothing answers), the same PUTs to the others;
//!   then `SIGCONT`, and the old leader must catch up as a follower. (The deadline of a
//!   PUT sent to a leader cut off is tested in tests/raft_failover.rs, where the leader
//!   runs and its followers are stopped.)
//! - `steady`: `--clients` writers for `--steady-secs` with no fault; every node's term
//!   and leader are polled every 50 ms: any change is an election nobody needed.
//!
//! Each failover round reports the time from the fault to the first acknowledged write;
//! the table gives p50, p99 and the max (a round with no leader for seconds must show).

use crate::{leader, percentile, put, state, Args, Cluster};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use rustix::process::{kill_process, Pid, Signal};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a round may take to see a write acknowledged.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

/// One failover mode's figures: ms per round, sorted.
pub struct Rounds {
    pub mode: &'static str,
    pub ms: Vec<f64>,
}

impl Rounds {
    /// `| mode | rounds | p50 | p99 | max |`.
    pub fn row(&self) -> String {
        let n = self.ms.len();
        format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} |",
            self.mode,
            n,
            percentile(&self.ms, 0.5),
            percentile(&self.ms, 0.99),
            self.ms.last().copied().unwrap_or(f64::NAN)
        )
    }
}

fn signal(cluster: &Cluster, i: usize, sig: Signal) -> Result<(), String> {
    let child = cluster.children[i]
        .as_ref()
        .ok_or("the node is not running")?;
    let pid = Pid::from_raw(child.id() as i32).ok_or("no pid")?;
    kill_process(pid, sig).map_err(|e| format!("signal node {}: {e}", i + 1))
}

/// PUTs to the nodes in `live` in turn (following a 307 only to another of them) until
/// one is acknowledged; the time it took from `since`.
async fn first_write(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    live: &[usize],
    value: &[u8],
    since: Instant,
) -> Result<f64, String> {
    let mut turn = 0;
    loop {
        let mut at = live[turn % live.len()];
        turn += 1;
        for _hop in 0..2 {
            let sent = http
                .put(format!("http://{}/kv/failover", addrs[at]))
                .body(value.to_vec())
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == StatusCode::OK => {
                    return Ok(since.elapsed().as_secs_f64() * 1e3)
                }
                Ok(r) if r.status() == StatusCode::TEMPORARY_REDIRECT => {
                    let to = r
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .unwrap_or("");
                    match live
                        .iter()
                        .find(|&&i| to.starts_with(&format!("http://{}/", addrs[i])))
                    {
                        Some(&i) => at = i,
                        None => break,
                    }
                }
                _ => break,
            }
        }
        if since.elapsed() > ROUND_LIMIT {
            return Err(format!("no write acknowledged within {ROUND_LIMIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until node `i` has applied at least `target`.
async fn caught_up(
    http: &reqwest::Client,
    addr: SocketAddr,
    target: u64,
    round: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + ROUND_LIMIT;
    loop {
        let applied = state(http, addr)
            .await
            .and_then(|s| s["last_applied"].as_u64());
        if applied.is_some_and(|a| a >= target) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("round {round}: {addr} did not catch up"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `--failover-rounds` rounds of `mode` (`kill` or `isolate`).
pub async fn rounds(
    args: &Args,
    bin: &Path,
    root: &Path,
    mode: &'static str,
) -> Result<Rounds, String> {
    let mut cluster = Cluster::start(args, bin, root, "wal")?;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(1))
        .build()
        .map_err(|e| e.to_string())?;
    let addrs = cluster.addrs.clone();
    let value = vec![b'v'; args.value_bytes];
    let mut out = Rounds {
        mode,
        ms: Vec::new(),
    };
    for round in 0..args.failover_rounds {
        let (lead, _) = leader(&http, &addrs, &[0, 1, 2]).await?;
        // One acknowledged write first: the round starts from a working cluster.
        let hint = AtomicUsize::new(lead);
        let started = Instant::now();
        while !put(&http, &addrs, &hint, "failover", &value).await {
            if started.elapsed() > ROUND_LIMIT {
                return Err(format!("round {round}: the cluster takes no write"));
            }
        }
        let live: Vec<usize> = (0..3).filter(|&i| i != lead).collect();
        if mode == "kill" {
            cluster.kill(lead);
        } else {
            signal(&cluster, lead, Signal::STOP)?;
        }
        let fault = Instant::now();
        let ms = first_write(&http, &addrs, &live, &value, fault)
            .await
            .map_err(|e| format!("{mode} round {round}: {e}"))?;
        println!(
            "{mode} round {round}: node {} down, first write acknowledged after {ms:.0} ms",
            lead + 1
        );
        out.ms.push(ms);
        if mode == "kill" {
            cluster.start_node(lead)?;
        } else {
            signal(&cluster, lead, Signal::CONT)?;
        }
        let (_, target) = leader(&http, &addrs, &live).await?;
        caught_up(&http, addrs[lead], target, round).await?;
    }
    out.ms.sort_by(f64::total_cmp);
    Ok(out)
}

/// What `steady` saw.
pub struct Steady {
    pub secs: u64,
    pub clients: usize,
    /// Leader changes (a new `(term, leader)` seen by any node's poll).
    pub changes: u64,
    /// Term at the start and the end (on the first node).
    pub terms: (u64, u64),
    pub acked: u64,
    pub failed: u64,
}

/// `--clients` writers for `--steady-secs`, polling every node's term and leader.
pub async fn steady(args: &Args, bin: &Path, root: &Path) -> Result<Steady, String> {
    let cluster = Cluster::start(args, bin, root, "wal")?;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let (lead, _) = leader(&http, &cluster.addrs, &[0, 1, 2]).await?;
    let addrs = Arc::new(cluster.addrs.clone());
    let term_of = |s: &serde_json::Value| {
        (
            s["term"].as_u64().unwrap_or(0),
            s["leader"].as_u64().unwrap_or(0),
        )
    };
    let first = state(&http, addrs[lead]).await.map(|s| term_of(&s));
    let first = first.ok_or("the leader does not answer")?;
    let hint = Arc::new(AtomicUsize::new(lead));
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writers: Vec<_> = (0..args.clients)
        .map(|c| {
            let (http, addrs, hint, stop) =
                (http.clone(), addrs.clone(), hint.clone(), stop.clone());
            let (acked, failed) = (acked.clone(), failed.clone());
            let (keys, clients) = (args.keys.max(1), args.clients);
            let value = vec![b'v'; args.value_bytes];
            tokio::spawn(async move {
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}", n % keys);
                    n += clients;
                    if put(&http, &addrs, &hint, &key, &value).await {
                        acked.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        })
        .collect();
    let mut seen = first;
    let mut changes = 0;
    let end = Instant::now() + Duration::from_secs(args.steady_secs);
    while Instant::now() < end {
        for addr in addrs.iter() {
            if let Some(s) = state(&http, *addr).await {
                let now = term_of(&s);
                if now.0 > seen.0 {
                    changes += 1;
                    println!(
                        "steady: node at {addr} reports term {} leader {}",
                        now.0, now.1
                    );
                    seen = now;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.map_err(|e| e.to_string())?;
    }
    Ok(Steady {
        secs: args.steady_secs,
        clients: args.clients,
        changes,
        terms: (first.0, seen.0),
        acked: acked.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    })
}
