//! walpeers: one peer write-ahead log under walbench's workload (N threads, each committing
//! one durable record after another), in a process of its own, so that its CPU time is its
//! own. Prints one JSON line of figures (`run::Figures`) for walbench to read.
//!
//! ```text
//! cargo build --release --manifest-path peers/Cargo.toml
//! peers/target/release/walpeers --system raft-log --threads 1024 --payload 256 --dir /tmp/x
//! ```

mod raft_engine_peer;
mod raft_log_peer;
mod run;

use clap::{Parser, ValueEnum};
use run::Timing;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Which log to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    /// raft-log 0.4.6 behind a mutex, as databend's meta service uses it.
    RaftLog,
    /// raft-engine 0.4: `LogBatch` + `write(sync = true)` from every thread.
    RaftEngine,
}

/// Options. Every size is in bytes unless its name says otherwise.
#[derive(Parser, Debug)]
#[command(about = "raft-log and raft-engine under walbench's durable-commit workload")]
struct Opts {
    /// The log to run.
    #[arg(long, value_enum)]
    system: System,
    /// Committer threads (1 to 4,096).
    #[arg(long, default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: u32,
    /// Bytes per record.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 0.3)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 1.5)]
    seconds: f64,
    /// raft-log's `flush_batch_wait`, in microseconds (default: raft-log's own, 1 ms).
    #[arg(long)]
    batch_wait_us: Option<u64>,
    /// Directory for the log (created; left for the caller to remove). Default: a
    /// temporary directory, removed at exit.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let o = Opts::parse();
    let timing = Timing {
        warmup: Duration::from_secs_f64(o.warmup.max(0.0)),
        window: Duration::from_secs_f64(o.seconds.max(0.01)),
    };
    let tmp = match &o.dir {
        Some(_) => None,
        None => match tempfile::tempdir() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("walpeers: cannot make a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let dir = o
        .dir
        .clone()
        .or_else(|| tmp.as_ref().map(|t| t.path().to_path_buf()))
        .unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("walpeers: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let threads = o.threads as usize;
    let result = match o.system {
        System::RaftLog => {
            let wait = o.batch_wait_us.map(Duration::from_micros);
            raft_log_peer::run(&dir, threads, o.payload, wait, timing)
        }
        System::RaftEngine => raft_engine_peer::run(&dir, threads, o.payload, timing),
    };
    let line = result.and_then(|f| serde_json::to_string(&f).map_err(std::io::Error::other));
    match line {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("walpeers: {:?}: {e}", o.system);
            ExitCode::FAILURE
        }
    }
}
