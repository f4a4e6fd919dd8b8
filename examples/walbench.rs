//! walbench: a load generator for actix-wal, and the same workload on what a user would
//! pick instead, measured in the same run.
//!
//! ```text
//! cargo run --release --example walbench -- --actors 1024 --payload 256 --seconds 3
//! cargo run --release --example walbench -- --actors 1024 --compare
//! cargo run --release --example walbench -- --buffered --actors 1
//! cargo run --release --example walbench -- --suite            # every figure of docs/performance.md
//! cargo run --release --example walbench -- --suite --json > perf.json
//! ```
//!
//! N transaction actors each commit durably one record after another (send `Append` to
//! `Wal::queue()`, wait for the reply, send the next) for D seconds or M commits, on a log
//! in `--dir` (default: a temporary directory). The table shows commits/s, MB/s, latency
//! percentiles, fsyncs/s and records per fsync, the flusher thread's CPU as a share of one
//! core, and the peak bytes queued. `--compare` runs the same workload on the naive
//! synchronous WAL, okaywal, raft-log and raft-engine (those two in walpeers, a child
//! process built from peers/) and the raw file, in subdirectories of the same directory,
//! and prints actix-wal's ratio to each and to the best peer: on a shared, noisy machine
//! only same-run ratios mean anything. docs/performance.md explains every figure.

#[path = "walbench/actix_handoff.rs"]
mod actix_handoff;
#[path = "walbench/baselines.rs"]
mod baselines;
#[path = "walbench/batch_flush.rs"]
mod batch_flush;
#[path = "walbench/bulk.rs"]
mod bulk;
#[path = "walbench/compression.rs"]
mod compression;
#[path = "walbench/delivery.rs"]
mod delivery;
#[path = "walbench/interleave.rs"]
mod interleave;
#[path = "walbench/issue11.rs"]
mod issue11;
#[path = "walbench/log_under_test.rs"]
mod log_under_test;
#[path = "walbench/meta.rs"]
mod meta;
#[path = "walbench/opts.rs"]
mod opts;
#[path = "walbench/peers.rs"]
mod peers;
#[path = "walbench/pipeline.rs"]
mod pipeline;
#[path = "walbench/reads.rs"]
mod reads;
#[path = "walbench/recovery.rs"]
mod recovery;
#[path = "walbench/report.rs"]
mod report;
#[path = "walbench/retention.rs"]
mod retention;
#[path = "walbench/rewind.rs"]
mod rewind;
#[path = "walbench/subscribers.rs"]
mod subscribers;
#[path = "walbench/suite.rs"]
mod suite;
#[path = "walbench/sys.rs"]
mod sys;

use actix::SystemRunner;
use actix_wal::{Durability, QueueThread, WalConfig};
use baselines::{Prep, Timing};
use clap::Parser;
use opts::{Opts, QueueOn};
use pipeline::{Spec, Window};
use recovery::RecoveryFigures;
use report::{print_section, thousands, Figures, Section};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use suite::suite;

/// One target figure of the issue and whether this run met it.
#[derive(Debug, Clone, Serialize)]
struct Check {
    figure: String,
    target: String,
    measured: String,
    met: bool,
}

/// Everything a run printed, as one JSON object.
#[derive(Debug, Serialize)]
struct Report {
    date: String,
    machine: String,
    dir: String,
    file_system: String,
    options: Opts,
    sections: Vec<Section>,
    recovery: Option<RecoveryFigures>,
    checks: Vec<Check>,
}

/// The run's context: the actix System, the base directory, and a counter for the fresh
/// subdirectory each measurement gets.
struct Bench {
    sys: SystemRunner,
    opts: Opts,
    base: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    runs: usize,
}

type Res<T> = Result<T, String>;

impl Bench {
    /// A fresh subdirectory for one measurement.
    fn fresh(&mut self, name: &str) -> PathBuf {
        self.runs += 1;
        self.base.join(format!("{:02}-{name}", self.runs))
    }

