//! `raft_bench`: figures for the replicated KV example. Starts three `raft_kv` processes
//! on loopback, drives them with concurrent HTTP clients, and prints a table.
//!
//! ```text
//! cargo build --release --example raft_kv --example raft_bench
//! target/release/examples/raft_bench                      # both parts, defaults below
//! target/release/examples/raft_bench --failover-rounds 0  # throughput only
//! target/release/examples/raft_bench --stores '' --failover kill,isolate,steady --failover-rounds 50
//! ```
//!
//! 1. Throughput: for each `--stores` entry (default `wal,mem`, alternated `--repeat`
//!    times in one run), a fresh cluster; `--clients` writers PUT `--value-bytes` values
//!    to the leader (each its next key of `--keys`), one request in flight each; after
//!    `--warmup-secs`, `--secs` of committed writes/s and latency (p50, p99, max).
//! 2. Failover (`--store wal`, `failover`): for each `--failover` mode, a fresh cluster:
//!    `kill` (`kill -9` of the leader) and `isolate` (`SIGSTOP` of the leader),
//!    `--failover-rounds` times each, report the time from the fault to the first
//!    acknowledged write (p50, p99, max); `steady` counts leader changes during
//!    `--steady-secs` of `--clients` writers with no fault.
//!
//! `--batch-writes 1` gives each PUT a Raft entry of its own (see raft_kv's `batcher`).
//!
//! The clients and the three nodes share the machine: on a small one they compete for
//! the same cores, the same for both stores.

#[path = "raft_bench/cluster.rs"]
mod cluster;
#[path = "raft_bench/failover.rs"]
mod failover;

use cluster::Cluster;

use clap::Parser;
use hdrhistogram::Histogram;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "raft_bench",
    about = "Throughput and failover of a three-node raft_kv cluster"
)]
struct Args {
    /// The raft_kv binary. Default: `raft_kv` beside this one.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where the nodes keep their data (a fresh directory per cluster is made in it).
    /// Default: a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Log stores to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "wal,mem")]
    stores: Vec<String>,
    /// How many times the `--stores` sequence runs (alternating them).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Distinct keys written (the map's size).
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Failover rounds of each `--failover` mode (0: none).
    #[arg(long, default_value_t = 10)]
    failover_rounds: usize,
    /// Failover modes, in order: `kill` (kill -9 of the leader), `isolate` (SIGSTOP of the
    /// leader), `steady` (no fault: leader changes during `--steady-secs` of load).
    #[arg(long, value_delimiter = ',', default_value = "kill,isolate")]
    failover: Vec<String>,
    /// Seconds of load of the `steady` mode.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    /// Passed to raft_kv.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Passed to raft_kv (the shortest election timeout; the longest is twice it, and is
    /// openraft's leader lease).
    #[arg(long, default_value_t = 200)]
    election_ms: u64,
    /// Passed to raft_kv: who starts elections (`prevote` or `openraft`).
    #[arg(long, default_value = "prevote")]
    election: String,
    /// Passed to raft_kv: a PUT not committed within it is answered 504.
    #[arg(long, default_value_t = 2_000)]
    request_timeout_ms: u64,
    /// Passed to raft_kv.
    #[arg(long, default_value_t = 10_000)]
    snapshot_logs: u64,
    /// Passed to raft_kv: most PUTs in one Raft entry (1: an entry per PUT).
    #[arg(long, default_value_t = 1_024)]
    batch_writes: usize,
}

