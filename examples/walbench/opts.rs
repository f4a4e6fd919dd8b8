//! walbench's command line: every option, with its unit and default.

use clap::{Parser, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;

/// Options. Every size is in bytes unless its name says otherwise.
#[derive(Parser, Debug, Clone, Serialize)]
#[command(about = "Load generator for actix-wal, with same-run baselines")]
pub(crate) struct Opts {
    /// Transaction actors committing concurrently (1 to 4,096).
    #[arg(short = 'n', long, default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) actors: u32,
    /// Bytes per record.
    #[arg(short = 'p', long, default_value_t = 256)]
    pub(crate) payload: usize,
    /// Seconds to measure each configuration (after the warm-up).
    #[arg(short = 'd', long, default_value_t = 3.0)]
    pub(crate) seconds: f64,
    /// Stop after this many commits instead of after --seconds.
    #[arg(short = 'm', long)]
    pub(crate) commits: Option<u64>,
    /// Seconds each run is warmed up before measuring.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) warmup: f64,
    /// Directory to put the logs in (each run gets a fresh subdirectory, removed after
    /// it). Default: a temporary directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Measure `Durability::Buffered` appends (the foreground path): appends/s and the
    /// caller's time in `send()`.
    #[arg(long)]
    pub(crate) buffered: bool,
    /// Send single-entry `Commit` messages instead of `Append`.
    #[arg(long)]
    pub(crate) commit: bool,
    /// Append through `Wal::append` (the handle applications hold) instead of sending
    /// `Append` to `Wal::queue()`.
    #[arg(long)]
    pub(crate) via_wal: bool,
    /// Pace the actors to this many commits per second in total (default: flat out).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Arbiters (threads) for the transaction actors; 0 runs them on the System arbiter
    /// beside the queue (on 2 cores: the queue's thread and the flusher's).
    #[arg(long, default_value_t = 0)]
    pub(crate) arbiters: usize,
    /// Commits each actor keeps outstanding.
    #[arg(long, default_value_t = 1)]
    pub(crate) pipeline: usize,
    /// Times to run each workload and its baselines in turn (A B C A B C ...); tables show
    /// each system's median round and the median of the same-round ratios.
    #[arg(long, default_value_t = 1)]
    pub(crate) rounds: usize,
    /// Slices per system in the suite's one-committer comparison.
    #[arg(long, default_value_t = 20)]
    pub(crate) slices: usize,
    /// Length of one slice, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub(crate) slice_ms: u64,
    /// Run the same workload on the naive WAL, okaywal and the raw file too.
    #[arg(long)]
    pub(crate) compare: bool,
    /// Run every configuration docs/performance.md reports, with its baselines, and check
    /// the target figures.
    #[arg(long)]
    pub(crate) suite: bool,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write the JSON object to this file (the tables still print).
    #[arg(long)]
    pub(crate) json_out: Option<PathBuf>,
    /// okaywal thread counts to try; its best rate is the one compared.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 4, 16, 64, 256])]
    pub(crate) okaywal_threads: Vec<usize>,
    /// Seconds per okaywal thread count.
    #[arg(long, default_value_t = 1.5)]
    pub(crate) okaywal_seconds: f64,
    /// Thread counts for raft-log and raft-engine (run by walpeers, peers/): okaywal's
    /// and the 1,024 of the rate figure. Each system's best rate is the one compared.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 4, 16, 64, 256, 1024])]
    pub(crate) peer_threads: Vec<usize>,
    /// Seconds per peer run (raft-log, raft-engine), after a warm-up of at most 0.3 s.
    #[arg(long, default_value_t = 1.5)]
    pub(crate) peer_seconds: f64,
    /// raft-log's tuned `flush_batch_wait`, in microseconds, run beside its default (1 ms).
    #[arg(long, default_value_t = 100)]
    pub(crate) raft_log_wait_us: u64,
    /// The walpeers binary (default: beside walbench's target directory, or
    /// peers/target/release/walpeers). Without it, raft-log and raft-engine are skipped.
    #[arg(long)]
    pub(crate) peers_bin: Option<PathBuf>,
    /// Threads of the naive baseline at most (one per actor up to this).
    #[arg(long, default_value_t = 1024)]
    pub(crate) naive_threads: usize,
    /// Size of the log the suite opens to time recovery, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub(crate) recovery_mib: u64,
    /// Segment (and raw file) size, in MiB.
    #[arg(long, default_value_t = 64)]
    pub(crate) segment_mib: u64,
    /// Open the log with `WalConfig::compression` LZ4 in the ordinary (not `--suite`) runs:
    /// its segments carry `COMPRESSED`, so each rollover makes its rename durable before
    /// the acknowledgement (docs/format.md, "Older builds and a lost rename"); records
    /// below the threshold or that do not shrink are stored plain.
    #[arg(long)]
    pub(crate) lz4: bool,
    /// Also run the same workload with segments of this many MiB, in the same rounds, and
    /// print the p99 of `--segment-mib` segments over theirs (the rollover's cost on the
    /// commit path: e.g. `--segment-mib 4 --compare-segments 1024`).
    #[arg(long)]
    pub(crate) compare_segments: Option<u64>,
    /// With --suite: run only these parts (one, rate, bandwidth, buffered, batch, cpu,
    /// backpressure, recovery, reads, readers, bulk, rewind, subscribers, compression,
    /// meta, retention); default all.
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// Largest write batch, in KiB (default: WalConfig's).
    #[arg(long)]
    pub(crate) max_batch_kib: Option<usize>,
    /// The thread the log's queue runs on (`WalConfig::queue_thread`): `caller`, the
    /// System arbiter, beside the transaction actors unless `--arbiters` places them
    /// elsewhere (the default), or `own`, an arbiter of its own. The suite also runs the
    /// other one, in the same rounds.
    #[arg(long, value_enum, default_value_t = QueueOn::Caller)]
    pub(crate) queue_thread: QueueOn,
    /// Seconds the suite's retention run lasts (issue 22's figure: 10 minutes; shorter
    /// for a quick look, at least 60 so that the stalled cursor reaches the cap).
    #[arg(long, default_value_t = 600.0)]
    pub(crate) retention_secs: f64,
}

/// `--queue-thread`: [`actix_wal::QueueThread`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QueueOn {
    /// `QueueThread::Caller`.
    Caller,
    /// `QueueThread::Own`.
    Own,
}