    /// Runs `run` (systems taking turns: `--slices` slices of `--slice-ms` each) in a
    /// fresh directory and builds its section.
    fn in_turns<F, Fut>(&mut self, what: &str, title: &str, run: F) -> Res<Section>
    where
        F: FnOnce(PathBuf, usize, Duration, WalConfig) -> Fut,
        Fut: std::future::Future<Output = Res<Vec<Vec<Figures>>>>,
    {
        let dir = self.fresh(&what.replace(' ', "-"));
        self.say(&format!(
            "{what}: {} slices of {} ms per system, in turn",
            self.opts.slices, self.opts.slice_ms
        ));
        let slice = Duration::from_millis(self.opts.slice_ms);
        let run = run(dir.clone(), self.opts.slices, slice, self.config());
        let rounds = self.sys.block_on(run);
        remove(&dir);
        let title = format!("{title}, in turn in {} ms slices", self.opts.slice_ms);
        Ok(Section::from_rounds(title, true, rounds?))
    }

    /// Whether `--only` asks for this part of the suite (an empty list asks for all).
    fn wants(&self, part: &str) -> bool {
        self.opts.only.is_empty() || self.opts.only.iter().any(|p| p == part)
    }

    fn say(&self, what: &str) {
        eprintln!("walbench: {what}");
    }

    fn timing(&self) -> Timing {
        Timing {
            warmup: Duration::from_secs_f64(self.opts.warmup),
            window: Duration::from_secs_f64(self.opts.seconds),
        }
    }

    fn config(&self) -> WalConfig {
        // The builder fits the batch and queue bounds to a small segment (a 4 MiB one
        // leaves room for a batch of less than the default 4 MiB).
        let d = WalConfig::default().segment_size_bytes(self.opts.segment_mib << 20);
        WalConfig {
            max_batch_bytes: self
                .opts
                .max_batch_kib
                .map_or(d.max_batch_bytes, |k| k << 10),
            queue_thread: match self.opts.queue_thread {
                QueueOn::Own => QueueThread::Own,
                QueueOn::Caller => QueueThread::Caller,
            },
            compression: if self.opts.lz4 {
                actix_wal::Compression::lz4()
            } else {
                d.compression
            },
            ..d
        }
    }

    fn spec(&self, actors: usize, payload: usize) -> Spec {
        Spec {
            actors,
            payload_bytes: payload,
            durability: Durability::Durable,
            commit_messages: self.opts.commit,
            window: match self.opts.commits {
                Some(m) => Window::Commits(m),
                None => Window::Time(Duration::from_secs_f64(self.opts.seconds)),
            },
            warmup: Duration::from_secs_f64(self.opts.warmup),
            rate: None,
            arbiters: self.opts.arbiters,
            pipeline: self.opts.pipeline,
            config: self.config(),
            readers: 0,
            payloads: None,
            via_wal: self.opts.via_wal,
        }
    }

    fn wal(&mut self, spec: &Spec) -> Res<Figures> {
        let dir = self.fresh("actix-wal");
        self.say(&format!(
            "actix-wal: {} actors x {} B {:?}{}",
            spec.actors,
            spec.payload_bytes,
            spec.durability,
            spec.rate.map_or(String::new(), |r| format!(" at {r}/s"))
        ));
        let r = self.sys.block_on(pipeline::run(spec, &dir));
        remove(&dir);
        r
    }

    fn naive(&mut self, threads: usize, payload: usize) -> Res<Figures> {
        let threads = threads.min(self.opts.naive_threads).max(1);
        let dir = self.fresh("naive");
        self.say(&format!("naive: {threads} threads x {payload} B"));
        let r = baselines::naive(&dir, threads, payload, self.timing()).map_err(|e| e.to_string());
        remove(&dir);
        r
    }

    fn okaywal_at(&mut self, threads: usize, payload: usize) -> Res<Figures> {
        let dir = self.fresh("okaywal");
        self.say(&format!("okaywal: {threads} threads x {payload} B"));
        let timing = Timing {
            warmup: Duration::from_secs_f64(self.opts.warmup.min(0.3)),
            window: Duration::from_secs_f64(self.opts.okaywal_seconds),
        };
        let seg = u32::try_from(self.opts.segment_mib << 20).unwrap_or(u32::MAX);
        let r = baselines::okaywal(&dir, threads, payload, seg, timing).map_err(|e| e.to_string());
        remove(&dir);
        r
    }