/// Longest wait for a node to start, a leader to appear, a node to catch up.
const WAIT: Duration = Duration::from_secs(60);
/// Timeout of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `/raft/state` of `addr`, if it answers.
async fn state(http: &reqwest::Client, addr: SocketAddr) -> Option<serde_json::Value> {
    http.get(format!("http://{addr}/raft/state"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The index (0..3) of a node that says it leads, among `live`, and its applied index.
async fn leader(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    live: &[usize],
) -> Result<(usize, u64), String> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for &i in live {
            if let Some(s) = state(http, addrs[i]).await {
                if s["state"] == "Leader" {
                    return Ok((i, s["last_applied"].as_u64().unwrap_or(0)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("no leader within {WAIT:?}"))
}

/// PUTs `value` to `key` starting at the node `hint` points to, following 307s (and
/// moving `hint`). True on 200.
async fn put(
    http: &reqwest::Client,
    addrs: &[SocketAddr],
    hint: &AtomicUsize,
    key: &str,
    value: &[u8],
) -> bool {
    for _hop in 0..3 {
        let at = hint.load(Ordering::Relaxed);
        let sent = http
            .put(format!("http://{}/kv/{key}", addrs[at]))
            .body(value.to_vec())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::OK => return true,
            Ok(r) if r.status() == StatusCode::TEMPORARY_REDIRECT => {
                let to = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("");
                match addrs
                    .iter()
                    .position(|a| to.starts_with(&format!("http://{a}/")))
                {
                    Some(i) => hint.store(i, Ordering::Relaxed),
                    None => return false,
                }
            }
            _ => return false,
        }
    }
    false
}

/// One throughput run's figures.
struct Figures {
    store: String,
    writes_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    failed: u64,
}

async fn throughput(args: &Args, bin: &Path, root: &Path, store: &str) -> Result<Figures, String> {
    let cluster = Cluster::start(args, bin, root, store)?;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let (lead, _) = leader(&http, &cluster.addrs, &[0, 1, 2]).await?;
    let addrs = Arc::new(cluster.addrs.clone());
    let hint = Arc::new(AtomicUsize::new(lead));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let measure_to = measure_from + Duration::from_secs(args.secs);
    let tasks: Vec<_> = (0..args.clients)
        .map(|c| {
            let (http, addrs, hint, stop) =
                (http.clone(), addrs.clone(), hint.clone(), stop.clone());
            let (keys, clients) = (args.keys.max(1), args.clients);
            let value = vec![b'v'; args.value_bytes];
            tokio::spawn(async move {
                // Microseconds, 1 µs to 60 s, 3 significant figures.
                let mut hist =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                let mut failed = 0u64;
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}", n % keys);
                    n += clients;
                    let t = Instant::now();
                    let ok = put(&http, &addrs, &hint, &key, &value).await;
                    let done = Instant::now();
                    if done >= measure_from && done < measure_to {
                        if ok {
                            let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                        } else {
                            failed += 1;
                        }
                    }
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (hist, failed)
            })
        })
        .collect();
    tokio::time::sleep(measure_to.saturating_duration_since(Instant::now())).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut failed = 0;
    for t in tasks {
        let (h, f) = t.await.map_err(|e| e.to_string())?;
        all.add(&h).map_err(|e| e.to_string())?;
        failed += f;
    }
    Ok(Figures {
        store: store.to_owned(),
        writes_per_sec: all.len() as f64 / args.secs.max(1) as f64,
        p50_us: all.value_at_quantile(0.50),
        p99_us: all.value_at_quantile(0.99),
        max_us: all.max(),
        failed,
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

async fn run(args: Args) -> Result<(), String> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            exe.with_file_name(format!("raft_kv{}", std::env::consts::EXE_SUFFIX))
        }
    };
    if !bin.exists() {
        return Err(format!(
            "no raft_kv at {} (cargo build --release --example raft_kv)",
            bin.display()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("raft_bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    println!(
        "raft_bench: 3 nodes on loopback, {} clients, {} B values, {} keys, {} s measured after {} s warm-up, up to {} PUTs an entry",
        args.clients, args.value_bytes, args.keys, args.secs, args.warmup_secs, args.batch_writes
    );
    let mut rows = Vec::new();
    for _ in 0..args.repeat {
        for store in args.stores.iter().filter(|s| !s.is_empty()) {
            let f = throughput(&args, &bin, &root, store).await?;
            println!(
                "  {:>4}: {:>8.0} writes/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  failed {}",
                f.store, f.writes_per_sec, f.p50_us as f64 / 1e3, f.p99_us as f64 / 1e3, f.max_us as f64 / 1e3, f.failed
            );
            rows.push(f);
        }
    }
    let mut failovers = Vec::new();
    let mut steady = None;
    for mode in &args.failover {
        match mode.as_str() {
            "kill" | "isolate" if args.failover_rounds > 0 => {
                let mode = if mode == "kill" { "kill" } else { "isolate" };
                failovers.push(failover::rounds(&args, &bin, &root, mode).await?);
            }
            "kill" | "isolate" => {}
            "steady" => steady = Some(failover::steady(&args, &bin, &root).await?),
            other => return Err(format!("no failover mode `{other}`")),
        }
    }

    if !rows.is_empty() {
        println!("\n| store | committed writes/s | p50 ms | p99 ms | max ms |");
        println!("|---|---:|---:|---:|---:|");
        for f in &rows {
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                f.store,
                f.writes_per_sec,
                f.p50_us as f64 / 1e3,
                f.p99_us as f64 / 1e3,
                f.max_us as f64 / 1e3
            );
        }
    }
    let mean = |s: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|f| f.store == s)
            .map(|f| f.writes_per_sec)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    if let (Some(w), Some(m)) = (mean("wal"), mean("mem")) {
        println!("\nwal / mem throughput: {:.2} (goal >= 0.50)", w / m);
    }
    if !failovers.is_empty() {
        println!(
            "\nfault to the first acknowledged write, ms (heartbeat {} ms, lease {} ms, election {}):",
            args.heartbeat_ms,
            args.election_ms * 2,
            args.election
        );
        println!("| fault | rounds | p50 | p99 | max |");
        println!("|---|---:|---:|---:|---:|");
        for r in &failovers {
            println!("{}", r.row());
        }
    }
    if let Some(s) = steady {
        println!(
            "steady: {} s at c={}: {} leader changes (term {} -> {}), {} writes acknowledged, {} failed",
            s.secs, s.clients, s.changes, s.terms.0, s.terms.1, s.acked, s.failed
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