    /// okaywal at every configured thread count, in the order given (rows keep their place
    /// from round to round).
    fn okaywal_sweep(&mut self, payload: usize) -> Res<Vec<Figures>> {
        let mut all = Vec::new();
        for t in self.opts.okaywal_threads.clone() {
            all.push(self.okaywal_at(t, payload)?);
        }
        Ok(all)
    }

    fn raw_handoff(&mut self, write_bytes: usize) -> Res<Figures> {
        let dir = self.fresh("raw-handoff");
        self.say(&format!(
            "raw: {write_bytes} B writes + fdatasync on an I/O thread"
        ));
        let r = baselines::raw_handoff(
            &dir,
            write_bytes,
            self.opts.segment_mib << 20,
            self.timing(),
        )
        .map_err(|e| e.to_string());
        remove(&dir);
        r
    }

    fn raw(&mut self, write_bytes: usize, prep: Prep) -> Res<Figures> {
        let dir = self.fresh("raw");
        self.say(&format!(
            "raw: {write_bytes} B writes + fdatasync, {prep:?}"
        ));
        let r = baselines::raw(
            &dir,
            write_bytes,
            self.opts.segment_mib << 20,
            prep,
            self.timing(),
        )
        .map_err(|e| e.to_string());
        remove(&dir);
        r
    }
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// One system's run within a round; returns one row (or several: okaywal's sweep).
type Runner<'a> = Box<dyn Fn(&mut Bench) -> Res<Vec<Figures>> + 'a>;

fn one<'a>(f: impl Fn(&mut Bench) -> Res<Figures> + 'a) -> Runner<'a> {
    Box::new(move |b: &mut Bench| f(b).map(|x| vec![x]))
}

impl Bench {
    /// Runs the runners in turn, `--rounds` times, and builds the section.
    fn measure(&mut self, title: &str, has_base: bool, runners: &[Runner]) -> Res<Section> {
        let mut all = Vec::new();
        for r in 0..self.opts.rounds.max(1) {
            if self.opts.rounds > 1 {
                self.say(&format!("{title}: round {} of {}", r + 1, self.opts.rounds));
            }
            let mut round = Vec::new();
            for run in runners {
                round.extend(run(self)?);
            }
            all.push(round);
        }
        Ok(Section::from_rounds(title.into(), has_base, all))
    }
}

/// The default mode and `--compare`: one workload, and its baselines if asked.
fn single(b: &mut Bench) -> Res<(Vec<Section>, Vec<Check>)> {
    let o = b.opts.clone();
    let mut spec = b.spec(o.actors as usize, o.payload);
    spec.rate = o.rate;
    if o.buffered {
        spec.durability = Durability::Buffered;
    }
    let title = format!(
        "{} actors x {} B {}",
        o.actors,
        o.payload,
        if o.buffered { "buffered" } else { "durable" }
    );
    let mut runners: Vec<Runner> = vec![one(move |b| b.wal(&spec))];
    if o.compare && o.buffered {
        b.say("--compare has no baseline for buffered appends: every other system here acknowledges after its fsync");
    } else if o.compare {
        let frame = o.payload + actix_wal::format::FRAME_HEADER_BYTES;
        let (n, p) = (o.actors as usize, o.payload);
        runners.push(one(move |b| b.raw(frame, Prep::Fallocate)));
        runners.push(one(move |b| b.raw(frame, Prep::Prewritten)));
        if n == 1 {
            runners.push(one(move |b| b.raw_handoff(frame)));
        }
        runners.push(one(|b| b.raw(4 << 20, Prep::Fallocate)));
        runners.push(one(|b| b.raw(16 << 20, Prep::Fallocate)));
        runners.push(one(move |b| b.naive(n, p)));
        runners.push(Box::new(move |b: &mut Bench| b.okaywal_sweep(p)));
        runners.push(Box::new(move |b: &mut Bench| b.peer_sweep(p)));
    }
    if let Some(mib) = o.compare_segments {
        let mut other = b.spec(o.actors as usize, o.payload);
        other.rate = o.rate;
        other.durability = if o.buffered {
            Durability::Buffered
        } else {
            Durability::Durable
        };
        other.config.segment_size_bytes = mib << 20;
        runners.push(one(move |b| {
            let mut f = b.wal(&other)?;
            f.note = format!("{}, {mib} MiB segments", f.note);
            Ok(f)
        }));
    }
    let section = b.measure(&title, true, &runners)?;
    let mut checks = Vec::new();
    if o.compare && !o.buffered {
        checks.push(peers::versus_best(&section, peers::TARGET_X)?);
    }
    if let Some(mib) = o.compare_segments {
        // actix-wal with `--segment-mib` is first in each round, the same workload with
        // `--compare-segments` last.
        let ratio = |r: &[Figures]| r[0].latency.p99_us / r[r.len() - 1].latency.p99_us;
        let per_round: Vec<String> = section
            .all_rounds
            .iter()
            .map(|r| {
                format!(
                    "{:.2} ms / {:.2} ms = {:.2}x",
                    r[0].latency.p99_us / 1000.0,
                    r[r.len() - 1].latency.p99_us / 1000.0,
                    ratio(r)
                )
            })
            .collect();
        let median = section.per_round(ratio);
        checks.push(Check {
            figure: format!(
                "p99 with {} MiB segments vs {mib} MiB segments, same rounds",
                o.segment_mib
            ),
            target: "<= 1.2x".into(),
            measured: format!("median {median:.2}x; rounds: {}", per_round.join(", ")),
            met: median <= 1.2,
        });
    }
    Ok((vec![section], checks))
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let (base, tmp) = match &opts.dir {
        Some(d) => (d.clone(), None),
        None => match tempfile::tempdir() {
            Ok(t) => (t.path().to_path_buf(), Some(t)),
            Err(e) => {
                eprintln!("walbench: cannot make a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if let Err(e) = std::fs::create_dir_all(&base) {
        eprintln!("walbench: {}: {e}", base.display());
        return ExitCode::FAILURE;
    }
    let mut b = Bench {
        sys: actix::System::new(),
        opts: opts.clone(),
        base: base.clone(),
        _tmp: tmp,
        runs: 0,
    };
    let result = if opts.suite {
        suite(&mut b)
    } else {
        single(&mut b).map(|(s, c)| (s, None, c))
    };
    let (sections, recovery, checks) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("walbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = Report {
        date: sys::today(),
        machine: sys::machine(),
        dir: base.display().to_string(),
        file_system: sys::fs_type(&base),
        options: opts,
        sections,
        recovery,
        checks,
    };
    let json = match serde_json::to_string_pretty(&report) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("walbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &report.options.json_out {
        if let Err(e) = std::fs::write(path, &json) {
            eprintln!("walbench: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if report.options.json {
        println!("{json}");
    } else {
        print_report(&report);
    }
    ExitCode::SUCCESS
}

fn print_report(r: &Report) {
    println!(
        "walbench {}: {}; {} on {}",
        r.date, r.machine, r.dir, r.file_system
    );
    println!(
        "latency = send to durable reply; flusher/queue = that thread's CPU as a share of one core; \
         cpu = the process's CPU in cores over the window (a peer's: its own child process); \
         cpu/c = process CPU time per commit; 'vs actix-wal' = actix-wal's figure divided by the row's"
    );
    for s in &r.sections {
        print_section(s);
    }
    if let Some(rec) = &r.recovery {
        println!(
            "\nrecovery: {:.0} MB of log ({} records of {} B, {:.0} MB of files): open {:.2} s cold \
             ({:.0} MB/s), {:.2} s warm ({:.0} MB/s); plain read {:.2} s cold, {:.2} s warm",
            rec.log_bytes as f64 / 1e6,
            thousands(rec.records as f64),
            rec.record_bytes,
            rec.file_bytes as f64 / 1e6,
            rec.open_cold_s,
            rec.cold_mb_per_s(),
            rec.open_warm_s,
            rec.warm_mb_per_s(),
            rec.read_cold_s,
            rec.read_warm_s
        );
    }
    if !r.checks.is_empty() {
        println!("\ntarget figures:");
        for c in &r.checks {
            println!(
                "  [{}] {}: {}",
                if c.met { "met " } else { "MISS" },
                c.figure,
                c.measured
            );
        }
    }
}
